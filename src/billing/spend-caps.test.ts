// Ephemeral keys' max_cost (spend-caps.ts), in process and in Redis: holds never pass the cap,
// settling charges the cost (never past the cap when a call overruns its hold), refunds and
// releases give room back, the flush writes spend from the log rows and moves it to the base.
import { randomBytes } from 'node:crypto';
import { testRedis } from '../shared/redis.spec.js';
import type { RedisClient } from '../shared/redis.js';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { Db } from '../db/index.js';
import type { NewLog } from '../db/schema.js';
import { createSpendCaps, type SpendCapStore } from './spend-caps.js';

const REDIS_URL = process.env.MOLE_TEST_REDIS_URL;
const silent = pino({ level: 'silent' });
const clients: RedisClient[] = [];
afterAll(() => {
  for (const c of clients) c.destroy();
});

function store(stored: Map<number, number>): SpendCapStore {
  return {
    usedNano: async (id) => stored.get(id) ?? 0,
    addUsed: async (_trx, deltas) => {
      for (const [id, d] of deltas) stored.set(id, (stored.get(id) ?? 0) + d);
    },
  };
}

const kinds = REDIS_URL ? (['local', 'redis'] as const) : (['local'] as const);

describe.each(kinds)('spend caps [%s]', (kind) => {
  const make = (stored: Map<number, number>, prefix = `caps-test:${randomBytes(6).toString('hex')}`) => {
    let redis = null;
    if (kind === 'redis') {
      const client = testRedis(REDIS_URL!);
      clients.push(client);
      redis = { client, prefix };
    }
    return createSpendCaps({ store: store(stored), logger: silent, redis });
  };

  it('holds up to the cap and no further, concurrently', async () => {
    const caps = make(new Map([[1, 10]]));
    const holds = await Promise.all(Array.from({ length: 20 }, () => caps.hold(1, 100, 10)));
    expect(holds.filter(Boolean)).toHaveLength(9); // 10 already spent
    for (const h of holds) if (h) expect(await caps.settle(h, 10)).toBe(10);
    expect(await caps.hold(1, 100, 1)).toBeNull();
    expect(await caps.usedNano(1)).toBe(100);
  });

  it("shows the stored spend as it is now (another instance's written) plus this one's unwritten", async () => {
    const stored = new Map([[3, 10]]);
    const caps = make(stored);
    expect(await caps.settle((await caps.hold(3, 100, 20))!, 20)).toBe(20);
    stored.set(3, 40); // another instance wrote 30
    expect(await caps.usedNano(3)).toBe(60);
  });

  it('an overrun charges only what the cap still covers; refunds and releases give room back', async () => {
    const caps = make(new Map());
    const a = (await caps.hold(2, 100, 40))!;
    const b = (await caps.hold(2, 100, 40))!;
    expect(await caps.settle(a, 70)).toBe(60); // 100 - 40 still held by b
    await caps.release(b);
    expect(await caps.hold(2, 100, 41)).toBeNull();
    const c = (await caps.hold(2, 100, 40))!;
    expect(await caps.settle(c, 30)).toBe(30);
    await caps.refund(c, 10);
    expect(await caps.usedNano(2)).toBe(80);
    expect(await caps.hold(2, 100, 20)).not.toBeNull();
  });

  it('flushes spend from log rows and keeps counting from the stored value', async () => {
    const stored = new Map<number, number>();
    const caps = make(stored);
    const h = (await caps.hold(3, 50, 20))!;
    await caps.settle(h, 20);
    const rows = [
      { ephemeral_id: 3, cost_nano: 20, request_id: 'a' },
      { ephemeral_id: null, cost_nano: 99, request_id: 'b' },
    ] as unknown as NewLog[];
    const handle = await caps.flushInto({} as Db, rows, rows);
    handle.committed();
    expect(stored.get(3)).toBe(20);
    expect(await caps.usedNano(3)).toBe(20);
    // A fresh instance (a restart) starts from what was stored.
    const again = make(stored);
    expect(await again.hold(3, 50, 31)).toBeNull();
    expect(await again.hold(3, 50, 30)).not.toBeNull();
  });

  it.runIf(kind === 'redis')(
    'a counter gone from Redis (expired) charges the cost as asked; the next hold seeds it again',
    async () => {
      const prefix = `caps-test:${randomBytes(6).toString('hex')}`;
      const caps = make(new Map([[4, 10]]), prefix);
      const h = (await caps.hold(4, 100, 40))!;
      await clients.at(-1)!.del(`${prefix}:caps:e:4`);
      expect(await caps.settle(h, 30)).toBe(30);
      // Seeded from the stored 10 plus this instance's unwritten 30.
      expect(await caps.hold(4, 100, 61)).toBeNull();
      expect(await caps.hold(4, 100, 60)).not.toBeNull();
    },
  );
});
