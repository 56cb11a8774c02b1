// The money ledger on the hot path. Before forwarding, a request reserves its worst-case
// cost against both its key's quota and its account's balance; afterwards it settles the
// real cost (releasing the rest) or is refunded in full. All of that is in memory and
// synchronous once an account is loaded, so concurrent requests can never together spend
// past a quota or balance. Spend reaches the database in batches (usage/writer.ts), in the
// same transaction as the log rows that explain it.
//
// Spend reaches the database with the log rows that explain it (each row carries the cost
// settled for it), so the database stays self-consistent whenever a crash strikes; the usage
// writer's journal keeps what was not written yet (usage/writer.ts).
//
// With REDIS_URL, admission is shared between instances: the live totals (spend, balance,
// holds) live in Redis and reserve/settle are single Lua scripts, so two gateways on one
// database still never spend past a quota together. Each instance keeps batching its own
// settled spend to the database as above. A crashed instance's holds stay in Redis until
// the counters go idle for REDIS_COUNTER_TTL_S and are re-read from the database.
import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import type { Db } from '../db/index.js';
import type { NewLog } from '../db/schema.js';
import type { InvalidationBus } from '../shared/bus.js';
import type { KeysService } from '../keys/service.js';
import type { AccountsService } from '../accounts/service.js';

interface Counter {
  /** Value as last read from / written to the database. */
  base: number;
  /** Settled here, not yet written. */
  pending: number;
  /** Held by requests in flight. */
  reserved: number;
  lastUsed: number;
}

export interface Reservation {
  keyId: number;
  userId: number;
  /** The key's quota when admitted (null = unlimited). */
  quotaNano: number | null;
  amount: number;
  done: boolean;
}

export type ReserveResult =
  | { ok: true; reservation: Reservation }
  | { ok: false; reason: 'key_quota' | 'balance' };

export interface LedgerDeps {
  db: Db;
  bus: InvalidationBus;
  keys: KeysService;
  accounts: AccountsService;
  logger: Logger;
  redis: Redis | null;
  redisPrefix: string;
}

const REDIS_COUNTER_TTL_S = 3600;

// Numbers in these scripts: Redis's Lua (5.1) holds every number as a double, and a
// number handed to redis.call is formatted with %.17g: 0 negated becomes "-0", which
// HINCRBY refuses (the answer would go unbilled), and large values may take an exponent.
// So JS passes every amount as a decimal integer string, and the scripts hand HINCRBY
// either such an ARGV string or INT(n) (string.format %d: exact below 2^53, never "-0").
const LUA_INT = `local function INT(n) return string.format('%d', n) end\n`;
// KEYS: key counter, user counter. ARGV: quota (-1 = none), amount, ttl, key used in DB, user balance in DB
// (the last two only when the caller has read them: -1 = "not read"; answer 3 asks for them).
const RESERVE_LUA = `${LUA_INT}
local kx = redis.call('EXISTS', KEYS[1]); local ux = redis.call('EXISTS', KEYS[2])
if kx == 0 or ux == 0 then
  if tonumber(ARGV[4]) < 0 then return 3 end
  if kx == 0 then redis.call('HSET', KEYS[1], 'used', ARGV[4], 'held', '0') end
  if ux == 0 then redis.call('HSET', KEYS[2], 'bal', ARGV[5], 'held', '0') end
end
local quota = tonumber(ARGV[1]); local amount = tonumber(ARGV[2])
local used = tonumber(redis.call('HGET', KEYS[1], 'used')); local kheld = tonumber(redis.call('HGET', KEYS[1], 'held'))
local bal = tonumber(redis.call('HGET', KEYS[2], 'bal')); local uheld = tonumber(redis.call('HGET', KEYS[2], 'held'))
if quota >= 0 and quota - used - kheld < amount then return 1 end
if bal - uheld < amount then return 2 end
redis.call('HINCRBY', KEYS[1], 'held', ARGV[2]); redis.call('HINCRBY', KEYS[2], 'held', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3]); redis.call('EXPIRE', KEYS[2], ARGV[3])
return 0`;
// KEYS: key counter, user counter. ARGV: held amount, cost, quota (-1 = none), -held amount.
// Releases the hold and charges the cost, but never past what the quota and balance still
// cover; answers the amount charged, as a decimal string.
const SETTLE_LUA = `${LUA_INT}
local hold = tonumber(ARGV[1]); local cost = tonumber(ARGV[2]); local quota = tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then return ARGV[2] end
redis.call('HINCRBY', KEYS[1], 'held', ARGV[4]); redis.call('HINCRBY', KEYS[2], 'held', ARGV[4])
local charge = cost
if cost > hold then
  local room = tonumber(redis.call('HGET', KEYS[2], 'bal')) - tonumber(redis.call('HGET', KEYS[2], 'held'))
  if quota >= 0 then
    room = math.min(room, quota - tonumber(redis.call('HGET', KEYS[1], 'used')) - tonumber(redis.call('HGET', KEYS[1], 'held')))
  end
  charge = math.max(0, math.min(cost, room))
end
if charge > 0 then
  redis.call('HINCRBY', KEYS[1], 'used', INT(charge)); redis.call('HINCRBY', KEYS[2], 'bal', INT(-charge))
end
return INT(charge)`;
const CREDIT_LUA = `if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'bal', ARGV[1]) end return 0`;

