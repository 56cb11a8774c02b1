// The admission spec (admission.spec.ts) on Redis (MOLE_TEST_REDIS_URL): one script to admit,
// one to settle; skipped, visibly, without a Redis server.
import { Redis } from 'ioredis';
import { describe, it } from 'vitest';
import { createRedisLedger } from '../billing/ledger-redis.js';
import { createSpendCaps } from '../billing/spend-caps.js';
import { createRedisMeter } from '../budgets/meter.js';
import { InvalidationBus } from '../shared/bus.js';
import { createLimiter } from '../limits/limiter.js';
import { createRedisLimitStore } from '../limits/store-redis.js';
import { createRedisAdmission } from './admission-redis.js';
import { admissionSpec, silent } from './admission.spec.js';

const REDIS_URL = process.env.MOLE_TEST_REDIS_URL;

if (REDIS_URL) {
  admissionSpec('Redis', {
    async make({ space, now, ledgerStore, capStore, budgetStore, budgets: budgetsOn }) {
      const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 0 });
      const limitStore = createRedisLimitStore({ redis, redisPrefix: space, leaseTtlMs: 30_000 });
      const limiter = createLimiter({ store: limitStore, now, leaseMs: 30_000, renewEveryMs: null });
      const ledger = createRedisLedger({
        store: ledgerStore,
        bus: new InvalidationBus(),
        logger: silent,
        redis,
        redisPrefix: space,
        now,
      });
      const spendCaps = createSpendCaps({
        store: capStore,
        logger: silent,
        redis: { client: redis, prefix: space },
        now,
      });
      const meter = createRedisMeter({ store: budgetStore, logger: silent, redis, redisPrefix: space, now });
      const budgets = budgetsOn(meter);
      const admission = createRedisAdmission({
        redis,
        logger: silent,
        limiter,
        limitStore,
        spendCaps,
        budgets,
        meter,
        ledger,
        now,
      });
      return {
        admission,
        limiter,
        ledger,
        spendCaps,
        budgets,
        async close() {
          await limiter.close();
          await ledger.close();
          await budgets.close();
          redis.disconnect();
        },
      };
    },
  });
} else {
  console.warn('[admission-redis.test] SKIPPING the Redis admission spec: MOLE_TEST_REDIS_URL is not set');
  describe('Redis admission', () => {
    it.skip('needs a Redis server (MOLE_TEST_REDIS_URL; test/global-setup.ts looks at TEST_REDIS_URL)', () => {});
  });
}
