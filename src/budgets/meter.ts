// Spend per budget period, held exactly under concurrency like the ledger's quota: a request
// reserves its worst-case cost against every budget in force at once (all or none), then
// settles the real cost (or releases the hold). Two implementations over one set of counters:
//
//   local   in memory; once a period's counter is loaded, reserve is synchronous (atomic)
//   Redis   with REDIS_URL: spend and holds live in Redis, reserve / settle are Lua scripts,
//           holds are per-instance fields that count only while the instance's lease lives
//
// What has been spent in a period is not stored separately: it is the sum of the usage
// rollups (usage_daily, written in the same transaction as the log rows) since the period
// began, read once per counter through `BudgetStore`. Spend settled here and not yet written
// is `pending`; the usage writer's flush moves it into `base` when its batch commits, so a
// counter never counts a row twice (the same scheme as billing/ledger-counters.ts).
import type { RedisClient } from '../shared/redis.js';
import type { Logger } from 'pino';
import type { Db } from '../db/index.js';
import type { NewLog } from '../db/schema.js';
import type { Clock } from '../shared/clock.js';
import {
  type HoldGeneration,
  type HoldLease,
  LUA_COUNTER,
  lostAnswerRetires,
  startHoldLease,
} from '../shared/hold-lease.js';
import { LUA_INT, type LuaCall, luaFunction, luaRunner } from '../shared/lua.js';
import { type BudgetPeriod, dayOf, PERIODS, periodEnd, periodStart } from './period.js';

/** Whose spend a budget counts: one key's ('k') or one account's ('u'). */
export type Subject = 'k' | 'u';

/** One budget in force for a request. */
export interface BudgetLine {
  /** Whose budget it is: the key's own, the account's, or the key's group default. */
  scope: 'key' | 'account' | 'group';
  subject: Subject;
  /** Key id (subject 'k') or user id (subject 'u'). */
  id: number;
  period: BudgetPeriod;
  limitNano: number;
}

/** A counter: one subject's spend in one period. */
export interface CounterRef {
  cid: string;
  subject: Subject;
  id: number;
  period: BudgetPeriod;
  start: number;
  end: number;
  /** The strictest limit on this counter, and the line it comes from. */
  limitNano: number;
  line: BudgetLine;
}

/** Whose request a hold is for: its key and the key's account. */
export interface Payer {
  keyId: number;
  userId: number;
}

/** The payer of a request by `key` (an ephemeral key's `id` is its parent's). */
export const payerOf = (key: { id: number; userId: number }): Payer => ({
  keyId: key.id,
  userId: key.userId,
});

export interface BudgetHold {
  counters: CounterRef[];
  amount: number;
  done: boolean;
  /** Set by the budgets service: a settled charge counts on the payer's loaded counters. */
  payer?: Payer;
  /** With Redis: the generation of this instance's holds the amount is held in. */
  gen?: HoldGeneration;
}

export type BudgetReserve =
  | { ok: true; hold: BudgetHold }
  | { ok: false; line: BudgetLine; spentNano: number; resetsAt: number };

/** A settled charge on one counter: spend before and after it. */
export interface Settled {
  counter: CounterRef;
  before: number;
  after: number;
}

/** The usage domain's side: spend since a UTC day, per key or per account. */
export interface BudgetStore {
  spentSince(subject: Subject, id: number, day: string): Promise<number>;
}

export interface BudgetMeter {
  /**
   * Holds `amount` on every line's counter if each has `need` (≥ amount; default: amount) left
   * (admission/admission.ts `roomNeeded`), or says which one refused.
   */
  reserve(lines: readonly BudgetLine[], amount: number, at: number, need?: number): Promise<BudgetReserve>;
  /** What a settlement of `cost` may charge: all of it within the hold, else no more than the budgets' room. */
  capFor(hold: BudgetHold, cost: number): Promise<number>;
  /**
   * Drops the hold and adds the charge to the period holding `at` (when the request's log row
   * is dated): a request that began before a period boundary and ended after it counts in the
   * new period, as its row does.
   */
  settle(hold: BudgetHold, charge: number, at: number): Promise<Settled[]>;
  /**
   * A charge settled on a hold with no budget in force: counted all the same by any counter of
   * its payer this instance holds (a budget set again later in the period counts it).
   */
  charged(hold: BudgetHold, charge: number, at: number): void;
  release(hold: BudgetHold): void;
  /** Spend in the period holding `at` (settled, written or not; holds excluded). */
  spent(line: BudgetLine, at: number): Promise<number>;
  /** The usage writer's contributor: pending spend becomes base once its rows commit. */
  flushInto(
    trx: Db,
    rows: readonly NewLog[],
    written?: readonly NewLog[],
  ): Promise<{ committed(): void; aborted(): void }>;
  close(): Promise<void>;
}

