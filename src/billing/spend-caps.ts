// Spend caps of ephemeral keys (their `max_cost`): held and settled like a key quota in the
// ledger (ledger.ts), but against a counter of the ephemeral key's own, on top of its parent's
// quota and account balance (which the ledger holds as usual: an ephemeral key bills to its
// parent). Before forwarding, a request holds its worst case against the cap; the hold is
// atomic with the check, so concurrent requests never together pass the cap.
//
// In process (one instance) the counters live here; with REDIS_URL they live in Redis and hold
// / settle are single Lua scripts, so every instance shares the cap. Redis holds are plain
// counters without leases: a crashed instance's holds only make the cap stricter, and the
// counter expires with the key (an ephemeral key lives at most an hour).
//
// What was spent reaches the database with the log rows that explain it (each row carries its
// ephemeral_id and settled cost), through `flushInto` in the usage writer's transaction, so a
// restarted instance (or a new Redis counter) starts from the stored spend.
import type { RedisClient } from '../shared/redis.js';
import type { Logger } from 'pino';
import type { Db } from '../db/index.js';
import type { NewLog } from '../db/schema.js';
import { createLock } from '../shared/lock.js';
import { LUA_INT, type LuaCall, luaFunction, luaRunner } from '../shared/lua.js';
import { chargeFor, type FlushHandle } from './ledger.js';
import { type Counter, forgetIdle, lockedFlush, moveToBase } from './ledger-counters.js';
import { int } from './ledger-redis.js';

export interface CapHold {
  id: number;
  capNano: number;
  amount: number;
  done: boolean;
}

/** What the caps read and write (keys: `ephemeral_keys.used_nano`), handed over by services.ts. */
export interface SpendCapStore {
  usedNano(id: number): Promise<number>;
  addUsed(trx: Db, deltas: Map<number, number>): Promise<void>;
}

export interface SpendCaps {
  /**
   * Holds `amount` against the cap of ephemeral key `id` if it has `need` (≥ amount; default:
   * amount) left; null = the cap cannot cover it.
   */
  hold(id: number, capNano: number, amount: number, need?: number): Promise<CapHold | null>;
  /** Releases the hold and charges `cost`, never past the cap; answers the charge. */
  settle(h: CapHold, cost: number): Promise<number>;
  /** Gives back `amount` of a settled charge (its parent was charged less). */
  refund(h: CapHold, amount: number): Promise<void>;
  /** Gives back the whole hold; resolves once it is given back (errors are logged, never thrown). */
  release(h: CapHold): Promise<void>;
  /**
   * Spend as the API shows it: the stored spend (every instance's written) plus this
   * instance's unwritten, read between flushes.
   */
  usedNano(id: number): Promise<number>;
  /** Contributor to the usage writer's transaction (usage/writer.ts). */
  flushInto(trx: Db, rows: readonly NewLog[], written: readonly NewLog[]): Promise<FlushHandle>;
  /** With Redis: the steps for a script that runs them among others (admission); else null. */
  steps: CapSteps | null;
}

/** The caps' Redis steps, with what this instance keeps in process on either side of them. */
export interface CapSteps {
  /** Loads this instance's counter (a database read on first use). */
  load(id: number): Promise<void>;
  /**
   * CAP_HOLD's call; `stored`: the spend to seed a missing counter with (else NEEDS_SEED);
   * `need`: the room the hold needs (SpendCaps `hold`).
   */
  holdCall(id: number, capNano: number, amount: number, stored?: number, need?: number): LuaCall;
  /** What to seed the counter with: the stored spend and this instance's unwritten spend. */
  seed(id: number): Promise<number>;
  /** Reads CAP_HOLD's answer (other than NEEDS_SEED): the hold, or null (the cap refused). */
  readHold(id: number, capNano: number, amount: number, code: number): CapHold | null;
  /** CAP_SETTLE's call for `h` (its ARGV[2] is the cost; '0' releases); marks `h` done. */
  settleCall(h: CapHold, cost: number): LuaCall;
  /** CAP_REFUND's call for `h` (its ARGV[1] is the negated amount to give back). */
  refundCall(h: CapHold, amount: number): LuaCall;
  /** Notes what the parent was finally charged (after any refund) as unwritten spend. */
  settled(h: CapHold, charge: number): void;
}

