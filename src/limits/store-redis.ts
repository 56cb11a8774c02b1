// The limit counters in Redis (REDIS_URL): every instance shares them. A check is one Lua
// script over all of the request's scopes (judge every limit, count only when all admit), so
// two instances can never admit past a limit together. Same rules as store-local.ts.
//
// Per scope: `<prefix>:lim:<scope>:r` and `:t` are hashes of second → requests / tokens,
// `:c` a sorted set of lease id → expiry (ms). Times come from the caller's clock.
import type { RedisClient } from '../shared/redis.js';
import { LUA_INT, type LuaCall, luaFunction, luaRunner } from '../shared/lua.js';
import type { AdmitOutcome, LimitKind, LimitStore, ScopeLimits, ScopeView, WindowView } from './store.js';
import { secondOf, WINDOW_SECONDS } from './store.js';

const KINDS: LimitKind[] = ['rpm', 'tpm', 'concurrency'];
/** Idle counters expire from Redis after this (they only hold the last minute anyway). */
const TTL_MS = (WINDOW_SECONDS + 5) * 1000;

// Numbers: amounts travel as decimal strings and go to HINCRBY as ARGV strings or through
// INT (string.format %d), never as Lua doubles formatted with an exponent.
// KEYS: per scope r, t, c. ARGV: now, tokens, lease id, lease expiry, commit (1/0), lease TTL,
// then per scope rpm, tpm, concurrency (-1 = none). Answers {refused scope (0 = none), kind,
// views}: per scope {rpm used (-1 = none), rpm buckets, tpm used, tpm buckets, in flight}.
const ADMIT_BODY = `local now = tonumber(ARGV[1]); local sec = math.floor(now / 1000); local tokens = tonumber(ARGV[2])
local oldest = sec - ${WINDOW_SECONDS}
local function WIN(k)
  local t = redis.call('HGETALL', k); local sum = 0; local flat = {}
  for i = 1, #t, 2 do
    local s = tonumber(t[i])
    if s < oldest then redis.call('HDEL', k, t[i])
    else local v = tonumber(t[i + 1]); sum = sum + v; flat[#flat + 1] = s; flat[#flat + 1] = v end
  end
  return sum, flat
end
local n = (#ARGV - 6) / 3
local views = {}; local rs = 0; local rk = 0
for j = 1, n do
  local rpm = tonumber(ARGV[6 + 3 * j - 2]); local tpm = tonumber(ARGV[6 + 3 * j - 1]); local conc = tonumber(ARGV[6 + 3 * j])
  local v = {-1, {}, -1, {}, -1}
  if rpm >= 0 then v[1], v[2] = WIN(KEYS[3 * j - 2]); if rs == 0 and v[1] + 1 > rpm then rs = j; rk = 1 end end
  if tpm >= 0 then v[3], v[4] = WIN(KEYS[3 * j - 1]); if rs == 0 and v[3] + tokens > tpm then rs = j; rk = 2 end end
  if conc >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[3 * j], '-inf', ARGV[1])
    v[5] = redis.call('ZCARD', KEYS[3 * j])
    if rs == 0 and v[5] + 1 > conc then rs = j; rk = 3 end
  end
  views[j] = v
end
if ARGV[5] == '1' and rs == 0 then
  for j = 1, n do
    if tonumber(ARGV[6 + 3 * j - 2]) >= 0 then
      redis.call('HINCRBY', KEYS[3 * j - 2], INT(sec), 1); redis.call('PEXPIRE', KEYS[3 * j - 2], ${TTL_MS})
    end
    if tonumber(ARGV[6 + 3 * j - 1]) >= 0 and tokens > 0 then
      redis.call('HINCRBY', KEYS[3 * j - 1], INT(sec), ARGV[2]); redis.call('PEXPIRE', KEYS[3 * j - 1], ${TTL_MS})
    end
    if tonumber(ARGV[6 + 3 * j]) >= 0 then
      redis.call('ZADD', KEYS[3 * j], ARGV[4], ARGV[3]); redis.call('PEXPIRE', KEYS[3 * j], ARGV[6])
    end
  end
end
return {rs, rk, views}`;

// KEYS: the scopes' token hashes. ARGV: second, delta, oldest counted second.
const ADJUST_BODY = `if tonumber(ARGV[1]) < tonumber(ARGV[3]) then return 0 end
for i = 1, #KEYS do
  if redis.call('HEXISTS', KEYS[i], ARGV[1]) == 1 then
    if redis.call('HINCRBY', KEYS[i], ARGV[1], ARGV[2]) <= 0 then redis.call('HDEL', KEYS[i], ARGV[1]) end
  end
end
return 0`;

// KEYS: the scopes' concurrency sets. ARGV: the lease id.
const RELEASE_BODY = `for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 0`;

/** LIMITS_ADMIT, LIMITS_ADJUST and LIMITS_RELEASE, for scripts that run them among other steps (after LUA_INT). */
export const LIMITS_LUA =
  luaFunction('LIMITS_ADMIT', ADMIT_BODY) +
  luaFunction('LIMITS_ADJUST', ADJUST_BODY) +
  luaFunction('LIMITS_RELEASE', RELEASE_BODY);
const ADMIT_LUA = `${LUA_INT}${LIMITS_LUA}return LIMITS_ADMIT(KEYS, ARGV)`;
const ADJUST_LUA = `${LUA_INT}${LIMITS_LUA}return LIMITS_ADJUST(KEYS, ARGV)`;

