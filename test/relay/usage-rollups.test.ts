// Sums over any time range, answered from the daily and hourly rollups plus the logs at the
// sub-hour edges, equal the sums of a plain scan of the logs: random ranges (unbounded, on
// day and hour boundaries, anywhere), random filters, every grouping, pages too, over rows
// written through the usage writer (repeated request_ids included), on SQLite and
// PostgreSQL. The migration's backfill builds the same hourly rows the writer does. Not timed.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateRetrying } from '../../src/db/open.js';
import type { NewLog } from '../../src/db/schema.js';
import {
  createUsageQueries,
  type LogFilter,
  type UsageGroup,
  type UsageQueries,
} from '../../src/usage/queries.js';
import { logRow } from '../helpers/log-row.js';
import { countQueries, sqlitePlan } from '../helpers/queries.js';
import { backends, startTestServer, type TestServer } from '../helpers/server.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const T0 = Date.UTC(2026, 9, 30);
const SPAN = 3 * DAY_MS;

/** mulberry32: the same "random" rows and ranges on every run. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!,
  };
}

/** Key id → owner: keys 1–2 belong to user 1, 3–4 to user 2, 5–6 to user 3. */
const KEYS = [1, 2, 3, 4, 5, 6];
const ownerOf = (key: number) => Math.ceil(key / 2);
const MODELS = ['a', 'b', null] as const;

