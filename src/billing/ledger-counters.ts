// What each instance keeps in process, whichever ledger it runs: per key and per account, the
// value last read from / written to the database, the spend settled here and not written yet,
// and (local ledger only) the holds of requests in flight. The usage writer's flush moves
// pending spend into the base values once its transaction commits.
import type { Logger } from 'pino';
import type { Db } from '../db/index.js';
import type { NewLog } from '../db/schema.js';
import type { InvalidationBus } from '../shared/bus.js';
import type { Clock } from '../shared/clock.js';
import { createLock } from '../shared/lock.js';
import { type FlushHandle, type Ledger, type LedgerStore, spendOf } from './ledger.js';

export interface Counter {
  /** Value as last read from / written to the database. */
  base: number;
  /** Settled here, not yet written. */
  pending: number;
  /** Held by requests in flight (in process only; with Redis the holds are there). */
  reserved: number;
  lastUsed: number;
}

export interface CountersDeps {
  store: LedgerStore;
  bus: InvalidationBus;
  logger: Logger;
  now?: Clock;
}

/** Counters idle this long, with nothing pending or held, are forgotten after a flush. */
const IDLE_MS = 10 * 60_000;

/**
 * A committed flush, per counter of `map`: `taken` leaves its pending spend and the database's
 * change (`written`, times `sign`: spend adds to a key's use, takes from a balance) joins its
 * base. Counters exist for rows settled by this process; replayed rows have none (their spend
 * is in the database now, where a counter loaded later reads it).
 */
export function moveToBase(
  map: Map<number, Counter>,
  taken: ReadonlyMap<number, number>,
  written: ReadonlyMap<number, number>,
  sign: 1 | -1,
): void {
  for (const [id, d] of taken) {
    const c = map.get(id);
    if (!c) continue;
    c.pending -= d;
    c.base += sign * (written.get(id) ?? 0);
  }
}

/** Forgets idle counters with nothing pending or held, so memory tracks the active set, not every key ever seen. */
export function forgetIdle(maps: Map<number, Counter>[], now: number): void {
  const idleBefore = now - IDLE_MS;
  for (const m of maps)
    for (const [id, c] of m) if (!c.pending && !c.reserved && c.lastUsed < idleBefore) m.delete(id);
}

/**
 * A flush's handle, with `acquire`'s lock held from the write until the transaction commits or
 * aborts, so no base is re-read mid-flush: `write` adds the batch's spend inside the
 * transaction, `commit` moves it into the counters once the transaction commits.
 */
export async function lockedFlush(
  acquire: () => Promise<() => void>,
  write: () => Promise<void>,
  commit: () => void,
): Promise<FlushHandle> {
  const release = await acquire();
  try {
    await write();
  } catch (err) {
    release();
    throw err;
  }
  return {
    committed() {
      commit();
      release();
    },
    aborted: release,
  };
}

export function createCounters(deps: CountersDeps) {
  const now = deps.now ?? Date.now;
  const keys = new Map<number, Counter>();
  const users = new Map<number, Counter>();
  const loading = new Map<string, Promise<void>>();

  /** Serialises database reads of base values with flushes, so nothing is counted twice. */
  const acquire = createLock();
  async function withLock<T>(fn: () => Promise<T>): Promise<T> {
    const release = await acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  function ensureLoaded(kind: 'k' | 'u', id: number): Promise<void> | null {
    const map = kind === 'k' ? keys : users;
    if (map.has(id)) return null;
    const tag = kind + id;
    let p = loading.get(tag);
    if (!p) {
      p = withLock(async () => {
        const base = kind === 'k' ? await deps.store.usedNano(id) : await deps.store.balanceNano(id);
        if (!map.has(id)) map.set(id, { base, pending: 0, reserved: 0, lastUsed: now() });
      }).finally(() => loading.delete(tag));
      loading.set(tag, p);
    }
    return p;
  }

  // A top-up or admin change to a balance: re-read the base (pending spend is not in the DB yet).
  // Changes that may have been missed (`all`): every balance held here.
  deps.bus.on((msg) => {
    const ids = msg.kind === 'user' ? [msg.userId] : msg.kind === 'all' ? [...users.keys()] : [];
    for (const userId of ids) {
      const c = users.get(userId);
      if (!c) continue;
      void withLock(async () => {
        c.base = await deps.store.balanceNano(userId);
      }).catch((err) => deps.logger.error({ err: String(err) }, 'ledger: balance reload failed'));
    }
  });

  return {
    keys,
    users,
    now,
    withLock,

    /** Loads both counters (once; concurrent callers share the read) and answers them. */
    async load(keyId: number, userId: number): Promise<{ k: Counter; u: Counter }> {
      const a = ensureLoaded('k', keyId);
      const b = ensureLoaded('u', userId);
      if (a) await a;
      if (b) await b;
      return { k: keys.get(keyId)!, u: users.get(userId)! };
    },

    // The database's value (every instance's written spend) and this instance's unwritten
    // spend: a base read once at load would miss what other instances wrote since. Read under
    // the flush lock: a flush holds it from its write until its spend has left `pending`.
    usedNano(keyId: number, read: () => Promise<number>): Promise<number> {
      return withLock(async () => (await read()) + (keys.get(keyId)?.pending ?? 0));
    },

    balanceNano(userId: number, read: () => Promise<number>): Promise<number> {
      return withLock(async () => (await read()) - (users.get(userId)?.pending ?? 0));
    },

    /**
     * Writes the spend of the log rows in the batch, and once the transaction commits moves
     * it from pending into the base values. Spend settled while the batch is written waits for
     * its own rows, so the database never holds spend its logs do not explain.
     */
    async flushInto(
      trx: Db,
      rows: readonly NewLog[],
      written: readonly NewLog[] = rows,
    ): Promise<FlushHandle> {
      // Written: the spend the database gains. Taken: the spend no longer pending here (a row
      // the database already held, from a replay or a repeat, charges nothing twice).
      const { keys: keyDeltas, users: userDeltas } = spendOf(written);
      const taken = written === rows ? { keys: keyDeltas, users: userDeltas } : spendOf(rows);
      return lockedFlush(
        acquire,
        async () => {
          await deps.store.addUsed(trx, keyDeltas);
          await deps.store.subtractSpend(trx, userDeltas);
        },
        () => {
          moveToBase(keys, taken.keys, keyDeltas, 1);
          moveToBase(users, taken.users, userDeltas, -1);
          forgetIdle([keys, users], now());
        },
      );
    },

    stats: () => ({ keys: keys.size, users: users.size }),
  };
}

export type Counters = ReturnType<typeof createCounters>;

/**
 * The Ledger members both implementations answer alike over their counters: their own `settle`,
 * a release (a settle at cost 0, in the background, errors logged), the shown values, the
 * usage writer's flush and the stats.
 */
export function countedMembers(
  counters: Counters,
  settle: Ledger['settle'],
  logger: Logger,
): Pick<Ledger, 'settle' | 'release' | 'usedNano' | 'balanceNano' | 'flushInto' | 'stats'> {
  return {
    settle,
    release: (r) =>
      void settle(r, 0).catch((err: unknown) => logger.error({ err: String(err) }, 'ledger: release failed')),
    usedNano: counters.usedNano,
    balanceNano: counters.balanceNano,
    flushInto: counters.flushInto,
    stats: counters.stats,
  };
}
