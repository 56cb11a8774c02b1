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
// settled spend to the database as above. Holds are leases: a crashed instance's holds stop
// counting within MOLE_HOLD_LEASE_MS (30 s by default) of its last heartbeat.
import { randomBytes } from 'node:crypto';
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
  /** With Redis: how long this instance's holds outlive its last heartbeat (default 30 s). */
  holdLeaseMs?: number;
}

const REDIS_COUNTER_TTL_S = 3600;

// Numbers in these scripts: Redis's Lua (5.1) holds every number as a double, and a
// number handed to redis.call is formatted with %.17g: 0 negated becomes "-0", which
// HINCRBY refuses (the answer would go unbilled), and large values may take an exponent.
// So JS passes every amount as a decimal integer string, and the scripts hand HINCRBY
// either such an ARGV string or INT(n) (string.format %d: exact below 2^53, never "-0").
const LUA_INT = `local function INT(n) return string.format('%d', n) end\n`;
// Holds are leases: each instance keeps its holds in its own field of a counter ("h:<id>"),
// and they count only while the instance's liveness key (refreshed every lease/3, expiring
// after MOLE_HOLD_LEASE_MS) exists. A crashed instance's holds stop counting when its lease
// runs out, and the next script to look at the counter deletes them.
const LUA_HELD = `local function HELD(k, livep)
  local t = redis.call('HGETALL', k); local sum = 0
  for i = 1, #t, 2 do
    local f = t[i]
    if string.sub(f, 1, 2) == 'h:' then
      if redis.call('EXISTS', livep .. string.sub(f, 3)) == 1 then sum = sum + tonumber(t[i + 1])
      else redis.call('HDEL', k, f) end
    end
  end
  return sum
end
`;
// KEYS: key counter, user counter, this instance's liveness key. ARGV: quota (-1 = none), amount,
// ttl, key used in DB, user balance in DB (these two only when the caller has read them: -1 =
// "not read"; answer 3 asks for them), this instance's hold field, liveness key prefix, lease ms.
const RESERVE_LUA = `${LUA_INT}${LUA_HELD}
local kx = redis.call('EXISTS', KEYS[1]); local ux = redis.call('EXISTS', KEYS[2])
if kx == 0 or ux == 0 then
  if tonumber(ARGV[4]) < 0 then return 3 end
  if kx == 0 then redis.call('HSET', KEYS[1], 'used', ARGV[4]) end
  if ux == 0 then redis.call('HSET', KEYS[2], 'bal', ARGV[5]) end
end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[8])
local quota = tonumber(ARGV[1]); local amount = tonumber(ARGV[2])
local used = tonumber(redis.call('HGET', KEYS[1], 'used')); local kheld = HELD(KEYS[1], ARGV[7])
local bal = tonumber(redis.call('HGET', KEYS[2], 'bal')); local uheld = HELD(KEYS[2], ARGV[7])
if quota >= 0 and quota - used - kheld < amount then return 1 end
if bal - uheld < amount then return 2 end
redis.call('HINCRBY', KEYS[1], ARGV[6], ARGV[2]); redis.call('HINCRBY', KEYS[2], ARGV[6], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3]); redis.call('EXPIRE', KEYS[2], ARGV[3])
return 0`;
// KEYS: key counter, user counter. ARGV: held amount, cost, quota (-1 = none), this instance's
// hold field, liveness key prefix. Releases the hold and charges the cost, but never past what
// the quota and balance still cover; answers the amount charged, as a decimal string.
const SETTLE_LUA = `${LUA_INT}${LUA_HELD}
local hold = tonumber(ARGV[1]); local cost = tonumber(ARGV[2]); local quota = tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then return ARGV[2] end
local function DROP(k)
  local v = redis.call('HGET', k, ARGV[4]); local h = v and tonumber(v) or 0
  if h > hold then redis.call('HSET', k, ARGV[4], INT(h - hold)) else redis.call('HDEL', k, ARGV[4]) end
end
DROP(KEYS[1]); DROP(KEYS[2])
local charge = cost
if cost > hold then
  local room = tonumber(redis.call('HGET', KEYS[2], 'bal')) - HELD(KEYS[2], ARGV[5])
  if quota >= 0 then
    room = math.min(room, quota - tonumber(redis.call('HGET', KEYS[1], 'used')) - HELD(KEYS[1], ARGV[5]))
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
  const leaseMs = deps.holdLeaseMs ?? 30_000;
  const instance = randomBytes(8).toString('hex');
  const livePrefix = `${deps.redisPrefix}:ledger:live:`;
  const liveKey = livePrefix + instance;
  const holdField = `h:${instance}`;
  // Keeps this instance's holds alive while it runs (a long stream outlives many leases).
  const heartbeat = redis
    ? setInterval(
        () =>
          void redis
            .set(liveKey, '1', 'PX', leaseMs)
            .catch((err) => deps.logger.warn({ err: String(err) }, 'ledger: hold lease renewal failed')),
        Math.max(250, Math.floor(leaseMs / 3)),
      )
    : null;
  heartbeat?.unref();
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
        3,
        rk(keyId),
        ru(userId),
        liveKey,
        int(quotaNano ?? -1),
        int(amount),
        REDIS_COUNTER_TTL_S,
        int(kDb),
        int(uDb),
        holdField,
        livePrefix,
        leaseMs,
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
          holdField,
          livePrefix,
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
    async flushInto(
      trx: Db,
      rows: readonly NewLog[],
      written: readonly NewLog[] = rows,
    ): Promise<{ committed(): void; aborted(): void }> {
      // Held from here until commit or abort, so no base is re-read mid-flush.
      const release = await acquire();
      const sum = (list: readonly NewLog[]) => {
        const keys = new Map<number, number>();
        const users = new Map<number, number>();
        for (const r of list) {
          const cost = Number(r.cost_nano);
          if (!cost) continue;
          keys.set(r.key_id, (keys.get(r.key_id) ?? 0) + cost);
          users.set(r.user_id, (users.get(r.user_id) ?? 0) + cost);
        }
        return { keys, users };
      };
      // Written: the spend the database gains. Taken: the spend no longer pending here (a row
      // the database already held, from a replay or a repeat, charges nothing twice).
      const { keys: keyDeltas, users: userDeltas } = sum(written);
      const taken = written === rows ? { keys: keyDeltas, users: userDeltas } : sum(rows);
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
          for (const [id, d] of taken.keys) {
            const c = keyUsed.get(id);
            if (!c) continue;
            c.pending -= d;
            c.base += keyDeltas.get(id) ?? 0;
          }
          for (const [id, d] of taken.users) {
            const c = userBalance.get(id);
            if (!c) continue;
            c.pending -= d;
            c.base -= userDeltas.get(id) ?? 0;
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

    /** Stops renewing this instance's hold lease and gives up its holds (after the drain). */
    async close(): Promise<void> {
      if (heartbeat) clearInterval(heartbeat);
      await redis?.del(liveKey).catch(() => {});
    },
  };
}

export type Ledger = ReturnType<typeof createLedger>;