export const counterId = (subject: Subject, id: number, period: BudgetPeriod, start: number) =>
  `${subject}:${id}:${period}:${start}`;

/** The counters a request's lines touch, one per subject and period, each with its strictest limit. */
export function countersFor(lines: readonly BudgetLine[], at: number): CounterRef[] {
  const out = new Map<string, CounterRef>();
  for (const line of lines) {
    const start = periodStart(line.period, at);
    const cid = counterId(line.subject, line.id, line.period, start);
    const prev = out.get(cid);
    if (prev && prev.limitNano <= line.limitNano) continue;
    out.set(cid, {
      cid,
      subject: line.subject,
      id: line.id,
      period: line.period,
      start,
      end: periodEnd(line.period, at),
      limitNano: line.limitNano,
      line,
    });
  }
  return [...out.values()];
}

/** The payer the lines name (the budgets service sets the request's own on its holds). */
const payerOfLines = (lines: readonly BudgetLine[]): Payer => ({
  keyId: lines.find((l) => l.subject === 'k')?.id ?? -1,
  userId: lines.find((l) => l.subject === 'u')?.id ?? -1,
});

/** The counters a settlement at `at` charges: the hold's own, or the next period's where one began since. */
function chargeRefs(hold: BudgetHold, at: number): CounterRef[] {
  return hold.counters.map((ref) =>
    periodStart(ref.period, at) === ref.start
      ? ref
      : { ...countersFor([ref.line], at)[0]!, limitNano: ref.limitNano, line: ref.line },
  );
}

interface Counter {
  base: number;
  pending: number;
  reserved: number;
  end: number;
}

/** Forgotten this long after their period ended, once nothing is pending or held. */
const AFTER_END_MS = 60_000;
/** A base read waits for a usage batch under way at most this long a try, */
const BATCH_WAIT_MS = 50;
/** and is taken as it is after this many tries (batches back to back for a while). */
const BASE_READ_TRIES = 20;
const NO_COUNTERS = { committed() {}, aborted() {} };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/**
 * A charge settled and not yet written: the counters that count it as pending. Its log row
 * carries the same key, user, time and cost.
 */
interface Unwritten {
  charge: number;
  cids: string[];
}

/** Unwritten charges are matched to their log rows by what both carry. */
const rowKey = (keyId: number, at: number, charge: number) => `${keyId}:${at}:${charge}`;

