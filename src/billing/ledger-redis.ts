// The shared ledger (REDIS_URL): admission is shared between instances. The live totals
// (spend, balance, holds) live in Redis and reserve / settle are single Lua scripts following
// ledger.ts's arithmetic, so two gateways on one database never spend past a quota together.
// Each instance still batches its own settled spend to the database (ledger-counters.ts).
//
// Holds are leases: each instance keeps its holds in its own field of a counter ("h:<id>"),
// and they count only while the instance's liveness key (refreshed every lease/3, expiring
// after MOLE_HOLD_LEASE_MS, 30 s by default) exists. A crashed instance's holds stop counting
// when its lease runs out, and the next script to look at the counter deletes them.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { InvalidationBus } from '../shared/bus.js';
import type { Clock } from '../shared/clock.js';
import { LUA_HELD, startHoldLease } from '../shared/hold-lease.js';
import type { Ledger, LedgerStore, Reservation, ReserveResult } from './ledger.js';
import { createCounters } from './ledger-counters.js';

export interface RedisLedgerDeps {
  store: LedgerStore;
  bus: InvalidationBus;
  logger: Logger;
  redis: Redis;
  /** Namespace of the shared counters (one per database). */
  redisPrefix: string;
  /** How long this instance's holds outlive its last heartbeat (default 30 s). */
  holdLeaseMs?: number;
  now?: Clock;
}

/** What RESERVE_LUA answers; the script is written with these names. */
export const RESERVE_RESULT = {
  OK: 0,
  KEY_QUOTA: 1,
  BALANCE: 2,
  /** A counter is missing (first use anywhere, or idled out): call again with the stored values. */
  NEEDS_SEED: 3,
} as const;
export type ReserveCode = (typeof RESERVE_RESULT)[keyof typeof RESERVE_RESULT];

/** ARGV sentinels: a key without a quota; stored values the caller has not read. */
export const NO_QUOTA = -1;
export const NOT_READ = -1;

/** Counters idle this long in Redis expire (every reservation renews them). */
const COUNTER_TTL_S = 3600;

// Numbers in these scripts: Redis's Lua (5.1) holds every number as a double, and a
// number handed to redis.call is formatted with %.17g: 0 negated becomes "-0", which
// HINCRBY refuses (the answer would go unbilled), and large values may take an exponent.
// So JS passes every amount as a decimal integer string, and the scripts hand HINCRBY
// either such an ARGV string or INT(n) (string.format %d: exact below 2^53, never "-0").
const LUA_PRELUDE = `local function INT(n) return string.format('%d', n) end
local OK, KEY_QUOTA, BALANCE, NEEDS_SEED = ${RESERVE_RESULT.OK}, ${RESERVE_RESULT.KEY_QUOTA}, ${RESERVE_RESULT.BALANCE}, ${RESERVE_RESULT.NEEDS_SEED}
local NO_QUOTA, NOT_READ = ${NO_QUOTA}, ${NOT_READ}
`;
// KEYS: key counter, user counter, this instance's liveness key. ARGV: quota (NO_QUOTA = none),
// amount, ttl, key used in DB, user balance in DB (these two only when the caller has read
// them, else NOT_READ; NEEDS_SEED asks for them), this instance's hold field, liveness key
// prefix, lease ms. Same rule as ledger.ts `refusal`: the key quota first, then the balance.
const RESERVE_LUA = `${LUA_PRELUDE}${LUA_HELD}
local kx = redis.call('EXISTS', KEYS[1]); local ux = redis.call('EXISTS', KEYS[2])
if kx == 0 or ux == 0 then
  if tonumber(ARGV[4]) == NOT_READ then return NEEDS_SEED end
  if kx == 0 then redis.call('HSET', KEYS[1], 'used', ARGV[4]) end
  if ux == 0 then redis.call('HSET', KEYS[2], 'bal', ARGV[5]) end
end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[8])
local quota = tonumber(ARGV[1]); local amount = tonumber(ARGV[2])
local used = tonumber(redis.call('HGET', KEYS[1], 'used')); local kheld = HELD(KEYS[1], ARGV[7])
local bal = tonumber(redis.call('HGET', KEYS[2], 'bal')); local uheld = HELD(KEYS[2], ARGV[7])
if quota ~= NO_QUOTA and quota - used - kheld < amount then return KEY_QUOTA end
if bal - uheld < amount then return BALANCE end
redis.call('HINCRBY', KEYS[1], ARGV[6], ARGV[2]); redis.call('HINCRBY', KEYS[2], ARGV[6], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3]); redis.call('EXPIRE', KEYS[2], ARGV[3])
return OK`;
// KEYS: key counter, user counter. ARGV: held amount, cost, quota (NO_QUOTA = none), this
// instance's hold field, liveness key prefix. Releases the hold and charges the cost, but never
// past what the quota and balance still cover (ledger.ts `chargeFor`); answers the amount
// charged, as a decimal string. Counters gone (expired) charge the cost as asked.
const SETTLE_LUA = `${LUA_PRELUDE}${LUA_HELD}
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
  if quota ~= NO_QUOTA then
    room = math.min(room, quota - tonumber(redis.call('HGET', KEYS[1], 'used')) - HELD(KEYS[1], ARGV[5]))
  end
  charge = math.max(0, math.min(cost, room))
end
if charge > 0 then
  redis.call('HINCRBY', KEYS[1], 'used', INT(charge)); redis.call('HINCRBY', KEYS[2], 'bal', INT(-charge))
end
return INT(charge)`;
// KEYS: user counter. ARGV: amount (negative = a debit). Only a counter that exists moves; a
// missing one is seeded from the database on its next use.
const CREDIT_LUA = `if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'bal', ARGV[1]) end return 0`;

