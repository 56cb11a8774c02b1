// The shared ledger spec (ledger.spec.ts) against the Redis ledger, on the Redis server of
// MOLE_TEST_REDIS_URL (found by test/global-setup.ts); skipped, visibly, without one. Then what
// only Redis can lose: expired counters, holds deleted after a lapsed lease.
import { randomBytes } from 'node:crypto';
import { testRedis } from '../shared/redis.spec.js';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidationBus } from '../shared/bus.js';
import { onRedis } from '../shared/redis.spec.js';
import { createRedisLedger, type RedisLedger } from './ledger-redis.js';
import { ledgerSpec, silent, storeOn } from './ledger.spec.js';

onRedis('ledger-redis.test', 'ledger', (url) =>
  ledgerSpec('Redis', {
    shared: true,
    async make({ store, bus, space, leaseMs }) {
      const redis = testRedis(url);
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
        crash: async () => redis.destroy(),
        close: async () => {
          await ledger.close();
          redis.destroy();
        },
      };
    },
  }),
);

// What only Redis can lose: counters that expire, and a hold deleted once its lease lapsed.
onRedis('ledger-redis.test', 'ledger counters', (url) =>
  describe('Redis ledger counters', () => {
    const redis = testRedis(url);
    const open: RedisLedger[] = [];
    afterAll(async () => {
      for (const l of open) await l.close();
      redis.destroy();
    });
    const ledgerOn = (stored: { used: number; balance: number }) => {
      const space = `spec:${randomBytes(6).toString('hex')}`;
      const ledger = createRedisLedger({
        store: storeOn(stored),
        bus: new InvalidationBus(),
        logger: silent,
        redis,
        redisPrefix: space,
      });
      open.push(ledger);
      return { ledger, key: `${space}:ledger:k:1`, user: `${space}:ledger:u:2` };
    };
    const held = (r: Awaited<ReturnType<RedisLedger['reserve']>>) => {
      if (!r.ok) throw new Error(`not admitted: ${r.reason}`);
      return r.reservation;
    };

    it('a settle after the counters expired charges the cost as asked; the next hold seeds them again', async () => {
      const { ledger, key, user } = ledgerOn({ used: 0, balance: 1_000 });
      const r = held(await ledger.reserve(1, 2, null, 500));
      await redis.del([key, user]);
      expect(await ledger.settle(r, 300)).toBe(300);
      // Seeded from the stored balance less this instance's unwritten 300.
      expect(await ledger.reserve(1, 2, null, 701)).toEqual({ ok: false, reason: 'balance' });
      expect((await ledger.reserve(1, 2, null, 700)).ok).toBe(true);
    });

    it('a settle whose hold was deleted (its lease lapsed) still charges, and nothing goes negative', async () => {
      const { ledger, key, user } = ledgerOn({ used: 0, balance: 1_000 });
      const r = held(await ledger.reserve(1, 2, 1_000, 500));
      for (const k of [key, user])
        for (const f of await redis.hKeys(k)) if (f.startsWith('h:')) await redis.hDel(k, f);
      expect(await ledger.settle(r, 300)).toBe(300);
      expect(await redis.hGet(key, 'used')).toBe('300');
      expect(await redis.hGet(user, 'bal')).toBe('700');
      expect(await ledger.reserve(1, 2, 1_000, 701)).toEqual({ ok: false, reason: 'key_quota' });
      expect((await ledger.reserve(1, 2, 1_000, 700)).ok).toBe(true);
    });
  }),
);
