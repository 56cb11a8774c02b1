/**
 * Usage sums over ranges off hour boundaries: the rollups (usage_daily + usage_hourly + the
 * logs at the sub-hour ends) against a plain scan of the logs (`createUsageQueries(…,
 * { rollups: false })`, what every such range did before migration 0016), in one process
 * on the same data: N log rows generated inside the database (30 days, 100 keys, 10 users,
 * 3 models), their daily rollup, and the migration's hourly backfill (timed). Each answer is
 * checked equal on both paths. SQLite in a temp dir, or PostgreSQL in a throwaway schema:
 *
 *   npx tsx bench/usage-range.ts                                   # SQLite, N=2000000
 *   PG=postgres://postgres@127.0.0.1:5432/test N=2000000 npx tsx bench/usage-range.ts
 *
 * Progress goes to stderr, the JSON result to stdout.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { openStorage } from '../src/db/open.js';
import { createUsageQueries } from '../src/usage/queries.js';
const N = Number(process.env.N ?? 2_000_000);
const PG = process.env.PG;
const DAY = 86_400_000,
  H = 3_600_000;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hbr-'));
const schema = 'hbr_' + process.pid;
const st = await openStorage({ dataDir: dir, ...(PG ? { databaseUrl: PG, pgSchema: schema } : {}) });
const db = st.db;
const start = Math.floor(Date.now() / DAY) * DAY - 29 * DAY;
const say = (s: string) => console.error(s);
let t = performance.now();
// 30 days, 100 keys (10 users), 3 models, 2 % errors.
const gen = PG
  ? sql`INSERT INTO logs (request_id, created_at, user_id, key_id, key_name, model, upstream_model, channel_id, endpoint, stream, status, error_code, prompt_tokens, cached_tokens, completion_tokens, cost_nano, latency_ms, ttft_ms, ip, estimated)
      SELECT 'g' || i, ${start}::bigint + (i::bigint * ${30 * DAY}) / ${N}, (i % 100) % 10 + 1, i % 100 + 2, 'k', (ARRAY['a','b','c'])[i % 3 + 1], 'a', 1, '/v1/chat/completions', 0, CASE WHEN i % 50 = 0 THEN 429 ELSE 200 END, NULL, 10 + i % 40, 0, 16 + i % 200, 150 * (10 + i % 40), 3, NULL, NULL, 0
      FROM generate_series(0, ${N - 1}) AS i`
  : sql`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ${N - 1})
      INSERT INTO logs (request_id, created_at, user_id, key_id, key_name, model, upstream_model, channel_id, endpoint, stream, status, error_code, prompt_tokens, cached_tokens, completion_tokens, cost_nano, latency_ms, ttft_ms, ip, estimated)
      SELECT 'g' || i, ${start} + (i * ${30 * DAY}) / ${N}, (i % 100) % 10 + 1, i % 100 + 2, 'k', CASE i % 3 WHEN 0 THEN 'a' WHEN 1 THEN 'b' ELSE 'c' END, 'a', 1, '/v1/chat/completions', 0, CASE WHEN i % 50 = 0 THEN 429 ELSE 200 END, NULL, 10 + i % 40, 0, 16 + i % 200, 150 * (10 + i % 40), 3, NULL, NULL, 0
      FROM s`;
await gen.execute(db);
say(`inserted ${N} logs in ${((performance.now() - t) / 1000).toFixed(1)} s`);
const dayExpr = PG
  ? sql`to_char(to_timestamp(created_at / 1000.0) at time zone 'UTC', 'YYYY-MM-DD')`
  : sql`strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')`;
await sql`INSERT INTO usage_daily (day, user_id, key_id, model, requests, prompt_tokens, cached_tokens, completion_tokens, cost_nano)
  SELECT ${dayExpr}, user_id, key_id, coalesce(model, ''), count(*), sum(prompt_tokens), sum(cached_tokens), sum(completion_tokens), sum(cost_nano) FROM logs GROUP BY 1, 2, 3, 4`.execute(
  db,
);
// The migration's backfill statement, timed.
t = performance.now();
await sql`DELETE FROM usage_hourly`.execute(db);
await sql`INSERT INTO usage_hourly (hour, user_id, key_id, model, requests, prompt_tokens, cached_tokens, completion_tokens, cost_nano)
  SELECT created_at - created_at % 3600000, user_id, key_id, coalesce(model, ''), count(*), sum(prompt_tokens), sum(cached_tokens), sum(completion_tokens), sum(cost_nano)
  FROM logs GROUP BY created_at - created_at % 3600000, user_id, key_id, coalesce(model, '')`.execute(db);
const backfillMs = performance.now() - t;
say(`backfill ${backfillMs.toFixed(0)} ms`);
if (PG) await sql`ANALYZE`.execute(db);
const keys = { namesOf: async () => new Map<number, { name: string; display: string }>() };
const fast = createUsageQueries(db, st.dialect, keys);
const scan = createUsageQueries(db, st.dialect, keys, { rollups: false });
// Six hours off the hour boundaries, on the 29th day; one page of answers.
const sixHours = { from: start + 28 * DAY + 7 * H + 123_456, to: start + 28 * DAY + 13 * H + 123_456 };
const page = { limit: 1000, offset: 0 };
const cases: Array<[string, (q: typeof fast) => Promise<unknown>]> = [
  ['totals, 6 h', (q) => q.totals(sixHours)],
  ['by key, 6 h', (q) => q.usage('key', sixHours, page)],
  ['by model, 6 h, one user', (q) => q.usage('model', { userId: 3, ...sixHours }, page)],
  [
    'by day, 3.5 days',
    (q) =>
      q.usage('day', { from: start + 20 * DAY + 5 * H + 777, to: start + 23 * DAY + 17 * H + 4_321 }, page),
  ],
  ['by key, 30 days', (q) => q.usage('key', { from: start + 1_234, to: start + 30 * DAY - 4_321 }, page)],
];
const out: Record<string, unknown> = { backend: st.dialect, rows: N, backfillMs: Math.round(backfillMs) };
for (const [name, run] of cases) {
  const r: Record<string, string> = {};
  const answers: string[] = [];
  for (const [label, q, reps] of [
    ['scan', scan, 5],
    ['rollups', fast, 15],
  ] as const) {
    const times: number[] = [];
    const a = JSON.stringify(await run(q));
    for (let i = 0; i < reps; i++) {
      const t1 = performance.now();
      await run(q);
      times.push(performance.now() - t1);
    }
    times.sort((x, y) => x - y);
    r[label] = `p50 ${times[Math.floor(times.length / 2)]!.toFixed(1)} / max ${times.at(-1)!.toFixed(1)} ms`;
    answers.push(a);
  }
  if (answers[0] !== answers[1]) throw new Error(`${name}: the rollups' answer differs from the scan's`);
  out[name] = r;
  say(`${name}: ${JSON.stringify(r)}`);
}
console.log(JSON.stringify(out));
if (PG) await sql`DROP SCHEMA ${sql.id(schema)} CASCADE`.execute(db);
await st.close();
fs.rmSync(dir, { recursive: true, force: true });