const COUNTER_TTL_S = String(2 * 3600);
const OK = 0;
const CAP = 1;
const NEEDS_SEED = 2;
const NOT_READ = -1;

// KEYS: counter. ARGV: cap, amount, stored spend (NOT_READ = not read: answer NEEDS_SEED), ttl,
// the room the hold needs (≥ amount).
// A counter is created with both fields, so one HMGET tells whether it exists and reads it.
const HOLD_BODY = `local c = redis.call('HMGET', KEYS[1], 'used', 'held'); local used, held = c[1], c[2]
if not used then
  if tonumber(ARGV[3]) == ${NOT_READ} then return ${NEEDS_SEED} end
  used = ARGV[3]; held = '0'
  redis.call('HSET', KEYS[1], 'used', used, 'held', held)
end
if tonumber(ARGV[1]) - tonumber(used) - tonumber(held) < tonumber(ARGV[5]) then return ${CAP} end
redis.call('HINCRBY', KEYS[1], 'held', ARGV[2]); redis.call('EXPIRE', KEYS[1], ARGV[4])
return ${OK}`;
// KEYS: counter. ARGV: hold, cost, cap. Same rule as ledger.ts `chargeFor`; answers the charge.
const SETTLE_BODY = `local c = redis.call('HMGET', KEYS[1], 'used', 'held')
if not c[1] then return ARGV[2] end
local hold = tonumber(ARGV[1]); local cost = tonumber(ARGV[2])
local held = tonumber(c[2]) - hold
if held < 0 then held = 0 end
redis.call('HSET', KEYS[1], 'held', INT(held))
local charge = cost
if cost > hold then
  local room = tonumber(ARGV[3]) - tonumber(c[1]) - held
  charge = math.max(0, math.min(cost, room))
end
if charge > 0 then redis.call('HINCRBY', KEYS[1], 'used', INT(charge)) end
return INT(charge)`;
const REFUND_BODY = `if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'used', ARGV[1]) end return 0`;

/** CAP_HOLD, CAP_SETTLE (a release: cost 0) and CAP_REFUND, for scripts that run them among others (after LUA_INT). */
export const CAPS_LUA =
  luaFunction('CAP_HOLD', HOLD_BODY) +
  luaFunction('CAP_SETTLE', SETTLE_BODY) +
  luaFunction('CAP_REFUND', REFUND_BODY);
const script = (fn: string) => `${LUA_INT}${CAPS_LUA}return ${fn}(KEYS, ARGV)`;

/** Spend per ephemeral key in a batch of log rows. */
function spendOf(rows: readonly NewLog[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const r of rows) {
    const cost = Number(r.cost_nano);
    if (r.ephemeral_id == null || !cost) continue;
    out.set(Number(r.ephemeral_id), (out.get(Number(r.ephemeral_id)) ?? 0) + cost);
  }
  return out;
}

