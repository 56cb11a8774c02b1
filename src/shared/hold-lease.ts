// The liveness lease behind Redis holds (ledger, budgets): each instance keeps its holds in
// its own counter field ("h:<id>"), and they count only while its liveness key exists; a
// heartbeat refreshes the key every lease/3, so a crashed instance's holds lapse with it.
import { randomBytes } from 'node:crypto';
import type { RedisClient } from './redis.js';
import type { Logger } from 'pino';

/**
 * Lua for the scripts: COUNTER(k, field, livep, own) reads counter k in one HGETALL and answers
 * the value of `field` (nil when k does not exist: a counter is created with its field) and the
 * sum of the live holds on it; the holds of instances whose lease ran out are deleted. `own`:
 * this instance's hold field when the script renews this instance's lease before it decides
 * anything (that hold counts without a lookup), else nil.
 */
export const LUA_COUNTER = `local function COUNTER(k, field, livep, own)
  local t = redis.call('HGETALL', k); local v = nil; local sum = 0
  for i = 1, #t, 2 do
    local f = t[i]
    if f == field then v = t[i + 1]
    elseif f == own then sum = sum + tonumber(t[i + 1])
    elseif string.sub(f, 1, 2) == 'h:' then
      if redis.call('EXISTS', livep .. string.sub(f, 3)) == 1 then sum = sum + tonumber(t[i + 1])
      else redis.call('HDEL', k, f) end
    end
  end
  return v, sum
end
`;

export interface HoldLease {
  /** Prefix of every instance's liveness key (the scripts test `livePrefix + id`). */
  livePrefix: string;
  /** This instance's liveness key. */
  liveKey: string;
  /** This instance's hold field in a counter. */
  holdField: string;
  /** How long the liveness key lives without a heartbeat. */
  leaseMs: number;
  /** Stops the heartbeat and drops the liveness key (this instance's holds stop counting). */
  close(): Promise<void>;
}

/**
 * Starts this instance's lease under `${livePrefix}<random id>`, of `holdLeaseMs` (30 s unless
 * given); `what` names it in logs.
 */
export function startHoldLease(
  redis: RedisClient,
  livePrefix: string,
  what: string,
  deps: { logger: Logger; holdLeaseMs?: number },
): HoldLease {
  const leaseMs = deps.holdLeaseMs ?? 30_000;
  const instance = randomBytes(8).toString('hex');
  const liveKey = livePrefix + instance;
  const heartbeat = setInterval(
    () =>
      void redis
        .set(liveKey, '1', { PX: leaseMs })
        .catch((err) => deps.logger.warn({ err: String(err) }, `${what}: hold lease renewal failed`)),
    Math.max(250, Math.floor(leaseMs / 3)),
  );
  heartbeat.unref();
  return {
    livePrefix,
    liveKey,
    holdField: `h:${instance}`,
    leaseMs,
    async close() {
      clearInterval(heartbeat);
      await redis.del(liveKey).catch(() => {});
    },
  };
}
