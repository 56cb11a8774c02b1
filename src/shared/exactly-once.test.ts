// Exactly-once writes on the test Redis server, reached through a proxy that loses what the
// test says: a write refused while Redis is away, one whose answer is lost after it ran, one
// lost on its way (cut before Redis read it), and a write sent after a lost one.
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { tcpProxy } from '../../test/helpers/tcp-proxy.js';
import { createExactlyOnce, LUA_MARK } from './exactly-once.js';
import type { LuaCall } from './lua.js';
import { luaRunner } from './lua.js';
import { createRedis, isRedisUnreachable } from './redis.js';
import { onRedis, testRedis } from './redis.spec.js';

// KEYS: the mark, a counter. ARGV: the mark's arguments. Counts the writes that ran.
const COUNT_LUA = `${LUA_MARK}MARK(KEYS[1], ARGV[1], ARGV[2]) return redis.call('INCR', KEYS[2])`;

onRedis('exactly-once.test.ts', 'exactly-once writes', (url) => {
  describe('exactly-once writes', () => {
    const direct = testRedis(url);
    afterAll(() => direct.destroy());

    async function setup() {
      const proxy = await tcpProxy(new URL(url));
      const redis = createRedis(proxy.url(), undefined, { timeoutMs: 300 });
      await redis.connect();
      const prefix = `eo:${process.pid}:${Math.random().toString(36).slice(2)}:`;
      const once = createExactlyOnce(redis, prefix, { logger: pino({ level: 'silent' }), retryMs: 1_500 });
      const counter = `${prefix}count`;
      const script = luaRunner(redis, COUNT_LUA);
      const write = (mark: LuaCall) => script([...mark.keys, counter], mark.args);
      /** Every mark this instance left expires. */
      const marksExpire = async () => {
        const marks = await direct.keys(`${prefix}once:*`);
        for (const m of marks) expect(await direct.ttl(m), m).toBeGreaterThan(0);
      };
      const count = async () => Number((await direct.get(counter)) ?? 0);
      /** Runs a write that must fail as unreachable. */
      const lose = async () => {
        const err = await once.run(write, write).catch((e: unknown) => e);
        expect(isRedisUnreachable(err), String(err)).toBe(true);
      };
      /** The connection cut, and a new one made. */
      const cut = async () => {
        await proxy.stop();
        await expect.poll(() => redis.isReady, { timeout: 5_000 }).toBe(false);
        await proxy.start();
        await expect.poll(() => redis.isReady, { timeout: 5_000 }).toBe(true);
      };
      return {
        proxy,
        once,
        write,
        count,
        marksExpire,
        lose,
        cut,
        async close() {
          await once.close();
          redis.destroy();
          await proxy.stop();
        },
      };
    }

    it('a write refused while Redis is away is written once it is back', async () => {
      const t = await setup();
      try {
        await t.once.run(t.write, t.write);
        await t.proxy.stop();
        await t.lose();
        expect(await t.count()).toBe(1);
        expect(t.once.pending()).toBe(1);
        await t.proxy.start();
        await expect.poll(() => t.once.pending(), { timeout: 10_000 }).toBe(0);
        expect(await t.count()).toBe(2);
        await t.marksExpire();
      } finally {
        await t.close();
      }
    });

    it.each([
      ['that ran and lost its answer is not written again', 'dropReplies'],
      ['lost before Redis read it is written once', 'dropRequests'],
    ] as const)('a write %s', async (_, loss) => {
      const t = await setup();
      try {
        t.proxy[loss]();
        await t.lose();
        await t.cut();
        await expect.poll(() => t.once.pending(), { timeout: 10_000 }).toBe(0);
        expect(await t.count()).toBe(1);
      } finally {
        await t.close();
      }
    });

    it('a write that runs after a lost one does not pass for it', async () => {
      const t = await setup();
      try {
        t.proxy.dropRequests();
        await t.lose();
        await t.cut();
        // Runs before the lost write is judged (1.5 s after it failed).
        await t.once.run(t.write, t.write);
        expect(t.once.pending()).toBe(1);
        await expect.poll(() => t.once.pending(), { timeout: 10_000 }).toBe(0);
        expect(await t.count()).toBe(2);
        await t.marksExpire();
      } finally {
        await t.close();
      }
    });
  });
});
