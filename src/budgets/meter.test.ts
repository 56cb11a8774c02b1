// The budget meter, local and Redis (MOLE_TEST_REDIS_URL), against one spec: all-or-none
// holds over several budgets, exact admission under concurrency, settlement in the period of
// its time, the overrun cap, and the usage writer's flush (written spend is never counted twice).
import { randomBytes } from 'node:crypto';
import { testRedis } from '../shared/redis.spec.js';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { Db } from '../db/index.js';
import type { NewLog } from '../db/schema.js';
import {
  type BudgetLine,
  type BudgetMeter,
  type BudgetStore,
  counterId,
  createLocalMeter,
  createRedisMeter,
} from './meter.js';

const silent = pino({ level: 'silent' });
const REDIS_URL = process.env.MOLE_TEST_REDIS_URL;
const T = Date.parse('2031-03-10T12:00:00Z'); // a Monday

/** Stored spend per subject and day, as usage_daily would hold it. */
function storeOn(rows: { subject: 'k' | 'u'; id: number; day: string; cost: number }[]): BudgetStore {
  return {
    spentSince: async (subject, id, day) =>
      rows
        .filter((r) => r.subject === subject && r.id === id && r.day >= day)
        .reduce((n, r) => n + r.cost, 0),
  };
}

const keyLine = (id: number, limitNano: number, period: BudgetLine['period'] = 'daily'): BudgetLine => ({
  scope: 'key',
  subject: 'k',
  id,
  period,
  limitNano,
});
const userLine = (id: number, limitNano: number): BudgetLine => ({
  scope: 'account',
  subject: 'u',
  id,
  period: 'monthly',
  limitNano,
});

type Make = (store: BudgetStore, space?: string) => BudgetMeter;
const impls: [string, Make | null][] = [
  ['local', (store) => createLocalMeter({ store, logger: silent, now: () => T })],
  [
    'Redis',
    REDIS_URL
      ? (store, space) => {
          const redis = testRedis(REDIS_URL);
          const m = createRedisMeter({
            store,
            logger: silent,
            redis,
            redisPrefix: space ?? `spec:${randomBytes(6).toString('hex')}`,
            now: () => T,
          });
          return {
            ...m,
            close: async () => {
              await m.close();
              redis.destroy();
            },
          };
        }
      : null,
  ],
];

