// The shared ledger spec (ledger.spec.ts) against the Redis ledger, on the Redis server of
// MOLE_TEST_REDIS_URL (found by test/global-setup.ts); skipped, visibly, without one.
import { Redis } from 'ioredis';
import { describe, it } from 'vitest';
import { createRedisLedger } from './ledger-redis.js';
import { ledgerSpec, silent } from './ledger.spec.js';

const REDIS_URL = process.env.MOLE_TEST_REDIS_URL;

if (REDIS_URL) {
  ledgerSpec('Redis', {
    shared: true,
    async make({ store, bus, space, leaseMs }) {
      const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 0 });
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
  });
} else {
  console.warn('[ledger-redis.test] SKIPPING the Redis ledger spec: MOLE_TEST_REDIS_URL is not set');
  describe('Redis ledger', () => {
    it.skip('needs a Redis server (MOLE_TEST_REDIS_URL; test/global-setup.ts looks at TEST_REDIS_URL)', () => {});
  });
}
