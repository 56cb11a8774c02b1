// The shared limits spec (limiter.spec.ts) against the Redis store, on the Redis server of
// MOLE_TEST_REDIS_URL (found by test/global-setup.ts); skipped, visibly, without one.
import { testRedis } from '../shared/redis.spec.js';
import type { RedisClient } from '../shared/redis.js';
import { afterAll } from 'vitest';
import { onRedis } from '../shared/redis.spec.js';
import { createRedisLimitStore } from './store-redis.js';
import { limiterSpec } from './limiter.spec.js';

onRedis('limiter-redis.test', 'limits', (url) => {
  const clients: RedisClient[] = [];
  afterAll(() => {
    for (const c of clients) c.destroy();
  });
  limiterSpec('Redis', {
    shared: true,
    async make(space, leaseMs) {
      const redis = testRedis(url);
      clients.push(redis);
      return createRedisLimitStore({ redis, redisPrefix: space, leaseTtlMs: leaseMs });
    },
  });
});