describe.each(backends())('usage from rollups equals usage from the logs [%s]', (backend) => {
  let s: TestServer;
  let fast: UsageQueries;
  let raw: UsageQueries;
  beforeAll(async () => {
    s = await startTestServer({ backend });
    const { db, dialect } = s.services.storage;
    const keys = s.services.keys;
    fast = createUsageQueries(db, dialect, keys);
    raw = createUsageQueries(db, dialect, keys, { rollups: false });
    const r = prng(12);
    const rows: NewLog[] = [];
    for (let i = 0; i < 3000; i++) {
      // A third of the rows sit on or next to an hour boundary, where an off-by-one would show.
      const at =
        i % 3 === 0 ? T0 + r.int(SPAN / HOUR_MS) * HOUR_MS + r.pick([-1, 0, 0, 1]) : T0 + r.int(SPAN);
      const key = r.pick(KEYS);
      const status = r.pick([200, 200, 200, 429, 502]);
      rows.push(
        logRow({
          created_at: at,
          user_id: ownerOf(key),
          key_id: key,
          model: r.pick(MODELS),
          status,
          prompt_tokens: r.int(1000),
          cached_tokens: r.int(100),
          completion_tokens: r.int(500),
          cost_nano: status === 200 ? r.int(5_000_000) : 0,
        }),
      );
    }
    const writer = s.services.usageWriter;
    for (let i = 0; i < rows.length; i += 400) {
      // Concurrently: the journal syncs them in a few group commits.
      await Promise.all(rows.slice(i, i + 400).map((row) => writer.enqueue(row)));
      await writer.flush();
    }
    // Repeated request_ids (a replayed journal): neither the logs nor the rollups take them twice.
    await Promise.all(rows.slice(0, 300).map((row) => writer.enqueue({ ...row })));
    await writer.flush();
    const n = await db
      .selectFrom('logs')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(n.n)).toBe(3000);
  }, 120_000);
  afterAll(async () => {
    await s?.close();
  });

  it('totals and usage by day, key and model agree over random ranges and filters, pages too', async () => {
    const r = prng(7);
    const anyTime = () => T0 - DAY_MS + r.int(SPAN + 2 * DAY_MS);
    const bound = (): number | undefined => {
      const kind = r.next();
      if (kind < 0.1) return undefined;
      if (kind < 0.3) return Math.floor(anyTime() / DAY_MS) * DAY_MS;
      if (kind < 0.55) return Math.floor(anyTime() / HOUR_MS) * HOUR_MS;
      return anyTime();
    };
    const groups: UsageGroup[] = ['day', 'key', 'model'];
    const cases: LogFilter[] = [
      // Fixed cases: a day boundary ± 1 ms, inside one hour, across midnight, empty, and a
      // bound past year 9999.
      { from: T0 + DAY_MS - 1, to: T0 + 2 * DAY_MS + 1 },
      { from: T0 + 5 * HOUR_MS + 10, to: T0 + 5 * HOUR_MS + 20 },
      { from: T0 + DAY_MS - HOUR_MS / 2, to: T0 + DAY_MS + HOUR_MS / 2 },
      { from: T0 + 3 * HOUR_MS, to: T0 + 3 * HOUR_MS },
      { from: T0 + 7 * HOUR_MS + 1, to: Date.UTC(20000, 0, 1) },
      {},
    ];
    for (let i = 0; i < 60; i++) {
      let from = bound();
      let to = bound();
      if (from !== undefined && to !== undefined && from > to) [from, to] = [to, from];
      const f: LogFilter = {};
      if (from !== undefined) f.from = from;
      if (to !== undefined) f.to = to;
      const which = r.int(5);
      if (which === 1) f.keyId = r.pick(KEYS);
      if (which === 2) f.userId = ownerOf(r.pick(KEYS));
      if (which === 3) f.model = r.pick(['a', 'b']);
      if (which === 4) {
        f.keyId = r.pick(KEYS);
        f.userId = ownerOf(f.keyId);
        f.model = 'a';
      }
      cases.push(f);
    }
    let nonEmpty = 0;
    for (const f of cases) {
      const label = JSON.stringify(f);
      const want = await raw.totals(f);
      expect(await fast.totals(f), label).toEqual(want);
      if (want.requests > 0) nonEmpty++;
      for (const g of groups) {
        expect(await fast.usage(g, f), `${label} by ${g}`).toEqual(await raw.usage(g, f));
        const page = { limit: 2, offset: 1 };
        expect(await fast.usage(g, f, page), `${label} by ${g}, page`).toEqual(await raw.usage(g, f, page));
      }
    }
    // The ranges did cover data, not just empty windows.
    expect(nonEmpty).toBeGreaterThan(40);
  }, 120_000);

  it('GET /api/usage and totals=1 over a partial-day range answer what the logs hold', async () => {
    const from = new Date(T0 + 90 * 60_000).toISOString();
    const to = new Date(T0 + 2 * DAY_MS + 30 * 60_000 + 7).toISOString();
    const f = { from: Date.parse(from), to: Date.parse(to) };
    const byKey = await s.api('GET', `/api/usage?group_by=key&from=${from}&to=${to}`);
    expect(byKey.status).toBe(200);
    expect(byKey.body).toEqual(await raw.usage('key', f, { limit: 1000, offset: 0 }));
    const logs = await s.api('GET', `/api/logs?limit=1&totals=1&from=${from}&to=${to}`);
    expect(logs.status).toBe(200);
    expect(logs.body.totals).toEqual(await raw.totals(f));
  });

  it("the migration's backfill builds the same hourly rows as the writer", async () => {
    const { db, dialect } = s.services.storage;
    const snapshot = () =>
      db
        .selectFrom('usage_hourly')
        .selectAll()
        .orderBy('hour')
        .orderBy('key_id')
        .orderBy('model')
        .execute()
        .then((rows) =>
          rows.map((x) =>
            Object.fromEntries(Object.entries(x).map(([k, v]) => [k, k === 'model' ? v : Number(v)])),
          ),
        );
    const written = await snapshot();
    expect(written.length).toBeGreaterThan(100);
    // As an older version left it: logs and daily rollups, no hourly table, neither 0016 nor
    // any later migration applied (each later one undone here).
    await sql`DROP TABLE usage_hourly`.execute(db);
    await db.schema.alterTable('prices').dropColumn('cache_write_1h_nano_per_m').execute();
    await db.schema.alterTable('prices').dropColumn('web_search_nano_per_k').execute();
    await db.schema.alterTable('logs').dropColumn('web_searches').execute();
    await db.schema.alterTable('prices').dropColumn('priority_ppm').execute();
    await db.schema.alterTable('logs').dropColumn('service_tier').execute();
    await db.schema.alterTable('logs').dropColumn('cache_write_1h_tokens').execute();
    await db
      .deleteFrom('kysely_migration' as never)
      .where('name' as never, '>=', '0016_usage_hourly' as never)
      .execute();
    await migrateRetrying(db, dialect, s.pgSchema ?? undefined);
    expect(await snapshot()).toEqual(written);
  });

  it.runIf(backend === 'sqlite')(
    'SQLite reads the sub-hour edges through logs_time, whatever the filter',
    async () => {
      const counted = countQueries(s);
      try {
        const f = { from: T0 + 90 * 60_000, to: T0 + DAY_MS + 30 * 60_000 };
        await fast.usage('model', { ...f, userId: 1 });
        await fast.totals({ ...f, keyId: 2, model: 'a' });
      } finally {
        counted.restore();
      }
      expect(counted.queries).toHaveLength(2);
      for (const q of counted.queries) {
        const detail = await sqlitePlan(s, q);
        expect(detail).toMatch(/SEARCH logs USING INDEX logs_time \(created_at>\? AND created_at<\?\)/);
        expect(detail).not.toMatch(/logs_user|logs_key|logs_model|SCAN logs/);
      }
    },
  );
});