type RawView = [number, (number | string)[], number, (number | string)[], number];

const int = (n: number): string => {
  if (!Number.isSafeInteger(n)) throw new Error(`limits: ${n} is not a safe integer`);
  return n === 0 ? '0' : String(n);
};

function windowOf(used: number, flat: (number | string)[], limit: number | null): WindowView | null {
  if (limit === null || used < 0) return null;
  const buckets: [number, number][] = [];
  for (let i = 0; i < flat.length; i += 2) buckets.push([Number(flat[i]), Number(flat[i + 1])]);
  buckets.sort((a, b) => a[0] - b[0]);
  return { limit, used: Number(used), buckets };
}

/** The Redis store, and its steps for scripts that run them among others (admission). */
export interface RedisLimitStore extends LimitStore {
  /** LIMITS_ADMIT's keys and arguments for a check that counts when all admit. */
  admitCall(
    scopes: ScopeLimits[],
    tokens: number,
    leaseId: string,
    leaseExpiresAt: number,
    now: number,
  ): LuaCall;
  /** Reads LIMITS_ADMIT's answer. */
  readAdmit(scopes: ScopeLimits[], answer: unknown): AdmitOutcome;
  /** LIMITS_ADJUST's keys and arguments (null: nothing to correct). */
  adjustCall(scopeIds: string[], second: number, delta: number, now: number): LuaCall | null;
  /** LIMITS_RELEASE's keys and arguments: gives a concurrency lease back in every scope. */
  releaseCall(scopeIds: string[], leaseId: string): LuaCall;
}

export function createRedisLimitStore(deps: {
  redis: RedisClient;
  redisPrefix: string;
  leaseTtlMs: number;
}): RedisLimitStore {
  const { redis } = deps;
  const k = (id: string, part: 'r' | 't' | 'c') => `${deps.redisPrefix}:lim:${id}:${part}`;
  const admitScript = luaRunner(redis, ADMIT_LUA);
  const adjustScript = luaRunner(redis, ADJUST_LUA);

  function call(
    scopes: ScopeLimits[],
    tokens: number,
    leaseId: string,
    leaseExpiresAt: number,
    now: number,
    commit: boolean,
  ): LuaCall {
    return {
      keys: scopes.flatMap((s) => [k(s.id, 'r'), k(s.id, 't'), k(s.id, 'c')]),
      args: [
        int(now),
        int(tokens),
        leaseId,
        int(leaseExpiresAt),
        commit ? '1' : '0',
        int(deps.leaseTtlMs * 2),
        ...scopes.flatMap((s) => [s.rpm ?? -1, s.tpm ?? -1, s.concurrency ?? -1].map(int)),
      ],
    };
  }

  function read(scopes: ScopeLimits[], answer: unknown): AdmitOutcome {
    const [rs, rk, raw] = answer as [number, number, RawView[]];
    const views: ScopeView[] = scopes.map((s, i) => {
      const v = raw[i]!;
      return {
        rpm: windowOf(v[0], v[1], s.rpm),
        tpm: windowOf(v[2], v[3], s.tpm),
        concurrency: s.concurrency === null ? null : { limit: s.concurrency, inFlight: Number(v[4]) },
      };
    });
    return { refused: rs > 0 ? { scope: rs - 1, kind: KINDS[rk - 1]! } : null, views };
  }

  function adjustCall(ids: string[], second: number, delta: number, now: number): LuaCall | null {
    if (delta === 0 || ids.length === 0) return null;
    return {
      keys: ids.map((id) => k(id, 't')),
      args: [int(second), int(delta), int(secondOf(now) - WINDOW_SECONDS)],
    };
  }

  async function run(scopes: ScopeLimits[], c: LuaCall): Promise<AdmitOutcome> {
    return read(scopes, await admitScript(c.keys, c.args));
  }

  return {
    admitCall: (scopes, tokens, leaseId, leaseExpiresAt, now) =>
      call(scopes, tokens, leaseId, leaseExpiresAt, now, true),
    readAdmit: read,
    adjustCall,
    releaseCall: (ids, leaseId) => ({ keys: ids.map((id) => k(id, 'c')), args: [leaseId] }),
    admit: (scopes, tokens, leaseId, leaseExpiresAt, now) =>
      run(scopes, call(scopes, tokens, leaseId, leaseExpiresAt, now, true)),
    peek: async (scopes, now) => (await run(scopes, call(scopes, 0, '-', 0, now, false))).views,
    async adjustTokens(ids, second, delta, now) {
      const c = adjustCall(ids, second, delta, now);
      if (c) await adjustScript(c.keys, c.args);
    },
    async release(ids, leaseId) {
      if (ids.length === 0) return;
      const m = redis.multi();
      for (const id of ids) m.zRem(k(id, 'c'), leaseId);
      await m.exec();
    },
    async renew(leases, expiresAt) {
      if (leases.length === 0) return;
      const m = redis.multi();
      for (const l of leases)
        for (const id of l.scopeIds) {
          m.zAdd(k(id, 'c'), { score: expiresAt, value: l.leaseId }, { condition: 'XX' });
          m.pExpire(k(id, 'c'), deps.leaseTtlMs * 2);
        }
      await m.exec();
    },
    async close() {},
  };
}
