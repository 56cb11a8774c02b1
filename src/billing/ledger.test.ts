// The ledger's arithmetic on its own: holds, settlement, refunds, and the cap on an overrun.
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { InvalidationBus } from '../shared/bus.js';
import { createLedger } from './ledger.js';

function ledgerWith(db: { used: number; balance: number }) {
  const deps = {
    db: null as never,
    bus: new InvalidationBus(),
    keys: { usedNano: async () => db.used, addUsed: async () => {} } as never,
    accounts: { balanceNano: async () => db.balance, subtractSpend: async () => {} } as never,
    logger: pino({ level: 'silent' }),
    redis: null,
    redisPrefix: 'test',
  };
  return createLedger(deps);
}

describe('ledger', () => {
  it('admits while both the key quota and the balance cover the hold, and refuses past either', async () => {
    const l = ledgerWith({ used: 0, balance: 1_000 });
    const a = await l.reserve(1, 1, 300, 100);
    const b = await l.reserve(1, 1, 300, 100);
    const c = await l.reserve(1, 1, 300, 100);
    expect([a.ok, b.ok, c.ok]).toEqual([true, true, true]);
    expect(await l.reserve(1, 1, 300, 1)).toEqual({ ok: false, reason: 'key_quota' });
    expect(await l.reserve(2, 1, null, 701)).toEqual({ ok: false, reason: 'balance' });
    expect((await l.reserve(2, 1, null, 700)).ok).toBe(true);
  });

  it('charges the real cost and frees the rest of the hold; a release refunds it all', async () => {
    const l = ledgerWith({ used: 0, balance: 1_000 });
    const r = await l.reserve(1, 1, 300, 300);
    if (!r.ok) throw new Error('not admitted');
    expect(await l.settle(r.reservation, 120)).toBe(120);
    expect(l.usedNano(1, 0)).toBe(120);
    expect(l.balanceNano(1, 0)).toBe(880);
    const again = await l.reserve(1, 1, 300, 180);
    if (!again.ok) throw new Error('not admitted');
    l.release(again.reservation);
    await new Promise((r) => setImmediate(r));
    expect(l.usedNano(1, 0)).toBe(120);
    expect((await l.reserve(1, 1, 300, 180)).ok).toBe(true);
  });

  it('never charges past the quota or balance when an answer costs more than its hold', async () => {
    const l = ledgerWith({ used: 0, balance: 1_000 });
    const r = await l.reserve(1, 1, 250, 200);
    if (!r.ok) throw new Error('not admitted');
    // The upstream ignored the output cap: the answer would cost 400, the quota has 250.
    expect(await l.settle(r.reservation, 400)).toBe(250);
    expect(l.usedNano(1, 0)).toBe(250);
    const s = await l.reserve(2, 1, null, 700);
    if (!s.ok) throw new Error('not admitted');
    expect(await l.settle(s.reservation, 5_000)).toBe(750);
    expect(l.balanceNano(1, 0)).toBe(0);
  });

  it('settles a reservation once', async () => {
    const l = ledgerWith({ used: 0, balance: 1_000 });
    const r = await l.reserve(1, 1, null, 100);
    if (!r.ok) throw new Error('not admitted');
    expect(await l.settle(r.reservation, 50)).toBe(50);
    expect(await l.settle(r.reservation, 50)).toBe(0);
    expect(l.balanceNano(1, 0)).toBe(950);
  });
});