for (const [name, make] of impls) {
  describe.skipIf(!make)(`${name} budget meter`, () => {
    const open: BudgetMeter[] = [];
    const meter = (store: BudgetStore = storeOn([]), space?: string) => {
      const m = make!(store, space);
      open.push(m);
      return m;
    };
    afterAll(async () => {
      for (const m of open) await m.close();
    });

    it('holds against every budget at once, or none', async () => {
      const m = meter(storeOn([{ subject: 'u', id: 1, day: '2031-03-02', cost: 60 }]));
      const lines = [keyLine(1, 100), userLine(1, 100)];
      const a = await m.reserve(lines, 30, T);
      expect(a.ok).toBe(true);
      // The account has 100 - 60 - 30 = 10 left: refused, and the key's budget holds nothing more.
      const b = await m.reserve(lines, 20, T);
      expect(b).toMatchObject({ ok: false, line: { scope: 'account' }, spentNano: 60 });
      expect((await m.reserve([keyLine(1, 100)], 70, T)).ok).toBe(true);
      expect((await m.reserve([keyLine(1, 100)], 1, T)).ok).toBe(false);
    });

    it('admits exactly what fits under concurrency, and settles exactly', async () => {
      const m = meter();
      const all = await Promise.all(Array.from({ length: 50 }, () => m.reserve([keyLine(2, 1_000)], 100, T)));
      const held = all.flatMap((r) => (r.ok ? [r.hold] : []));
      expect(held).toHaveLength(10);
      const settled = await Promise.all(held.map((h) => m.settle(h, 60, T)));
      expect(
        settled
          .flat()
          .map((x) => x.after)
          .sort((a, b) => a - b)
          .at(-1),
      ).toBe(600);
      expect(await m.spent(keyLine(2, 1_000), T)).toBe(600);
      // 400 left: four more of 100.
      const more = await Promise.all(
        Array.from({ length: 10 }, () => m.reserve([keyLine(2, 1_000)], 100, T)),
      );
      expect(more.filter((r) => r.ok)).toHaveLength(4);
    });

    it('a release gives the hold back; an overrun is charged no more than the room', async () => {
      const m = meter();
      const r = await m.reserve([keyLine(3, 500)], 500, T);
      if (!r.ok) throw new Error('refused');
      m.release(r.hold);
      await expect.poll(async () => (await m.reserve([keyLine(3, 500)], 300, T)).ok).toBe(true);
      const s = await m.reserve([keyLine(3, 500)], 100, T);
      if (!s.ok) throw new Error('refused');
      // 300 held by the other request, 100 by this one: it may be charged 200 at most.
      expect(await m.capFor(s.hold, 900)).toBe(200);
      expect(await m.capFor(s.hold, 80)).toBe(80);
    });

    it('a request that ends in the next period is charged there, and the old hold is freed', async () => {
      const m = meter();
      const r = await m.reserve([keyLine(4, 100)], 100, T);
      if (!r.ok) throw new Error('refused');
      const tomorrow = Date.parse('2031-03-11T00:00:01Z');
      const s = await m.settle(r.hold, 70, tomorrow);
      expect(s.map((x) => [x.counter.start, x.after])).toEqual([[Date.parse('2031-03-11T00:00:00Z'), 70]]);
      expect(await m.spent(keyLine(4, 100), T)).toBe(0);
      expect((await m.reserve([keyLine(4, 100)], 100, T)).ok).toBe(true);
      expect(await m.spent(keyLine(4, 100), tomorrow)).toBe(70);
    });

    it('a flush moves settled spend into what is stored, counting it once', async () => {
      const rows: { subject: 'k' | 'u'; id: number; day: string; cost: number }[] = [];
      const m = meter(storeOn(rows));
      const r = await m.reserve([keyLine(5, 1_000, 'weekly')], 400, T);
      if (!r.ok) throw new Error('refused');
      await m.settle(r.hold, 400, T);
      const log = {
        key_id: 5,
        user_id: 9,
        cost_nano: 400,
        created_at: T,
        request_id: 'r1',
      } as unknown as NewLog;
      const tx = await m.flushInto(null as unknown as Db, [log]);
      rows.push({ subject: 'k', id: 5, day: '2031-03-10', cost: 400 });
      tx.committed();
      expect(await m.spent(keyLine(5, 1_000, 'weekly'), T)).toBe(400);
      expect((await m.reserve([keyLine(5, 1_000, 'weekly')], 601, T)).ok).toBe(false);
      expect((await m.reserve([keyLine(5, 1_000, 'weekly')], 600, T)).ok).toBe(true);
    });

    it.runIf(name === 'Redis')(
      'a held counter gone from Redis (expired) is seeded again at settle with what is known',
      async () => {
        const space = `spec:${randomBytes(6).toString('hex')}`;
        const m = meter(storeOn([{ subject: 'k', id: 7, day: '2031-03-10', cost: 10 }]), space);
        const r = await m.reserve([keyLine(7, 100)], 50, T);
        if (!r.ok) throw new Error('refused');
        const redis = testRedis(REDIS_URL!);
        await redis.del(`${space}:budget:${counterId('k', 7, 'daily', Date.parse('2031-03-10T00:00:00Z'))}`);
        redis.destroy();
        const s = await m.settle(r.hold, 30, T);
        expect(s.map((x) => [x.before, x.after])).toEqual([[10, 40]]);
        expect(await m.spent(keyLine(7, 100), T)).toBe(40);
        expect((await m.reserve([keyLine(7, 100)], 61, T)).ok).toBe(false);
        expect((await m.reserve([keyLine(7, 100)], 60, T)).ok).toBe(true);
      },
    );

    it.runIf(name === 'Redis')('two instances share one counter', async () => {
      const space = `spec:${randomBytes(6).toString('hex')}`;
      const a = meter(storeOn([]), space);
      const b = meter(storeOn([]), space);
      const all = await Promise.all(
        Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).reserve([keyLine(6, 1_000)], 100, T)),
      );
      expect(all.filter((r) => r.ok)).toHaveLength(10);
    });
  });
}
