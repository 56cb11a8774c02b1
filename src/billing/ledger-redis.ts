// The shared ledger (REDIS_URL): admission is shared between instances. The live totals
// (spend, balance, holds) live in Redis and reserve / settle are single Lua scripts following
// ledger.ts's arithmetic, so two gateways on one database never spend past a quota together.
// Each instance still batches its own settled spend to the database (ledger-counters.ts).
//
// Holds are leases: each instance keeps its holds in its own field of a counter ("h:<id>"),
// and they count only while the instance's liveness key (refreshed every lease/3, expiring
// after MOLE_HOLD_LEASE_MS, 30 s by default) exists. A crashed instance's holds stop counting
// when its lease runs out, and the next script to look at the counter deletes them.
import type { RedisClient } from '../shared/redis.js';
import type { Logger } from 'pino';
import type { InvalidationBus } from '../shared/bus.js';
import type { Clock } from '../shared/clock.js';
import {
  type HoldGeneration,
  type HoldLease,
  LUA_COUNTER,
  lostAnswerRetires,
  startHoldLease,
} from '../shared/hold-lease.js';
import { createExactlyOnce, type ExactlyOnce, LUA_MARK } from '../shared/exactly-once.js';
import { LUA_INT, type LuaCall, luaFunction, luaRunner } from '../shared/lua.js';
import { isRedisUnreachable } from '../shared/redis.js';
import type { Ledger, LedgerStore, Reservation, ReserveResult } from './ledger.js';
import { countedMembers, createCounters } from './ledger-counters.js';

