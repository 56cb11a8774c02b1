// The anomaly guard (contract §8): per key and clock hour (UTC), the distinct client IPs that
// used it and what it spent. Past a threshold, `disable` switches the key off and locks it,
// `alert` raises the event. Counted in memory, or in Redis with REDIS_URL so every instance
// adds to the same count (a set of IPs and an INCRBY per hour, expiring on their own). No
// database on the hot path: only crossing a threshold writes (the lock, the audit row).
// A failure to count (Redis away) lets the request through: the guard watches, it does not
// admit (limits and quotas do that).
import type { RedisClient } from '../shared/redis.js';
import type { Logger } from 'pino';
import type { Guard } from '../billing/guard.js';
import { nanoToUsd } from '../billing/money.js';
import type { VerifiedKey } from '../keys/verify.js';
import type { Clock } from '../shared/clock.js';
import type { GuardTrip, SecurityActions } from './actions.js';

const HOUR_MS = 3_600_000;
/** Counters outlive their hour a little (clock skew between instances). */
const TTL_MS = HOUR_MS + 5 * 60_000;

// Adds the IP to this hour's set unless the set is already past the limit (it need not grow
// further: any new IP crosses). Returns {distinct IPs counting this one, 1 if it was new}.
const NOTE_IP = `
local n = redis.call('SCARD', KEYS[1])
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {n, 0} end
if n <= tonumber(ARGV[2]) then
  redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {n + 1, 1}`;

export interface GuardCounters {
  /** Distinct IPs this hour with `ip` counted, and whether `ip` is new this hour. */
  noteIp(keyId: number, hour: number, ip: string, limit: number): Promise<{ count: number; isNew: boolean }>;
  /** Spend this hour after adding `nano`. */
  addSpend(keyId: number, hour: number, nano: number): Promise<number>;
}

function memoryCounters(): GuardCounters {
  const perKey = new Map<number, { hour: number; ips: Set<string>; spend: number }>();
  const current = (keyId: number, hour: number) => {
    let c = perKey.get(keyId);
    if (!c || c.hour !== hour) {
      c = { hour, ips: new Set(), spend: 0 };
      perKey.set(keyId, c);
      if (perKey.size > 100_000) for (const [id, v] of perKey) if (v.hour !== hour) perKey.delete(id);
    }
    return c;
  };
  return {
    async noteIp(keyId, hour, ip, limit) {
      const c = current(keyId, hour);
      if (c.ips.has(ip)) return { count: c.ips.size, isNew: false };
      const count = c.ips.size + 1;
      if (c.ips.size <= limit) c.ips.add(ip);
      return { count, isNew: true };
    },
    async addSpend(keyId, hour, nano) {
      const c = current(keyId, hour);
      c.spend += nano;
      return c.spend;
    },
  };
}

function redisCounters(redis: RedisClient, prefix: string): GuardCounters {
  // IPs this instance already saw counted in Redis this hour: a repeat needs no round trip.
  const seen = new Map<number, { hour: number; ips: Set<string> }>();
  return {
    async noteIp(keyId, hour, ip, limit) {
      let s = seen.get(keyId);
      if (s && s.hour === hour && s.ips.has(ip)) return { count: s.ips.size, isNew: false };
      const [count, isNew] = (await redis.eval(NOTE_IP, {
        keys: [`${prefix}:guard:ip:${keyId}:${hour}`],
        arguments: [ip, String(limit), String(TTL_MS)],
      })) as [number, number];
      if (count <= limit) {
        if (!s || s.hour !== hour) {
          s = { hour, ips: new Set() };
          seen.set(keyId, s);
          if (seen.size > 100_000) for (const [id, v] of seen) if (v.hour !== hour) seen.delete(id);
        }
        s.ips.add(ip);
      }
      return { count, isNew: isNew === 1 };
    },
    async addSpend(keyId, hour, nano) {
      const k = `${prefix}:guard:spend:${keyId}:${hour}`;
      const [total] = await redis.multi().incrBy(k, nano).pExpire(k, TTL_MS).exec();
      return Number(total);
    },
  };
}

