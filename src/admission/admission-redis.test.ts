// The admission spec (admission.spec.ts) on Redis (MOLE_TEST_REDIS_URL): one script to admit,
// one to settle; skipped, visibly, without a Redis server.
import { Redis } from 'ioredis';
import { createRedisLedger } from '../billing/ledger-redis.js';
import { createSpendCaps } from '../billing/spend-caps.js';
import { createRedisMeter } from '../budgets/meter.js';
import { InvalidationBus } from '../shared/bus.js';
import { createLimiter } from '../limits/limiter.js';
import { createRedisLimitStore } from '../limits/store-redis.js';
import { onRedis } from '../shared/redis.spec.js';
import { createRedisAdmission } from './admission-redis.js';
import { admissionSpec, silent } from './admission.spec.js';

onRedis('admission-redis.test', 'admission', (url) =>
  admissionSpec('Redis', {
    async make({ space, now, ledgerStore, capStore, budgetStore, budgets: budgetsOn }) {
      const redis = new Redis(url, { maxRetriesPerRequest: 0 });
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
      return { admission, limiter, ledger, spendCaps, budgets, disconnect: () => redis.disconnect() };
    },
  }),
);