function createCounters(store: BudgetStore, now: Clock) {
  const counters = new Map<string, Counter>();
  const loading = new Map<string, Promise<void>>();
  /**
   * Charges settled and not yet written, while any counter is loaded: each loaded counter of the
   * charge's key or account and period counts it as pending, whether or not a budget was in
   * force for that request (a budget switched off and on again within a period must still count
   * what was spent meanwhile), and a counter loaded later takes in those of its period. A batch
   * moves exactly these charges from pending into base.
   */
  const unwritten = new Map<string, Unwritten[]>();
  /**
   * Bumped when a usage batch begins and when it ends: a base read while one was under way
   * may or may not hold its rows, so it is read again once none is.
   */
  let epoch = 0;
  let batchesOpen = 0;
  let batchesDone: (() => void) | null = null;
  let allDone: Promise<void> = Promise.resolve();
  const batchBegins = () => {
    epoch++;
    if (batchesOpen++ === 0) allDone = new Promise((r) => (batchesDone = r));
  };
  const batchEnds = () => {
    epoch++;
    if (--batchesOpen === 0) batchesDone?.();
  };
  /** The stored spend of a counter's period (rows of this period written so far). */
  const readBase = (c: CounterRef) => store.spentSince(c.subject, c.id, dayOf(c.start));
  /** A counter's base, read while no batch was under way (or, after many tries, as it is). */
  async function settledBase(c: CounterRef): Promise<number> {
    for (let tries = 1; ; tries++) {
      if (batchesOpen > 0) await Promise.race([allDone, sleep(BATCH_WAIT_MS)]);
      const seen = epoch;
      const base = await readBase(c);
      if (seen === epoch || tries >= BASE_READ_TRIES) return base;
    }
  }
  /** The counter ids a charge of this key and account at `at` would count on. */
  const cidsAt = (keyId: number, userId: number, at: number) => {
    const out: string[] = [];
    for (const period of PERIODS) {
      const start = periodStart(period, at);
      out.push(counterId('k', keyId, period, start), counterId('u', userId, period, start));
    }
    return out;
  };

  function ensure(c: CounterRef): Promise<void> | null {
    if (counters.has(c.cid)) return null;
    let p = loading.get(c.cid);
    if (!p) {
      // No lock against the usage writer (on SQLite its open transaction holds the one
      // connection, and it would wait for this lock): the base is read while no batch is under
      // way, and the counter then takes in the charges still unwritten, so each charge is
      // counted once, in the base or as pending.
      p = settledBase(c)
        .then((base) => {
          if (counters.has(c.cid)) return;
          const k: Counter = { base, pending: 0, reserved: 0, end: c.end };
          for (const list of unwritten.values())
            for (const u of list) if (u.cids.includes(c.cid)) k.pending += u.charge;
          counters.set(c.cid, k);
        })
        .finally(() => loading.delete(c.cid));
      loading.set(c.cid, p);
    }
    return p;
  }

  return {
    counters,
    readBase,
    async load(refs: readonly CounterRef[]): Promise<Counter[]> {
      for (const p of refs.map(ensure)) if (p) await p;
      return refs.map((r) => counters.get(r.cid)!);
    },
    /**
     * A settled charge of the payer's key and account, dated `at`: pending on every loaded
     * counter of theirs for that time, until its row is written. Nothing to do while no
     * counter is loaded (no budget in force anywhere, the usual case).
     */
    charge(payer: Payer | undefined, amount: number, at: number): void {
      if (!payer || amount === 0 || (counters.size === 0 && loading.size === 0)) return;
      const { keyId, userId } = payer;
      const u: Unwritten = { charge: amount, cids: cidsAt(keyId, userId, at) };
      for (const cid of u.cids) {
        const k = counters.get(cid);
        if (k) k.pending += amount;
      }
      const key = rowKey(keyId, at, amount);
      const list = unwritten.get(key);
      if (list) list.push(u);
      else unwritten.set(key, [u]);
    },
    async flushInto(_trx: Db, rows: readonly NewLog[], written: readonly NewLog[] = rows) {
      const gained = new Map<string, number>();
      const taken = new Map<string, number>();
      // No budget in force anywhere (the usual case): no counter to find for any row.
      if (counters.size === 0 && unwritten.size === 0 && loading.size === 0) return NO_COUNTERS;
      batchBegins();
      for (const r of written) {
        const cost = Number(r.cost_nano);
        if (!cost) continue;
        for (const cid of cidsAt(Number(r.key_id), Number(r.user_id), Number(r.created_at)))
          if (counters.has(cid)) gained.set(cid, (gained.get(cid) ?? 0) + cost);
      }
      for (const r of rows) {
        const cost = Number(r.cost_nano);
        if (!cost) continue;
        const key = rowKey(Number(r.key_id), Number(r.created_at), cost);
        taken.set(key, (taken.get(key) ?? 0) + 1);
      }
      return {
        committed() {
          batchEnds();
          for (const [key, n] of taken) {
            const list = unwritten.get(key);
            if (!list) continue;
            for (const u of list.splice(0, n))
              for (const cid of u.cids) {
                const k = counters.get(cid);
                if (k) k.pending -= u.charge;
              }
            if (list.length === 0) unwritten.delete(key);
          }
          for (const [cid, d] of gained) {
            const c = counters.get(cid);
            if (c) c.base += d;
          }
          const t = now();
          for (const [cid, c] of counters)
            if (!c.pending && !c.reserved && c.end + AFTER_END_MS < t) counters.delete(cid);
        },
        aborted: batchEnds,
      };
    },
  };
}

