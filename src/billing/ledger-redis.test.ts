// The shared ledger spec (ledger.spec.ts) against the Redis ledger, on the Redis server of
// MOLE_TEST_REDIS_URL (found by test/global-setup.ts); skipped, visibly, without one.
import { Redis } from 'ioredis';
import { onRedis } from '../shared/redis.spec.js';
import { createRedisLedger } from './ledger-redis.js';
import { ledgerSpec, silent } from './ledger.spec.js';

onRedis('ledger-redis.test', 'ledger', (url) =>
  ledgerSpec('Redis', {
    shared: true,
    async make({ store, bus, space, leaseMs }) {
      const redis = new Redis(url, { maxRetriesPerRequest: 0 });
      const ledger = createRedisLedger({
        store,
        bus,
        logger: silent,
        redis,
        redisPrefix: space,
        ...(leaseMs !== undefined ? { holdLeaseMs: leaseMs } : {}),
      });
      return {
        ledger,
        // "kill -9": the heartbeat stops reaching Redis, and nothing is given back.
        crash: async () => redis.disconnect(),
        close: async () => {
          await ledger.close();
          redis.disconnect();
        },
      };
    },
  }),
);
