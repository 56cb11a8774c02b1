// The shared limits spec (limiter.spec.ts) against the Redis store, on the Redis server of
// MOLE_TEST_REDIS_URL (found by test/global-setup.ts); skipped, visibly, without one.
import { Redis } from 'ioredis';
import { afterAll, describe, it } from 'vitest';
import { createRedisLimitStore } from './store-redis.js';
import { limiterSpec } from './limiter.spec.js';

const REDIS_URL = process.env.MOLE_TEST_REDIS_URL;

if (REDIS_URL) {
  const clients: Redis[] = [];
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });
  limiterSpec('Redis', {
    shared: true,
    async make(space, leaseMs) {
      const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 0 });
      clients.push(redis);
      return createRedisLimitStore({ redis, redisPrefix: space, leaseTtlMs: leaseMs });
    },
  });
} else {
  console.warn('[limiter-redis.test] SKIPPING the Redis limits spec: MOLE_TEST_REDIS_URL is not set');
  describe('Redis limits', () => {
    it.skip('needs a Redis server (MOLE_TEST_REDIS_URL; test/global-setup.ts looks at TEST_REDIS_URL)', () => {});
  });
}