export interface RedisLedgerDeps {
  store: LedgerStore;
  bus: InvalidationBus;
  logger: Logger;
  redis: RedisClient;
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

/** Counters idle this long (seconds, as the scripts take it) in Redis expire (every reservation renews them). */
const COUNTER_TTL_S = '3600';

// Numbers in these scripts: Redis's Lua (5.1) holds every number as a double, and a
// number handed to redis.call is formatted with %.17g: 0 negated becomes "-0", which
// HINCRBY refuses (the answer would go unbilled), and large values may take an exponent.
// So JS passes every amount as a decimal integer string, and the scripts hand HINCRBY
// either such an ARGV string or INT(n) (string.format %d: exact below 2^53, never "-0").
const CODES = `local OK, KEY_QUOTA, BALANCE, NEEDS_SEED = ${RESERVE_RESULT.OK}, ${RESERVE_RESULT.KEY_QUOTA}, ${RESERVE_RESULT.BALANCE}, ${RESERVE_RESULT.NEEDS_SEED}
local NO_QUOTA, NOT_READ = ${NO_QUOTA}, ${NOT_READ}
`;
// KEYS: key counter, user counter, this instance's liveness key. ARGV: quota (NO_QUOTA = none),
// amount, ttl, key used in DB, user balance in DB (these two only when the caller has read
// them, else NOT_READ; NEEDS_SEED asks for them), this instance's hold field, liveness key
// prefix, lease ms, the room the hold needs (≥ amount). Same rule as ledger.ts `refusal`: the
// key quota first, then the balance.
// Each counter is read once (COUNTER: its value, its live holds; nil = missing); the lease is
// renewed before anything is decided, so this instance's own holds count without a lookup.
const RESERVE_BODY = `${CODES}local used, kheld = COUNTER(KEYS[1], 'used', ARGV[7], ARGV[6])
local bal, uheld = COUNTER(KEYS[2], 'bal', ARGV[7], ARGV[6])
if not used or not bal then
  if tonumber(ARGV[4]) == NOT_READ then return NEEDS_SEED end
  if not used then used = ARGV[4]; redis.call('HSET', KEYS[1], 'used', used) end
  if not bal then bal = ARGV[5]; redis.call('HSET', KEYS[2], 'bal', bal) end
end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[8])
local quota = tonumber(ARGV[1]); local need = tonumber(ARGV[9])
if quota ~= NO_QUOTA and quota - tonumber(used) - kheld < need then return KEY_QUOTA end
if tonumber(bal) - uheld < need then return BALANCE end
redis.call('HINCRBY', KEYS[1], ARGV[6], ARGV[2]); redis.call('HINCRBY', KEYS[2], ARGV[6], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3]); redis.call('EXPIRE', KEYS[2], ARGV[3])
return OK`;
// KEYS: key counter, user counter. ARGV: held amount, cost, quota (NO_QUOTA = none), this
// instance's hold field, liveness key prefix. Releases the hold and charges the cost, but never
// past what the quota and balance still cover (ledger.ts `chargeFor`); answers the amount
// charged, as a decimal string. Counters gone (expired) charge the cost as asked. One HMGET per
// counter reads whether it exists (its 'used' / 'bal' field), that field and this instance's
// hold; a cost within the hold (the usual case) drops the hold and moves the field at once.
const SETTLE_BODY = `${CODES}local hold = tonumber(ARGV[1]); local cost = tonumber(ARGV[2]); local quota = tonumber(ARGV[3])
local k = redis.call('HMGET', KEYS[1], 'used', ARGV[4]); local u = redis.call('HMGET', KEYS[2], 'bal', ARGV[4])
if not k[1] or not u[1] then return ARGV[2] end
local function MOVE(key, field, read, delta)
  local v = read[2]; local h = v and tonumber(v) or 0
  if h > hold and delta ~= 0 then redis.call('HSET', key, ARGV[4], INT(h - hold), field, INT(tonumber(read[1]) + delta)); return end
  if h > hold then redis.call('HSET', key, ARGV[4], INT(h - hold)) elseif v then redis.call('HDEL', key, ARGV[4]) end
  if delta ~= 0 then redis.call('HINCRBY', key, field, INT(delta)) end
end
if cost <= hold then
  MOVE(KEYS[1], 'used', k, cost); MOVE(KEYS[2], 'bal', u, -cost)
  return INT(cost)
end
MOVE(KEYS[1], 'used', k, 0); MOVE(KEYS[2], 'bal', u, 0)
local bal, uheld = COUNTER(KEYS[2], 'bal', ARGV[5], nil); local room = tonumber(bal) - uheld
if quota ~= NO_QUOTA then
  local used, kheld = COUNTER(KEYS[1], 'used', ARGV[5], nil)
  room = math.min(room, quota - tonumber(used) - kheld)
end
local charge = math.max(0, math.min(cost, room))
if charge > 0 then
  redis.call('HINCRBY', KEYS[1], 'used', INT(charge)); redis.call('HINCRBY', KEYS[2], 'bal', INT(-charge))
end
return INT(charge)`;
/**
 * LEDGER_RESERVE and LEDGER_SETTLE, for scripts that run them among other steps (after LUA_INT
 * and LUA_COUNTER). A release is LEDGER_SETTLE with a cost of 0.
 */
export const LEDGER_LUA =
  luaFunction('LEDGER_RESERVE', RESERVE_BODY) + luaFunction('LEDGER_SETTLE', SETTLE_BODY);
const RESERVE_LUA = `${LUA_INT}${LUA_COUNTER}${LEDGER_LUA}return LEDGER_RESERVE(KEYS, ARGV)`;
// KEYS[3], ARGV[6..7]: the exactly-once mark, its sequence number and ttl (shared/exactly-once.ts).
const SETTLE_LUA = `${LUA_INT}${LUA_COUNTER}${LUA_MARK}${LEDGER_LUA}MARK(KEYS[3], ARGV[6], ARGV[7])
return LEDGER_SETTLE(KEYS, ARGV)`;

// KEYS: user counter. ARGV: amount (negative = a debit). Only a counter that exists moves; a
// missing one is seeded from the database on its next use.
const CREDIT_LUA = `if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'bal', ARGV[1]) end return 0`;

/** An integer amount as Redis reads it: decimal digits, never an exponent or "-0". */
export const int = (n: number): string => {
  if (!Number.isSafeInteger(n)) throw new Error(`ledger: amount ${n} is not a safe integer`);
  return n === 0 ? '0' : String(n);
};

/**
 * The ledger's steps for a script that runs them among others (admission/admission-redis.ts),
 * with what this instance keeps in process on either side of them.
 */
export interface LedgerSteps {
  /** Loads this instance's counters of the key and the account (a database read on first use). */
  load(keyId: number, userId: number): Promise<void>;
  /** This instance's hold generations: a reserve acquires one, its reservation keeps it. */
  lease: HoldLease;
  /**
   * LEDGER_RESERVE's call, holding in `gen`; `stored`: the values to seed a missing counter
   * with (else NEEDS_SEED); `need`: the room the hold needs (Ledger `reserve`).
   */
  reserveCall(
    keyId: number,
    userId: number,
    quotaNano: number | null,
    amount: number,
    stored: { used: number; balance: number } | undefined,
    gen: HoldGeneration,
    need?: number,
  ): LuaCall;
  /** What to seed the counters with: the stored values and this instance's unwritten spend. */
  seeds(keyId: number, userId: number): Promise<{ used: number; balance: number }>;
  /** Reads LEDGER_RESERVE's answer (other than NEEDS_SEED); a reservation keeps `gen`. */
  readReserve(
    keyId: number,
    userId: number,
    quotaNano: number | null,
    amount: number,
    code: ReserveCode,
    gen?: HoldGeneration,
  ): ReserveResult;
  /**
   * LEDGER_SETTLE's call for `r` (its ARGV[2] is the cost; '0' releases); marks `r` done and
   * closes its hold in its generation.
   */
  settleCall(r: Reservation, cost: number): LuaCall;
  /** Notes a settled charge as this instance's unwritten spend. */
  settled(r: Reservation, charge: number): void;
  /** Settlements and releases that Redis must see exactly once, lost answers or not. */
  once: ExactlyOnce;
}

/**
 * What a settlement whose script could not reach Redis charges: the cost within the hold, which
 * the quota and balance (and any cap and budget) were holding for it. The database is charged
 * with the log row; Redis, when its script runs again (`ExactlyOnce`), with the same amount.
 */
export const chargeWithoutAnswer = (cost: number, hold: number): number => Math.min(cost, hold);

export interface RedisLedger extends Ledger {
  steps: LedgerSteps;
}

export function createRedisLedger(deps: RedisLedgerDeps): RedisLedger {
  const { redis } = deps;
  const counters = createCounters(deps);
  const rk = (keyId: number) => `${deps.redisPrefix}:ledger:k:${keyId}`;
  const ru = (userId: number) => `${deps.redisPrefix}:ledger:u:${userId}`;
  // Keeps this instance's holds alive while it runs (a long stream outlives many leases).
  const lease = startHoldLease(redis, `${deps.redisPrefix}:ledger:live:`, 'ledger', deps);
  const { livePrefix } = lease;
  const leaseMs = String(lease.leaseMs);
  const reserveScript = luaRunner(redis, RESERVE_LUA);
  const settleScript = luaRunner(redis, SETTLE_LUA);
  const once = createExactlyOnce(redis, `${deps.redisPrefix}:ledger:`, deps);

  const steps: LedgerSteps = {
    lease,
    once,
    async load(keyId, userId) {
      await counters.load(keyId, userId);
    },
    reserveCall: (keyId, userId, quotaNano, amount, stored, gen, need = amount) => ({
      keys: [rk(keyId), ru(userId), gen.liveKey],
      args: [
        int(quotaNano ?? NO_QUOTA),
        int(amount),
        COUNTER_TTL_S,
        int(stored?.used ?? NOT_READ),
        int(stored?.balance ?? NOT_READ),
        gen.holdField,
        livePrefix,
        leaseMs,
        int(need),
      ],
    }),
    async seeds(keyId, userId) {
      const [used, balance] = await counters.withLock(async () => [
        await deps.store.usedNano(keyId),
        await deps.store.balanceNano(userId),
      ]);
      return {
        used: used! + (counters.keys.get(keyId)?.pending ?? 0),
        balance: balance! - (counters.users.get(userId)?.pending ?? 0),
      };
    },
    readReserve(keyId, userId, quotaNano, amount, code, gen) {
      if (code === RESERVE_RESULT.KEY_QUOTA) return { ok: false, reason: 'key_quota' };
      if (code === RESERVE_RESULT.BALANCE) return { ok: false, reason: 'balance' };
      if (code !== RESERVE_RESULT.OK) throw new Error(`ledger: unexpected reserve answer ${code}`);
      const k = counters.keys.get(keyId);
      const u = counters.users.get(userId);
      if (k && u) k.lastUsed = u.lastUsed = counters.now();
      return { ok: true, reservation: { keyId, userId, quotaNano, amount, done: false, gen } };
    },
    settleCall(r, cost) {
      const gen = r.gen!;
      if (!r.done) lease.release(gen);
      r.done = true;
      return {
        keys: [rk(r.keyId), ru(r.userId)],
        args: [int(r.amount), int(cost), int(r.quotaNano ?? NO_QUOTA), gen.holdField, livePrefix],
      };
    },
    settled(r, charge) {
      const k = counters.keys.get(r.keyId);
      const u = counters.users.get(r.userId);
      if (k) k.pending += charge;
      if (u) u.pending += charge;
    },
  };

  async function settle(r: Reservation, cost: number): Promise<number> {
    if (r.done) return 0;
    const gen = r.gen!;
    const script = (c: LuaCall) => (mark: LuaCall) =>
      lostAnswerRetires([gen], settleScript([...c.keys, ...mark.keys], [...c.args, ...mark.args]));
    const fallback = chargeWithoutAnswer(cost, r.amount);
    let charge: number;
    try {
      // The write again, built only when needed.
      const redo = (mark: LuaCall) => script(steps.settleCall(r, fallback))(mark);
      charge = Number(await once.run(script(steps.settleCall(r, cost)), redo));
    } catch (err) {
      if (!isRedisUnreachable(err)) throw err;
      charge = fallback;
    }
    steps.settled(r, charge);
    return charge;
  }

  return {
    steps,
    async reserve(keyId, userId, quotaNano, amount, need = amount): Promise<ReserveResult> {
      await steps.load(keyId, userId);
      return lease.holding(
        async (gen) => {
          const run = async (stored?: { used: number; balance: number }) => {
            const c = steps.reserveCall(keyId, userId, quotaNano, amount, stored, gen, need);
            return (await lostAnswerRetires([gen], reserveScript(c.keys, c.args))) as ReserveCode;
          };
          let answer = await run();
          // First use anywhere (or after idling out): seed from the database plus our unwritten spend.
          if (answer === RESERVE_RESULT.NEEDS_SEED) answer = await run(await steps.seeds(keyId, userId));
          return steps.readReserve(keyId, userId, quotaNano, amount, answer, gen);
        },
        (r) => r.ok,
      );
    },
    ...countedMembers(counters, settle, deps.logger),
    async credit(userId, amountNano) {
      await redis.eval(CREDIT_LUA, { keys: [ru(userId)], arguments: [int(amountNano)] });
    },
    async close() {
      await once.close();
      await lease.close();
    },
  };
}