export function createSpendCaps(deps: {
  store: SpendCapStore;
  logger: Logger;
  /** Shared counters (REDIS_URL); absent = in process. */
  redis?: { client: RedisClient; prefix: string } | null;
  now?: () => number;
}): SpendCaps {
  const now = deps.now ?? Date.now;
  const counters = new Map<number, Counter>();
  const redis = deps.redis ?? null;
  const rk = (id: number) => `${redis?.prefix}:caps:e:${id}`;

  // Serialises reads of stored spend with flushes, so nothing is counted twice.
  const acquire = createLock();
  async function readStored(id: number): Promise<number> {
    const release = await acquire();
    try {
      return await deps.store.usedNano(id);
    } finally {
      release();
    }
  }
  async function load(id: number): Promise<Counter> {
    let c = counters.get(id);
    if (c) return c;
    const base = await readStored(id);
    c = counters.get(id);
    if (!c) {
      c = { base, pending: 0, reserved: 0, lastUsed: now() };
      counters.set(id, c);
    }
    return c;
  }

  const holdScript = redis && luaRunner(redis.client, script('CAP_HOLD'));
  const settleScript = redis && luaRunner(redis.client, script('CAP_SETTLE'));
  const refundScript = redis && luaRunner(redis.client, script('CAP_REFUND'));

  const steps: CapSteps = {
    async load(id) {
      (await load(id)).lastUsed = now();
    },
    holdCall: (id, capNano, amount, stored, need = amount) => ({
      keys: [rk(id)],
      args: [int(capNano), int(amount), int(stored ?? NOT_READ), COUNTER_TTL_S, int(need)],
    }),
    seed: async (id) => (await readStored(id)) + (counters.get(id)?.pending ?? 0),
    readHold(id, capNano, amount, code) {
      if (code === NEEDS_SEED) throw new Error('spend caps: the counter was not seeded');
      return code === OK ? { id, capNano, amount, done: false } : null;
    },
    settleCall(h, cost) {
      h.done = true;
      return { keys: [rk(h.id)], args: [int(h.amount), int(cost), int(h.capNano)] };
    },
    refundCall: (h, amount) => ({ keys: [rk(h.id)], args: [int(-amount)] }),
    settled(h, charge) {
      const c = counters.get(h.id);
      if (c) c.pending += charge;
    },
  };

  async function hold(id: number, capNano: number, amount: number, need = amount): Promise<CapHold | null> {
    const c = await load(id);
    c.lastUsed = now();
    if (!holdScript) {
      // No await from the check to the increment: atomic in this process.
      if (capNano - (c.base + c.pending) - c.reserved < need) return null;
      c.reserved += amount;
      return { id, capNano, amount, done: false };
    }
    const run = async (stored?: number) => {
      const call = steps.holdCall(id, capNano, amount, stored, need);
      return (await holdScript(call.keys, call.args)) as number;
    };
    let answer = await run();
    // First use anywhere: seed from the database plus what this instance has not written yet.
    if (answer === NEEDS_SEED) answer = await run(await steps.seed(id));
    return steps.readHold(id, capNano, amount, answer);
  }

  async function settle(h: CapHold, cost: number): Promise<number> {
    if (h.done) return 0;
    h.done = true;
    const c = await load(h.id);
    if (!settleScript) {
      c.reserved -= h.amount;
      const charge = chargeFor(cost, h.amount, h.capNano - (c.base + c.pending) - c.reserved);
      c.pending += charge;
      return charge;
    }
    const call = steps.settleCall(h, cost);
    const charge = Number(await settleScript(call.keys, call.args));
    c.pending += charge;
    return charge;
  }

  return {
    hold,
    settle,
    async refund(h, amount) {
      if (amount <= 0) return;
      const c = await load(h.id);
      c.pending -= amount;
      if (refundScript) {
        const call = steps.refundCall(h, amount);
        await refundScript(call.keys, call.args);
      }
    },
    release: (h) =>
      settle(h, 0).then(
        () => {},
        (err: unknown) => deps.logger.error({ err: String(err) }, 'spend caps: release failed'),
      ),
    async usedNano(id) {
      const release = await acquire();
      try {
        return (await deps.store.usedNano(id)) + (counters.get(id)?.pending ?? 0);
      } finally {
        release();
      }
    },
    async flushInto(trx, rows, written) {
      const deltas = spendOf(written);
      const taken = written === rows ? deltas : spendOf(rows);
      return lockedFlush(
        acquire,
        () => deps.store.addUsed(trx, deltas),
        () => {
          moveToBase(counters, taken, deltas, 1);
          forgetIdle([counters], now());
        },
      );
    },
    steps: redis ? steps : null,
  };
}
