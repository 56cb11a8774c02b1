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

// The shared (Redis) ledger: the same arithmetic in Lua. Skipped without a Redis server.
const REDIS_URL = process.env.MOLE_TEST_REDIS_URL;
describe.skipIf(!REDIS_URL)('ledger on Redis', () => {
  async function sharedLedger(
    db: { used: number; balance: number },
    opts: { prefix?: string; leaseMs?: number } = {},
  ) {
    const { Redis } = await import('ioredis');
    const redis = new Redis(REDIS_URL!);
    const prefix = opts.prefix ?? `test:${process.pid}:${Math.random().toString(36).slice(2)}`;
    const ledger = createLedger({
      holdLeaseMs: opts.leaseMs ?? 30_000,
      db: null as never,
      bus: new InvalidationBus(),
      keys: { usedNano: async () => db.used, addUsed: async () => {} } as never,
      accounts: { balanceNano: async () => db.balance, subtractSpend: async () => {} } as never,
      logger: pino({ level: 'silent' }),
      redis,
      redisPrefix: prefix,
    });
    return { ledger, redis, prefix };
  }

  it('bills an answer whose hold was 0 (an empty embedding input, a free model)', async () => {
    const { ledger, redis } = await sharedLedger({ used: 0, balance: 1_000_000 });
    try {
      const r = await ledger.reserve(1, 1, null, 0);
      if (!r.ok) throw new Error('not admitted');
      // 200 tokens at 10 USD per 1M = 2_000_000 nano; the hold was 0.
      expect(await ledger.settle(r.reservation, 2_000)).toBe(2_000);
      expect(ledger.usedNano(1, 0)).toBe(2_000);
      // A free request settles to 0 without an error.
      const z = await ledger.reserve(1, 1, null, 0);
      if (!z.ok) throw new Error('not admitted');
      expect(await ledger.settle(z.reservation, 0)).toBe(0);
      expect(ledger.balanceNano(1, 0)).toBe(1_000_000 - 2_000);
    } finally {
      redis.disconnect();
    }
  });

  it('holds and charges amounts past 2^31 and near 1e15 nano-USD exactly', async () => {
    const big = 2 ** 31 + 7;
    const huge = 1_234_567_890_123_457;
    const { ledger, redis } = await sharedLedger({ used: 0, balance: 4_000_000_000_000_001 });
    try {
      const a = await ledger.reserve(1, 1, null, big);
      if (!a.ok) throw new Error('not admitted');
      expect(await ledger.settle(a.reservation, big - 1)).toBe(big - 1);
      const b = await ledger.reserve(1, 1, 3_000_000_000_000_000, huge);
      if (!b.ok) throw new Error('not admitted');
      expect(await ledger.settle(b.reservation, huge + 3)).toBe(huge + 3);
      expect(ledger.usedNano(1, 0)).toBe(big - 1 + huge + 3);
      // The shared counters hold the same exact integers, and no hold is left behind.
      const c = await ledger.reserve(1, 1, null, 0);
      if (!c.ok) throw new Error('not admitted');
      expect(await ledger.settle(c.reservation, 0)).toBe(0);
      expect(ledger.balanceNano(1, 0)).toBe(4_000_000_000_000_001 - (big - 1 + huge + 3));
    } finally {
      redis.disconnect();
    }
  });

  it("releases a crashed instance's holds once its lease runs out; a live instance's stay", async () => {
    const prefix = `test:${process.pid}:${Math.random().toString(36).slice(2)}`;
    const db = { used: 0, balance: 1_000 };
    const a = await sharedLedger(db, { prefix, leaseMs: 1_000 });
    const b = await sharedLedger(db, { prefix, leaseMs: 1_000 });
    try {
      const held = await a.ledger.reserve(1, 1, null, 900);
      expect(held.ok).toBe(true);
      expect(await b.ledger.reserve(1, 1, null, 200)).toEqual({ ok: false, reason: 'balance' });
      // A live instance keeps its hold past the lease (its heartbeat renews it).
      await new Promise((r) => setTimeout(r, 1_500));
      expect(await b.ledger.reserve(1, 1, null, 200)).toEqual({ ok: false, reason: 'balance' });
      // "kill -9": A stops renewing without giving anything back.
      a.redis.disconnect();
      await new Promise((r) => setTimeout(r, 1_300));
      const after = await b.ledger.reserve(1, 1, null, 200);
      expect(after.ok).toBe(true);
      if (after.ok) expect(await b.ledger.settle(after.reservation, 150)).toBe(150);
      expect(await b.ledger.reserve(1, 1, null, 851)).toEqual({ ok: false, reason: 'balance' });
      expect((await b.ledger.reserve(1, 1, null, 850)).ok).toBe(true);
      // The dead instance's hold field is gone from the shared counter.
      const fields = await b.redis.hkeys(`${prefix}:ledger:u:1`);
      expect(fields.filter((f) => f.startsWith('h:'))).toHaveLength(1);
    } finally {
      await a.ledger.close();
      await b.ledger.close();
      b.redis.disconnect();
    }
  });
});