/** How a hold ends, alike on both stores: settled, charged as its row is written, or released. */
function holdEnds(
  c: Pick<ReturnType<typeof createCounters>, 'charge'>,
  settle: BudgetMeter['settle'],
  logger: Logger,
): Pick<BudgetMeter, 'settle' | 'charged' | 'release'> {
  return {
    settle,
    charged: (hold, charge, at) => c.charge(hold.payer, charge, at),
    release: (hold) =>
      void settle(hold, 0, 0).catch((err: unknown) =>
        logger.error({ err: String(err) }, 'budgets: release failed'),
      ),
  };
}

/** Room left on a counter for a new hold. */
const room = (limit: number, spent: number, held: number) => limit - spent - held;

export function createLocalMeter(deps: { store: BudgetStore; logger: Logger; now?: Clock }): BudgetMeter {
  const c = createCounters(deps.store, deps.now ?? Date.now);

  async function settle(hold: BudgetHold, charge: number, at: number): Promise<Settled[]> {
    if (hold.done) return [];
    hold.done = true;
    for (const ref of hold.counters) {
      const k = c.counters.get(ref.cid);
      if (k) k.reserved -= hold.amount;
    }
    if (charge === 0) return [];
    const refs = chargeRefs(hold, at);
    const loaded = await c.load(refs);
    const before = loaded.map((k) => k.base + k.pending);
    c.charge(hold.payer, charge, at);
    return refs.map((counter, i) => ({ counter, before: before[i]!, after: before[i]! + charge }));
  }

  return {
    async reserve(lines, amount, at, need = amount) {
      const refs = countersFor(lines, at);
      const loaded = await c.load(refs);
      // No await from here to the increments: the check and the holds are atomic.
      for (let i = 0; i < refs.length; i++) {
        const k = loaded[i]!;
        if (amount > 0 && room(refs[i]!.limitNano, k.base + k.pending, k.reserved) < need)
          return { ok: false, line: refs[i]!.line, spentNano: k.base + k.pending, resetsAt: refs[i]!.end };
      }
      for (const k of loaded) k.reserved += amount;
      return { ok: true, hold: { counters: refs, amount, done: false, payer: payerOfLines(lines) } };
    },
    async capFor(hold, cost) {
      if (cost <= hold.amount) return cost;
      let cap = cost;
      for (const ref of hold.counters) {
        const k = c.counters.get(ref.cid);
        if (k)
          cap = Math.min(cap, Math.max(0, room(ref.limitNano, k.base + k.pending, k.reserved - hold.amount)));
      }
      return cap;
    },
    ...holdEnds(c, settle, deps.logger),
    async spent(line, at) {
      const [k] = await c.load(countersFor([line], at));
      return k!.base + k!.pending;
    },
    flushInto: c.flushInto,
    close: async () => {},
  };
}

// ---------------------------------------------------------------------------------------
// Redis: the same rules in Lua (see billing/ledger-redis.ts for the number conventions).

const NEEDS_SEED = -1;
const NOT_READ = '-1';
const COUNTER_TTL_S = '3600';

