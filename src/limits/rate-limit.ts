// Requests-per-minute limits per key. Fixed one-minute windows: in memory for one instance,
// in Redis (INCR + EXPIRE) when REDIS_URL is set so every instance shares the count.
import type { Redis } from 'ioredis';

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

export function createRateLimiter(redis: Redis | null, prefix: string) {
  const windows = new Map<number, { window: number; count: number }>();
  return {
    async check(keyId: number, rpm: number | null, now = Date.now()): Promise<RateDecision> {
      if (rpm === null) return { ok: true };
      const window = Math.floor(now / 60_000);
      const retryAfterSeconds = Math.max(1, Math.ceil(((window + 1) * 60_000 - now) / 1000));
      if (redis) {
        const k = `${prefix}:rl:${keyId}:${window}`;
        const [[, count]] = (await redis.multi().incr(k).expire(k, 61).exec()) as [
          [null, number],
          [null, number],
        ];
        return count <= rpm ? { ok: true } : { ok: false, retryAfterSeconds };
      }
      let w = windows.get(keyId);
      if (!w || w.window !== window) {
        w = { window, count: 0 };
        windows.set(keyId, w);
        if (windows.size > 100_000)
          for (const [id, v] of windows) if (v.window !== window) windows.delete(id);
      }
      if (w.count >= rpm) return { ok: false, retryAfterSeconds };
      w.count++;
      return { ok: true };
    },
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;
