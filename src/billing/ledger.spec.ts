// One spec for every Ledger implementation (run by ledger-local.test.ts and
// ledger-redis.test.ts): holds, settlement, refunds, refusals, concurrency, zero and large
// amounts, the usage writer's flush, top-ups, and what happens to a crashed instance's holds.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Db } from '../db/index.js';
import type { NewLog } from '../db/schema.js';
import { InvalidationBus } from '../shared/bus.js';
import type { Ledger, LedgerStore, Reservation } from './ledger.js';

/** The database's side of the ledger: a key's stored spend and its owner's stored balance. */
export interface Stored {
  used: number;
  balance: number;
}

export interface Made {
  ledger: Ledger;
  /** This instance dies without giving anything back ("kill -9"). */
  crash(): Promise<void>;
  /** A clean stop. */
  close(): Promise<void>;
}

export interface LedgerImpl {
  /**
   * A ledger over `store`. Instances made with the same `space` share counters when the
   * implementation shares them across instances (Redis); `leaseMs` is the hold lease there.
   */
  make(deps: { store: LedgerStore; bus: InvalidationBus; space: string; leaseMs?: number }): Promise<Made>;
  /** Whether instances share admission (and so need leases on their holds). */
  shared: boolean;
}

export const silent = pino({ level: 'silent' });

/** A store over plain numbers; flushes apply to them as a database would. */
export function storeOn(stored: Stored): LedgerStore {
  return {
    usedNano: async () => stored.used,
    balanceNano: async () => stored.balance,
    addUsed: async (_trx, deltas) => {
      for (const d of deltas.values()) stored.used += d;
    },
    subtractSpend: async (_trx, deltas) => {
      for (const d of deltas.values()) stored.balance -= d;
    },
  };
}

let spaces = 0;
const newSpace = () => `spec:${process.pid}:${Date.now().toString(36)}:${spaces++}`;

function admitted(r: Awaited<ReturnType<Ledger['reserve']>>): Reservation {
  if (!r.ok) throw new Error(`not admitted: ${r.reason}`);
  return r.reservation;
}

const row = (keyId: number, userId: number, cost: number, n: number): NewLog =>
  ({ key_id: keyId, user_id: userId, cost_nano: cost, request_id: `r${n}` }) as unknown as NewLog;