// KEYS: the counters, then this instance's liveness key. ARGV: amount, ttl, hold field,
// liveness prefix, lease ms, then per counter: limit, stored spend (NOT_READ = not read), and
// this instance's own count of the period's spend; last, the room the hold needs on each
// (≥ amount). A counter below this instance's count is raised to it: a shared counter counts
// only while its budget is in force, and an instance's own counter counts all the time (a
// budget switched off and on again, or its period changed and back, within a period).
// Answers 0 (held on all), -1 (a counter needs seeding) or i (counter i refused; 1-based).
// Each counter is read once (COUNTER); the lease is renewed before anything is decided.
const RESERVE_BODY = `local n = #KEYS - 1; local spent, held = {}, {}
for i = 1, n do
  local s, h = COUNTER(KEYS[i], 'spent', ARGV[4], ARGV[3])
  if not s then
    s = ARGV[4 + 3 * i]
    if s == '${NOT_READ}' then return ${NEEDS_SEED} end
    redis.call('HSET', KEYS[i], 'spent', s)
  end
  local own = ARGV[5 + 3 * i]
  if tonumber(s) < tonumber(own) then s = own; redis.call('HSET', KEYS[i], 'spent', own) end
  spent[i] = s; held[i] = h
end
redis.call('SET', KEYS[n + 1], '1', 'PX', ARGV[5])
local amount, need = tonumber(ARGV[1]), tonumber(ARGV[6 + 3 * n])
if amount > 0 then
  for i = 1, n do
    if tonumber(ARGV[3 + 3 * i]) - tonumber(spent[i]) - held[i] < need then return i end
  end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], ARGV[3], ARGV[1]); redis.call('EXPIRE', KEYS[i], ARGV[2])
end
return 0`;
// KEYS: the n held counters, then the n counters to charge (the same ones, or the next
// period's). ARGV: held amount, charge, hold field, ttl, then per charged counter the spend
// to seed it with when it does not exist (stored plus this instance's unwritten spend).
// Drops the hold and adds the charge (a charge of 0 is a release: nothing is created);
// answers each charged counter's spend after it. A held counter's HMGET tells whether it
// exists ('spent'), so charging the same counter needs no EXISTS.
const SETTLE_BODY = `local n = #KEYS / 2; local hold = tonumber(ARGV[1]); local out = {}; local found = {}
for i = 1, n do
  local r = redis.call('HMGET', KEYS[i], 'spent', ARGV[3]); local v = r[2]
  if v then
    local h = tonumber(v)
    if h > hold then redis.call('HSET', KEYS[i], ARGV[3], INT(h - hold)) else redis.call('HDEL', KEYS[i], ARGV[3]) end
  end
  found[i] = r[1]
end
if ARGV[2] == '0' then return out end
for i = 1, n do
  local k = KEYS[n + i]; local exists
  if k == KEYS[i] then exists = found[i] else exists = redis.call('EXISTS', k) == 1 end
  if not exists then
    redis.call('HSET', k, 'spent', ARGV[4 + i]); redis.call('EXPIRE', k, ARGV[4])
  end
  out[i] = tostring(redis.call('HINCRBY', k, 'spent', ARGV[2]))
end
return out`;
// KEYS: the counters. ARGV: liveness prefix, then per counter its limit. Answers the least
// room over them (the caller's own hold still counted), as a decimal string.
const ROOM_BODY = `local least = nil
for i = 1, #KEYS do
  local spent, held = COUNTER(KEYS[i], 'spent', ARGV[1], nil)
  if spent then
    local r = tonumber(ARGV[1 + i]) - tonumber(spent) - held
    if least == nil or r < least then least = r end
  end
end
if least == nil then return 'none' end
return INT(least)`;

/**
 * BUDGET_RESERVE, BUDGET_SETTLE (a release: charge 0) and BUDGET_ROOM, for scripts that run
 * them among other steps (after LUA_INT and LUA_COUNTER).
 */
export const BUDGETS_LUA =
  luaFunction('BUDGET_RESERVE', RESERVE_BODY) +
  luaFunction('BUDGET_SETTLE', SETTLE_BODY) +
  luaFunction('BUDGET_ROOM', ROOM_BODY);
const script = (fn: string) => `${LUA_INT}${LUA_COUNTER}${BUDGETS_LUA}return ${fn}(KEYS, ARGV)`;
export const BUDGET_NEEDS_SEED = NEEDS_SEED;

const int = (n: number): string => {
  if (!Number.isSafeInteger(n)) throw new Error(`budgets: amount ${n} is not a safe integer`);
  return n === 0 ? '0' : String(n);
};