/** An integer amount as Redis reads it: decimal digits, never an exponent or "-0". */
export const int = (n: number): string => {
  if (!Number.isSafeInteger(n)) throw new Error(`ledger: amount ${n} is not a safe integer`);
  return n === 0 ? '0' : String(n);
};

export function createRedisLedger(deps: RedisLedgerDeps): Ledger {
  const { redis } = deps;
  const counters = createCounters(deps);
  const rk = (keyId: number) => `${deps.redisPrefix}:ledger:k:${keyId}`;
  const ru = (userId: number) => `${deps.redisPrefix}:ledger:u:${userId}`;
  const leaseMs = deps.holdLeaseMs ?? 30_000;
  // Keeps this instance's holds alive while it runs (a long stream outlives many leases).
  const lease = startHoldLease({
    redis,
    livePrefix: `${deps.redisPrefix}:ledger:live:`,
    leaseMs,
    logger: deps.logger,
    what: 'ledger',
  });
  const { livePrefix, liveKey, holdField } = lease;

  const runReserve = (
    keyId: number,
    userId: number,
    quotaNano: number | null,
    amount: number,
    stored: { used: number; balance: number },
  ) =>
    redis.eval(
      RESERVE_LUA,
      3,
      rk(keyId),
      ru(userId),
      liveKey,
      int(quotaNano ?? NO_QUOTA),
      int(amount),
      COUNTER_TTL_S,
      int(stored.used),
      int(stored.balance),
      holdField,
      livePrefix,
      leaseMs,
    ) as Promise<ReserveCode>;

  async function settle(r: Reservation, cost: number): Promise<number> {
    if (r.done) return 0;
    r.done = true;
    const k = counters.keys.get(r.keyId)!;
    const u = counters.users.get(r.userId)!;
    const charge = Number(
      await redis.eval(
        SETTLE_LUA,
        2,
        rk(r.keyId),
        ru(r.userId),
        int(r.amount),
        int(cost),
        int(r.quotaNano ?? NO_QUOTA),
        holdField,
        livePrefix,
      ),
    );
    k.pending += charge;
    u.pending += charge;
    return charge;
  }

  return {
    async reserve(keyId, userId, quotaNano, amount): Promise<ReserveResult> {
      const { k, u } = await counters.load(keyId, userId);
      let answer = await runReserve(keyId, userId, quotaNano, amount, { used: NOT_READ, balance: NOT_READ });
      if (answer === RESERVE_RESULT.NEEDS_SEED) {
        // First use anywhere (or after idling out): seed from the database plus our unwritten spend.
        const [used, balance] = await counters.withLock(async () => [
          await deps.store.usedNano(keyId),
          await deps.store.balanceNano(userId),
        ]);
        answer = await runReserve(keyId, userId, quotaNano, amount, {
          used: used! + (counters.keys.get(keyId)?.pending ?? 0),
          balance: balance! - (counters.users.get(userId)?.pending ?? 0),
        });
      }
      if (answer === RESERVE_RESULT.KEY_QUOTA) return { ok: false, reason: 'key_quota' };
      if (answer === RESERVE_RESULT.BALANCE) return { ok: false, reason: 'balance' };
      k.lastUsed = u.lastUsed = counters.now();
      return { ok: true, reservation: { keyId, userId, quotaNano, amount, done: false } };
    },
    settle,
    release: (r) =>
      void settle(r, 0).catch((err: unknown) =>
        deps.logger.error({ err: String(err) }, 'ledger: release failed'),
      ),
    usedNano: counters.usedNano,
    balanceNano: counters.balanceNano,
    flushInto: counters.flushInto,
    async credit(userId, amountNano) {
      await redis.eval(CREDIT_LUA, 1, ru(userId), int(amountNano));
    },
    stats: counters.stats,
    async close() {
      await lease.close();
    },
  };
}