/** An integer amount as Redis reads it: decimal digits, never an exponent or "-0". */
const int = (n: number): string => {
  if (!Number.isSafeInteger(n)) throw new Error(`ledger: amount ${n} is not a safe integer`);
  return n === 0 ? '0' : String(n);
};

export function createLedger(deps: LedgerDeps) {
  const redis = deps.redis;
  const rk = (keyId: number) => `${deps.redisPrefix}:ledger:k:${keyId}`;
  const ru = (userId: number) => `${deps.redisPrefix}:ledger:u:${userId}`;
  const keyUsed = new Map<number, Counter>();
  const userBalance = new Map<number, Counter>();
  const loading = new Map<string, Promise<void>>();
  /** Serialises database reads of base values with flushes, so nothing is counted twice. */
  let lock: Promise<void> = Promise.resolve();
  function acquire(): Promise<() => void> {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const prev = lock;
    lock = prev.then(() => held);
    return prev.then(() => release);
  }
  async function withLock<T>(fn: () => Promise<T>): Promise<T> {
    const release = await acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  const newCounter = (base: number): Counter => ({ base, pending: 0, reserved: 0, lastUsed: Date.now() });

  function ensureLoaded(kind: 'k' | 'u', id: number): Promise<void> | null {
    const map = kind === 'k' ? keyUsed : userBalance;
    if (map.has(id)) return null;
    const tag = kind + id;
    let p = loading.get(tag);
    if (!p) {
      p = withLock(async () => {
        const base = kind === 'k' ? await deps.keys.usedNano(id) : await deps.accounts.balanceNano(id);
        if (!map.has(id)) map.set(id, newCounter(base));
      }).finally(() => loading.delete(tag));
      loading.set(tag, p);
    }
    return p;
  }

  // A top-up or admin change to a balance: re-read the base (pending spend is not in the DB yet).
  deps.bus.on((msg) => {
    if (msg.kind !== 'user') return;
    const c = userBalance.get(msg.userId);
    if (!c) return;
    void withLock(async () => {
      c.base = await deps.accounts.balanceNano(msg.userId);
    }).catch((err) => deps.logger.error({ err: String(err) }, 'ledger: balance reload failed'));
  });

  const available = {
    key: (c: Counter, quota: number) => quota - (c.base + c.pending + c.reserved),
    user: (c: Counter) => c.base - c.pending - c.reserved,
  };

  async function reserveShared(
    keyId: number,
    userId: number,
    quotaNano: number | null,
    amount: number,
  ): Promise<ReserveResult> {
    const run = (kDb: number, uDb: number) =>
      redis!.eval(
        RESERVE_LUA,
        2,
        rk(keyId),
        ru(userId),
        int(quotaNano ?? -1),
        int(amount),
        REDIS_COUNTER_TTL_S,
        int(kDb),
        int(uDb),
      ) as Promise<number>;
    let answer = await run(-1, -1);
    if (answer === 3) {
      // First use anywhere (or after idling out): seed from the database plus our unwritten spend.
      const [kDb, uDb] = await withLock(async () => [
        await deps.keys.usedNano(keyId),
        await deps.accounts.balanceNano(userId),
      ]);
      answer = await run(
        kDb! + (keyUsed.get(keyId)?.pending ?? 0),
        uDb! - (userBalance.get(userId)?.pending ?? 0),
      );
    }
    if (answer === 1) return { ok: false, reason: 'key_quota' };
    if (answer === 2) return { ok: false, reason: 'balance' };
    keyUsed.get(keyId)!.lastUsed = userBalance.get(userId)!.lastUsed = Date.now();
    return { ok: true, reservation: { keyId, userId, quotaNano, amount, done: false } };
  }

  /**
   * Releases the hold and charges the real cost; answers what was charged. The cost is the
   * whole charge whenever it fits the hold — always, when the upstream keeps to the admitted
   * output cap. Should an upstream overrun it, the charge stops at what the key quota and the
   * account balance still cover, so spend never passes either.
   */
  async function settle(r: Reservation, cost: number): Promise<number> {
    if (r.done) return 0;
    r.done = true;
    const k = keyUsed.get(r.keyId)!;
    const u = userBalance.get(r.userId)!;
    let charge = cost;
    if (redis) {
      charge = Number(
        await redis.eval(
          SETTLE_LUA,
          2,
          rk(r.keyId),
          ru(r.userId),
          int(r.amount),
          int(cost),
          int(r.quotaNano ?? -1),
          int(-r.amount),
        ),
      );
    } else {
      k.reserved -= r.amount;
      u.reserved -= r.amount;
      if (cost > r.amount) {
        const userRoom = u.base - u.pending - u.reserved;
        const keyRoom = r.quotaNano === null ? Infinity : r.quotaNano - (k.base + k.pending + k.reserved);
        charge = Math.max(0, Math.min(cost, userRoom, keyRoom));
      }
    }
    k.pending += charge;
    u.pending += charge;
    return charge;
  }

  return {
    /** Holds `amount` nano-USD against the key quota (null = unlimited) and the account balance. */
    async reserve(
      keyId: number,
      userId: number,
      quotaNano: number | null,
      amount: number,
    ): Promise<ReserveResult> {
      const a = ensureLoaded('k', keyId);
      const b = ensureLoaded('u', userId);
      if (a) await a;
      if (b) await b;
      if (redis) return reserveShared(keyId, userId, quotaNano, amount);
      // From here to the increments there is no await: the check and the hold are atomic.
      const k = keyUsed.get(keyId)!;
      const u = userBalance.get(userId)!;
      if (quotaNano !== null && available.key(k, quotaNano) < amount)
        return { ok: false, reason: 'key_quota' };
      if (available.user(u) < amount) return { ok: false, reason: 'balance' };
      k.reserved += amount;
      u.reserved += amount;
      k.lastUsed = u.lastUsed = Date.now();
      return { ok: true, reservation: { keyId, userId, quotaNano, amount, done: false } };
    },

    settle,
    release: (r: Reservation): void =>
      void settle(r, 0).catch((err: unknown) =>
        deps.logger.error({ err: String(err) }, 'ledger: release failed'),
      ),

    /** Spend as the API shows it: database value plus what is not written yet. */
    usedNano(keyId: number, dbValue: number): number {
      const k = keyUsed.get(keyId);
      return k ? k.base + k.pending : dbValue;
    },

    /**
     * Contributor to the usage writer's transaction: writes the spend of the log rows in the
     * batch (each row's cost is what settle charged for it), and once the transaction commits
     * moves it from pending into the base values. Spend settled while the batch is written
     * waits for its own rows, so the database never holds spend its logs do not explain.
     */
    async flushInto(trx: Db, rows: readonly NewLog[]): Promise<{ committed(): void; aborted(): void }> {
      // Held from here until commit or abort, so no base is re-read mid-flush.
      const release = await acquire();
      const keyDeltas = new Map<number, number>();
      const userDeltas = new Map<number, number>();
      for (const r of rows) {
        const cost = Number(r.cost_nano);
        if (!cost) continue;
        keyDeltas.set(r.key_id, (keyDeltas.get(r.key_id) ?? 0) + cost);
        userDeltas.set(r.user_id, (userDeltas.get(r.user_id) ?? 0) + cost);
      }
      try {
        await deps.keys.addUsed(trx, keyDeltas);
        await deps.accounts.subtractSpend(trx, userDeltas);
      } catch (err) {
        release();
        throw err;
      }
      return {
        committed() {
          // Counters exist for rows settled by this process; replayed rows have none (their
          // spend is in the database now, where a counter loaded later reads it).
          for (const [id, d] of keyDeltas) {
            const c = keyUsed.get(id);
            if (!c) continue;
            c.pending -= d;
            c.base += d;
          }
          for (const [id, d] of userDeltas) {
            const c = userBalance.get(id);
            if (!c) continue;
            c.pending -= d;
            c.base -= d;
          }
          // Forget idle accounts so memory tracks the active set, not every key ever seen.
          const idleBefore = Date.now() - 10 * 60_000;
          for (const m of [keyUsed, userBalance])
            for (const [id, c] of m) if (!c.pending && !c.reserved && c.lastUsed < idleBefore) m.delete(id);
          release();
        },
        aborted: release,
      };
    },

    /** A top-up or debit by an admin: the shared counter moves with it (in-process counters re-read it). */
    async credit(userId: number, amountNano: number): Promise<void> {
      if (redis) await redis.eval(CREDIT_LUA, 1, ru(userId), int(amountNano));
    },

    /** Balance as the API shows it: database value minus what is not written yet. */
    balanceNano(userId: number, dbValue: number): number {
      const u = userBalance.get(userId);
      return u ? u.base - u.pending : dbValue;
    },

    stats: () => ({ keys: keyUsed.size, users: userBalance.size }),
  };
}

export type Ledger = ReturnType<typeof createLedger>;