export function createAnomalyGuard(deps: {
  redis: RedisClient | null;
  redisPrefix: string;
  /** The group's guard (billing's catalog, in memory). */
  groupGuard: (group: string) => Guard | null;
  actions: Pick<SecurityActions, 'autoDisable' | 'alert'>;
  logger: Logger;
  now: Clock;
}) {
  const counters = deps.redis ? redisCounters(deps.redis, deps.redisPrefix) : memoryCounters();
  /** Trips already handled here this hour (`key:hour:metric`): the rest is one event or lock per instance. */
  const handled = new Set<string>();
  let handledHour = 0;

  /**
   * The guards watching a key: its own and its group's. Both apply (an owner's own guard cannot
   * loosen the one an admin set on the group); past both, `disable` wins.
   */
  function guardsOf(key: VerifiedKey, watches: (g: Guard) => number | null): { g: Guard; limit: number }[] {
    const out: { g: Guard; limit: number }[] = [];
    for (const g of [key.guard, deps.groupGuard(key.group)]) {
      const limit = g ? watches(g) : null;
      if (g && limit !== null) out.push({ g, limit });
    }
    return out;
  }
  /** The guard that acts when several are passed: a disabling one first, then the strictest. */
  const acting = (passed: { g: Guard; limit: number }[]) =>
    [...passed].sort(
      (x, y) => Number(y.g.action === 'disable') - Number(x.g.action === 'disable') || x.limit - y.limit,
    )[0];

  /** Acts on a trip once per key, hour and metric on this instance; true when the key is being disabled. */
  async function trip(
    key: VerifiedKey,
    g: Guard,
    hour: number,
    t: Omit<GuardTrip, 'hour'>,
  ): Promise<boolean> {
    if (hour !== handledHour) {
      handled.clear();
      handledHour = hour;
    }
    const id = `${key.id}:${hour}:${t.metric}`;
    const first = !handled.has(id);
    handled.add(id);
    const full: GuardTrip = { ...t, hour: new Date(hour * HOUR_MS).toISOString() };
    if (g.action === 'disable') {
      // Every request past the threshold waits for the lock (idempotent: one audit row).
      await deps.actions.autoDisable(key.id, key.userId, full);
      return true;
    }
    if (first) await deps.actions.alert(key.id, key.userId, full);
    return false;
  }

  return {
    /**
     * Counts the client IP against the key's hourly limit. Refused (the caller answers
     * key_disabled) when this request brings a new IP past the limit and the action is disable.
     */
    async checkIp(key: VerifiedKey, ip: string): Promise<{ ok: true } | { ok: false; reason: string }> {
      const guards = guardsOf(key, (g) => g.maxIpsPerHour);
      if (guards.length === 0) return { ok: true };
      const hour = Math.floor(deps.now() / HOUR_MS);
      let seen: { count: number; isNew: boolean };
      try {
        const cap = Math.max(...guards.map((x) => x.limit));
        seen = await counters.noteIp(key.id, hour, ip, cap);
      } catch (err) {
        deps.logger.warn({ err: String(err), key_id: key.id }, 'guard: counting client IPs failed');
        return { ok: true };
      }
      if (!seen.isNew) return { ok: true };
      const act = acting(guards.filter((x) => seen.count > x.limit));
      if (!act) return { ok: true };
      const reason = `used from more than ${act.limit} client IPs within the hour`;
      const disabled = await trip(key, act.g, hour, {
        metric: 'ips',
        limit: act.limit,
        value: seen.count,
        reason,
      });
      return disabled ? { ok: false, reason } : { ok: true };
    },

    /** Adds a settled cost to the key's hour; past the limit, disables or alerts. Never throws. */
    async noteSpend(key: VerifiedKey, nano: number): Promise<void> {
      const guards = guardsOf(key, (g) => g.maxSpendPerHourNano);
      if (guards.length === 0 || nano <= 0) return;
      const hour = Math.floor(deps.now() / HOUR_MS);
      try {
        const total = await counters.addSpend(key.id, hour, nano);
        const act = acting(guards.filter((x) => total > x.limit));
        if (!act) return;
        const limit = nanoToUsd(act.limit);
        await trip(key, act.g, hour, {
          metric: 'spend',
          limit,
          value: nanoToUsd(total),
          reason: `spent more than ${limit} USD within the hour`,
        });
      } catch (err) {
        deps.logger.error({ err: String(err), key_id: key.id }, 'guard: noting spend failed');
      }
    },
  };
}

export type AnomalyGuard = ReturnType<typeof createAnomalyGuard>;