/** The meter's Redis steps, with what this instance keeps in process on either side of them. */
export interface BudgetSteps {
  /** Loads this instance's counters (a database read on first use). */
  load(refs: readonly CounterRef[]): Promise<void>;
  /** This instance's hold generations: a reserve acquires one, its hold keeps it. */
  lease: HoldLease;
  /**
   * BUDGET_RESERVE's call, holding in `gen`; `seeds`: the spend to seed missing counters with
   * (else NEEDS_SEED); `need`: the room the hold needs (BudgetMeter `reserve`).
   */
  reserveCall(
    refs: readonly CounterRef[],
    amount: number,
    seeds: string[] | undefined,
    gen: HoldGeneration,
    need?: number,
  ): LuaCall;
  /** What to seed the counters with: the stored spend and this instance's unwritten spend. */
  seeds(refs: readonly CounterRef[]): Promise<string[]>;
  /**
   * BUDGET_SETTLE's call for `hold`, charging the period holding `at` (its ARGV[2] is the
   * charge; '0' releases), and how to read its answer; marks `hold` done (its hold closed in its
   * generation). Loads the charged counters.
   */
  settleCall(
    hold: BudgetHold,
    at: number,
  ): Promise<{ call: LuaCall; read(after: string[], charge: number): Settled[] }>;
  /** BUDGET_SETTLE's call releasing `hold` (no charge); marks it done (closed in its generation). */
  releaseCall(hold: BudgetHold): LuaCall;
  /** BUDGET_ROOM's call: the least room over the hold's counters, its own hold counted as taken. */
  roomCall(hold: BudgetHold): LuaCall;
}

export interface RedisMeter extends BudgetMeter {
  steps: BudgetSteps;
}

