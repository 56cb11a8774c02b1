// Hold generations on the test Redis server: a retired generation takes no new holds, stays
// alive while holds made in it are open, and its liveness key goes with the last of them (at
// once when none is open), so a hold whose answer was lost stops counting.
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startHoldLease } from './hold-lease.js';
import { onRedis, testRedis } from './redis.spec.js';

onRedis('hold-lease.test.ts', 'hold generations', (url) => {
  describe('hold generations', () => {
    const redis = testRedis(url);
    const prefix = `hl:${process.pid}:${Date.now().toString(36)}:live:`;
    const lease = startHoldLease(redis, prefix, 'test', {
      logger: pino({ level: 'silent' }),
      holdLeaseMs: 60_000,
    });
    const alive = async (key: string) => (await redis.exists(key)) === 1;
    afterAll(async () => {
      await lease.close();
      redis.destroy();
    });

    it('a retired generation lives while its holds are open and goes with the last one', async () => {
      const a = lease.acquire();
      const b = lease.acquire();
      expect(b).toBe(a);
      await redis.set(a.liveKey, '1', { PX: 60_000 }); // what a reserve script does
      a.retire();
      const next = lease.acquire();
      expect(next).not.toBe(a);
      expect(next.holdField).not.toBe(a.holdField);
      lease.release(a);
      expect(await alive(a.liveKey)).toBe(true);
      lease.release(b);
      await expect.poll(() => alive(a.liveKey)).toBe(false);
      // Retiring again changes nothing; the new generation is the current one.
      a.retire();
      expect(lease.acquire()).toBe(next);
      lease.release(next);
      lease.release(next);
    });

    it('a generation retired with nothing open goes at once', async () => {
      const gen = lease.acquire();
      lease.release(gen);
      await redis.set(gen.liveKey, '1', { PX: 60_000 });
      gen.retire();
      await expect.poll(() => alive(gen.liveKey)).toBe(false);
      expect(lease.acquire()).not.toBe(gen);
    });
  });
});