export function ledgerSpec(name: string, impl: LedgerImpl): void {
  describe(`${name} ledger`, () => {
    const open: Made[] = [];
    async function ledgerOn(
      stored: Stored,
      opts: { space?: string; leaseMs?: number; bus?: InvalidationBus } = {},
    ) {
      const made = await impl.make({
        store: storeOn(stored),
        bus: opts.bus ?? new InvalidationBus(),
        space: opts.space ?? newSpace(),
        ...(opts.leaseMs !== undefined ? { leaseMs: opts.leaseMs } : {}),
      });
      open.push(made);
      return made;
    }
    afterEach(async () => {
      for (const m of open.splice(0)) await m.close();
    });

    it('admits while both the key quota and the balance cover the hold, and refuses past either', async () => {
      const { ledger: l } = await ledgerOn({ used: 0, balance: 1_000 });
      const results = [
        await l.reserve(1, 1, 300, 100),
        await l.reserve(1, 1, 300, 100),
        await l.reserve(1, 1, 300, 100),
      ];
      expect(results.map((r) => r.ok)).toEqual([true, true, true]);
      expect(await l.reserve(1, 1, 300, 1)).toEqual({ ok: false, reason: 'key_quota' });
      expect(await l.reserve(2, 1, null, 701)).toEqual({ ok: false, reason: 'balance' });
      expect((await l.reserve(2, 1, null, 700)).ok).toBe(true);
      // Both short: the key quota is named first.
      expect(await l.reserve(3, 1, 10, 20)).toEqual({ ok: false, reason: 'key_quota' });
    });

    it('counts the stored spend against the quota and the stored balance', async () => {
      const { ledger: l } = await ledgerOn({ used: 250, balance: 400 });
      expect(await l.reserve(1, 1, 300, 51)).toEqual({ ok: false, reason: 'key_quota' });
      expect((await l.reserve(1, 1, 300, 50)).ok).toBe(true);
      expect(await l.reserve(2, 1, null, 351)).toEqual({ ok: false, reason: 'balance' });
      expect((await l.reserve(2, 1, null, 350)).ok).toBe(true);
    });

    it('charges the real cost and frees the rest of the hold; a release refunds it all', async () => {
      const { ledger: l } = await ledgerOn({ used: 0, balance: 1_000 });
      const r = admitted(await l.reserve(1, 1, 300, 300));
      expect(await l.settle(r, 120)).toBe(120);
      expect(await l.usedNano(1, async () => 0)).toBe(120);
      expect(await l.balanceNano(1, async () => 1_000)).toBe(880);
      const again = admitted(await l.reserve(1, 1, 300, 180));
      expect(await l.reserve(1, 1, 300, 1)).toEqual({ ok: false, reason: 'key_quota' });
      l.release(again);
      await expect.poll(async () => (await l.reserve(1, 1, 300, 180)).ok).toBe(true);
      expect(await l.usedNano(1, async () => 0)).toBe(120);
    });

    it('never charges past the quota or balance when an answer costs more than its hold', async () => {
      const { ledger: l } = await ledgerOn({ used: 0, balance: 1_000 });
      const r = admitted(await l.reserve(1, 1, 250, 200));
      // The upstream ignored the output cap: the answer would cost 400, the quota has 250.
      expect(await l.settle(r, 400)).toBe(250);
      expect(await l.usedNano(1, async () => 0)).toBe(250);
      const s = admitted(await l.reserve(2, 1, null, 700));
      expect(await l.settle(s, 5_000)).toBe(750);
      expect(await l.balanceNano(1, async () => 1_000)).toBe(0);
      expect(await l.reserve(3, 1, null, 1)).toEqual({ ok: false, reason: 'balance' });
    });

    it('an overrun leaves room for the holds of requests still in flight', async () => {
      const { ledger: l } = await ledgerOn({ used: 0, balance: 1_000 });
      const other = admitted(await l.reserve(2, 1, null, 600));
      const r = admitted(await l.reserve(1, 1, null, 100));
      expect(await l.settle(r, 900)).toBe(400);
      expect(await l.settle(other, 600)).toBe(600);
      expect(await l.balanceNano(1, async () => 1_000)).toBe(0);
    });

    it('settles a reservation once', async () => {
      const { ledger: l } = await ledgerOn({ used: 0, balance: 1_000 });
      const r = admitted(await l.reserve(1, 1, null, 100));
      expect(await l.settle(r, 50)).toBe(50);
      expect(await l.settle(r, 50)).toBe(0);
      l.release(r);
      expect(await l.balanceNano(1, async () => 1_000)).toBe(950);
    });

    it('concurrent reservations never spend past a quota or a balance together', async () => {
      const { ledger: l } = await ledgerOn({ used: 0, balance: 1_000 });
      const quota = await Promise.all(Array.from({ length: 40 }, () => l.reserve(1, 1, 500, 100)));
      expect(quota.filter((r) => r.ok)).toHaveLength(5);
      expect(quota.filter((r) => !r.ok && r.reason === 'key_quota')).toHaveLength(35);
      const balance = await Promise.all(
        Array.from({ length: 40 }, (_, i) => l.reserve(10 + i, 1, null, 100)),
      );
      expect(balance.filter((r) => r.ok)).toHaveLength(5);
      // Settling them all at once charges exactly what was held.
      const held = [...quota, ...balance].flatMap((r) => (r.ok ? [r.reservation] : []));
      const charged = await Promise.all(held.map((r) => l.settle(r, 100)));
      expect(charged.reduce((a, b) => a + b, 0)).toBe(1_000);
      expect(await l.balanceNano(1, async () => 1_000)).toBe(0);
    });

    it('bills an answer whose hold was 0, and settles a free request to 0', async () => {
      const { ledger: l } = await ledgerOn({ used: 0, balance: 1_000_000 });
      const r = admitted(await l.reserve(1, 1, null, 0));
      expect(await l.settle(r, 2_000)).toBe(2_000);
      expect(await l.usedNano(1, async () => 0)).toBe(2_000);
      const z = admitted(await l.reserve(1, 1, null, 0));
      expect(await l.settle(z, 0)).toBe(0);
      expect(await l.balanceNano(1, async () => 1_000_000)).toBe(1_000_000 - 2_000);
      // A zero hold is admitted even on an empty balance or an exhausted quota.
      const { ledger: empty } = await ledgerOn({ used: 5, balance: 0 });
      expect((await empty.reserve(1, 1, 5, 0)).ok).toBe(true);
      expect(await empty.reserve(1, 1, 5, 1)).toEqual({ ok: false, reason: 'key_quota' });
    });

    it('holds and charges amounts past 2^31 and near 1e15 nano-USD exactly', async () => {
      const big = 2 ** 31 + 7;
      const huge = 1_234_567_890_123_457;
      const { ledger: l } = await ledgerOn({ used: 0, balance: 4_000_000_000_000_001 });
      expect(await l.settle(admitted(await l.reserve(1, 1, null, big)), big - 1)).toBe(big - 1);
      const b = admitted(await l.reserve(1, 1, 3_000_000_000_000_000, huge));
      expect(await l.settle(b, huge + 3)).toBe(huge + 3);
      expect(await l.usedNano(1, async () => 0)).toBe(big - 1 + huge + 3);
      // No hold is left behind: a zero hold settles to zero and the sums stay exact.
      expect(await l.settle(admitted(await l.reserve(1, 1, null, 0)), 0)).toBe(0);
      expect(await l.balanceNano(1, async () => 4_000_000_000_000_001)).toBe(
        4_000_000_000_000_001 - (big - 1 + huge + 3),
      );
    });

    it('a read while a batch commits counts its spend once (GET /v1/key)', async () => {
      const stored = { used: 100, balance: 1_000 };
      const { ledger: l } = await ledgerOn(stored);
      expect(await l.settle(admitted(await l.reserve(1, 1, null, 300)), 200)).toBe(200);
      const tx = await l.flushInto(null as unknown as Db, [row(1, 1, 200, 1)]);
      // Written (the store holds the batch's spend) but not committed: the reads wait for it.
      const used = l.usedNano(1, async () => stored.used);
      const balance = l.balanceNano(1, async () => stored.balance);
      await new Promise((r) => setImmediate(r));
      tx.committed();
      expect([await used, await balance]).toEqual([300, 800]);
    });

    it("a flush writes the batch's spend, and the shown values do not move", async () => {
      const stored = { used: 100, balance: 1_000 };
      const { ledger: l } = await ledgerOn(stored);
      const a = admitted(await l.reserve(1, 1, null, 300));
      expect(await l.settle(a, 200)).toBe(200);
      const b = admitted(await l.reserve(1, 1, null, 300));
      expect(await l.settle(b, 50)).toBe(50);
      expect([
        await l.usedNano(1, async () => stored.used),
        await l.balanceNano(1, async () => stored.balance),
      ]).toEqual([350, 750]);
      // A batch holding the first row only: the second one's spend stays pending.
      const tx = await l.flushInto(null as unknown as Db, [row(1, 1, 200, 1)]);
      tx.committed();
      expect(stored).toEqual({ used: 300, balance: 800 });
      expect([
        await l.usedNano(1, async () => stored.used),
        await l.balanceNano(1, async () => stored.balance),
      ]).toEqual([350, 750]);
      // An aborted batch changes nothing here (the database rolled it back).
      const undone = await l.flushInto(null as unknown as Db, [row(1, 1, 50, 2)]);
      stored.used -= 50;
      stored.balance += 50;
      undone.aborted();
      expect([
        await l.usedNano(1, async () => stored.used),
        await l.balanceNano(1, async () => stored.balance),
      ]).toEqual([350, 750]);
      // Admission still counts everything: 1000 - 250 left 750.
      expect(await l.reserve(1, 1, null, 751)).toEqual({ ok: false, reason: 'balance' });
    });

    it('a top-up is seen by the next reservation', async () => {
      const stored = { used: 0, balance: 100 };
      const bus = new InvalidationBus();
      const { ledger: l } = await ledgerOn(stored, { bus });
      expect(await l.reserve(1, 1, null, 150)).toEqual({ ok: false, reason: 'balance' });
      // What the accounts domain does: store the new balance, move the shared counter, announce it.
      stored.balance += 100;
      await l.credit(1, 100);
      bus.publish({ kind: 'user', userId: 1 });
      await expect.poll(async () => (await l.reserve(1, 1, null, 150)).ok).toBe(true);
    });

    it.runIf(impl.shared)('instances share admission', async () => {
      const space = newSpace();
      const stored = { used: 0, balance: 1_000 };
      const a = await ledgerOn(stored, { space });
      const b = await ledgerOn(stored, { space });
      const all = await Promise.all(
        Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).ledger.reserve(1, 1, 600, 100)),
      );
      expect(all.filter((r) => r.ok)).toHaveLength(6);
      expect(await b.ledger.reserve(2, 1, null, 401)).toEqual({ ok: false, reason: 'balance' });
    });

    it.runIf(impl.shared)(
      "releases a crashed instance's holds once its lease runs out; a live instance's stay",
      async () => {
        const space = newSpace();
        const stored = { used: 0, balance: 1_000 };
        const a = await ledgerOn(stored, { space, leaseMs: 1_000 });
        const b = await ledgerOn(stored, { space, leaseMs: 1_000 });
        admitted(await a.ledger.reserve(1, 1, null, 900));
        expect(await b.ledger.reserve(1, 1, null, 200)).toEqual({ ok: false, reason: 'balance' });
        // A live instance keeps its hold past the lease (its heartbeat renews it). The lease
        // runs on the Redis server's clock, so only real time moves it.
        await new Promise((r) => setTimeout(r, 1_500));
        expect(await b.ledger.reserve(1, 1, null, 200)).toEqual({ ok: false, reason: 'balance' });
        // "kill -9": A stops renewing without giving anything back.
        await a.crash();
        await expect
          .poll(async () => (await b.ledger.reserve(1, 1, null, 200)).ok, { timeout: 5_000, interval: 100 })
          .toBe(true);
        // Only B's 200 is held now.
        expect(await b.ledger.reserve(1, 1, null, 801)).toEqual({ ok: false, reason: 'balance' });
        expect((await b.ledger.reserve(1, 1, null, 800)).ok).toBe(true);
      },
    );

    it.runIf(!impl.shared)("a crashed instance's holds die with it: a new one starts with none", async () => {
      const stored = { used: 0, balance: 1_000 };
      const a = await ledgerOn(stored);
      admitted(await a.ledger.reserve(1, 1, null, 900));
      await a.crash();
      const b = await ledgerOn(stored);
      expect((await b.ledger.reserve(1, 1, null, 1_000)).ok).toBe(true);
    });
  });
}