export function createRedisMeter(deps: {
  store: BudgetStore;
  logger: Logger;
  redis: RedisClient;
  redisPrefix: string;
  holdLeaseMs?: number;
  now?: Clock;
}): RedisMeter {
  const { redis } = deps;
  const c = createCounters(deps.store, deps.now ?? Date.now);
  const rk = (cid: string) => `${deps.redisPrefix}:budget:${cid}`;
  const lease = startHoldLease(redis, `${deps.redisPrefix}:budget:live:`, 'budgets', deps);
  const { livePrefix } = lease;
  const leaseMs = String(lease.leaseMs);
  const reserveScript = luaRunner(redis, script('BUDGET_RESERVE'));
  const settleScript = luaRunner(redis, script('BUDGET_SETTLE'));
  const roomScript = luaRunner(redis, script('BUDGET_ROOM'));

  /** Marks `hold` done, its hold closed in its generation. */
  const close = (hold: BudgetHold): void => {
    if (!hold.done && hold.gen) lease.release(hold.gen);
    hold.done = true;
  };
  const settleArgs = (
    hold: BudgetHold,
    refs: readonly CounterRef[],
    charge: string,
    seeds: string[],
  ): LuaCall => ({
    keys: [...hold.counters.map((r) => rk(r.cid)), ...refs.map((r) => rk(r.cid))],
    args: [int(hold.amount), charge, hold.gen!.holdField, COUNTER_TTL_S, ...seeds],
  });

  /** This instance's count of a counter's spend (loaded before any call that holds on it). */
  const ownCount = (r: CounterRef): string => {
    const k = c.counters.get(r.cid);
    return k ? int(k.base + k.pending) : '0';
  };

  const steps: BudgetSteps = {
    lease,
    async load(refs) {
      await c.load(refs);
    },
    reserveCall: (refs, amount, seeds, gen, need = amount) => ({
      keys: [...refs.map((r) => rk(r.cid)), gen.liveKey],
      args: [
        int(amount),
        COUNTER_TTL_S,
        gen.holdField,
        livePrefix,
        leaseMs,
        ...refs.flatMap((r, i) => [int(r.limitNano), seeds ? seeds[i]! : NOT_READ, ownCount(r)]),
        int(need),
      ],
    }),
    async seeds(refs) {
      // First use anywhere (or idled out): the stored spend plus what this instance has not written.
      const stored = await Promise.all(refs.map((r) => c.readBase(r)));
      return refs.map((r, i) => int(stored[i]! + (c.counters.get(r.cid)?.pending ?? 0)));
    },
    async settleCall(hold, at) {
      close(hold);
      const refs = chargeRefs(hold, at);
      // This instance's unwritten spend is counted per counter (it seeds Redis when needed).
      const loaded = await c.load(refs);
      const call = settleArgs(
        hold,
        refs,
        '0',
        loaded.map((k) => int(k.base + k.pending)),
      );
      return {
        call,
        read(after, charge) {
          if (charge === 0) return [];
          c.charge(hold.payer, charge, at);
          const out: Settled[] = [];
          refs.forEach((counter, i) => {
            const a = Number(after[i]);
            if (a >= 0) out.push({ counter, before: a - charge, after: a });
          });
          return out;
        },
      };
    },
    releaseCall(hold) {
      close(hold);
      return settleArgs(
        hold,
        hold.counters,
        '0',
        hold.counters.map(() => '0'),
      );
    },
    roomCall: (hold) => ({
      keys: hold.counters.map((r) => rk(r.cid)),
      args: [livePrefix, ...hold.counters.map((r) => int(r.limitNano))],
    }),
  };

  async function settle(hold: BudgetHold, charge: number, at: number): Promise<Settled[]> {
    if (hold.done) return [];
    if (hold.counters.length === 0) {
      hold.done = true;
      return [];
    }
    const gen = hold.gen;
    if (charge === 0) {
      const call = steps.releaseCall(hold);
      await lostAnswerRetires([gen], settleScript(call.keys, call.args));
      return [];
    }
    const { call, read } = await steps.settleCall(hold, at);
    call.args[1] = int(charge);
    return read((await lostAnswerRetires([gen], settleScript(call.keys, call.args))) as string[], charge);
  }

  return {
    steps,
    async reserve(lines, amount, at, need = amount) {
      const refs = countersFor(lines, at);
      if (refs.length === 0)
        return { ok: true, hold: { counters: refs, amount, done: false, payer: payerOfLines(lines) } };
      await c.load(refs);
      const { answer, gen } = await lease.holding(
        async (gen) => {
          const run = async (seeds?: string[]) => {
            const call = steps.reserveCall(refs, amount, seeds, gen, need);
            return (await lostAnswerRetires([gen], reserveScript(call.keys, call.args))) as number;
          };
          let answer = await run();
          if (answer === NEEDS_SEED) answer = await run(await steps.seeds(refs));
          return { answer, gen };
        },
        (r) => !(r.answer > 0),
      );
      if (answer > 0) {
        const ref = refs[answer - 1]!;
        const spent = Number(await redis.hGet(rk(ref.cid), 'spent'));
        return { ok: false, line: ref.line, spentNano: spent, resetsAt: ref.end };
      }
      return { ok: true, hold: { counters: refs, amount, done: false, gen, payer: payerOfLines(lines) } };
    },
    async capFor(hold, cost) {
      if (cost <= hold.amount || hold.counters.length === 0) return cost;
      const call = steps.roomCall(hold);
      const least = (await roomScript(call.keys, call.args)) as string;
      return roomCap(least, hold, cost);
    },
    ...holdEnds(c, settle, deps.logger),
    async spent(line, at) {
      const [ref] = countersFor([line], at);
      const [v, [k]] = await Promise.all([redis.hGet(rk(ref!.cid), 'spent'), c.load([ref!])]);
      // The shared count, or this instance's where it is higher (as BUDGET_RESERVE takes it).
      return Math.max(v === null ? 0 : Number(v), k!.base + k!.pending);
    },
    flushInto: c.flushInto,
    async close() {
      await lease.close();
    },
  };
}

/**
 * What a settlement of `cost` may charge given BUDGET_ROOM's answer. The room counts this
 * request's own hold as taken: it may have that back.
 */
export const roomCap = (least: string, hold: BudgetHold, cost: number): number =>
  least === 'none' ? cost : Math.max(0, Math.min(cost, Number(least) + hold.amount));
