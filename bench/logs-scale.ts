/**
 * Call logs at scale on PostgreSQL (issue 12, item 3): the day-partitioned `logs` table
 * (migration 0015) against the old plain table, each in a fresh schema holding the same
 * `--rows` rows over `--days` days (bulk-loaded inside PostgreSQL with generate_series, with
 * their daily rollups). Against the real services and app, over HTTP, it measures:
 *   - the usage writer's batch insert (enqueue + flush; flush alone), rows/s
 *   - GET /api/logs first page, a deep cursor page, status=error
 *   - GET /api/usage by day and by key over whole days and over a partial-day range
 *   - retention: removing the oldest day (partition drop vs batched DELETE)
 *   - the upgrade: migration 0015 of the populated plain table
 * Bench-only (not in npm test). Needs a few GB of disk per variant; schemas are dropped at the end.
 *
 *   node --import tsx bench/logs-scale.ts [--rows 10000000] [--days 10] [--variants partitioned,plain]
 *     [--db postgres://postgres@127.0.0.1:5432/test] [--json out.json]
 *
 * Progress goes to stderr; the JSON result to --json (or stdout).
 */
import { writeFileSync } from 'node:fs';
import pg from 'pg';
import pino from 'pino';
import { sql } from 'kysely';
import { loadConfig } from '../src/config.js';
import { createServices } from '../src/services.js';
import { buildApp } from '../src/app.js';
import { openStorage } from '../src/db/open.js';
import { DAY_MS, dayStart, ensureDayPartitions } from '../src/db/partitions.js';
import { migrateToLatest, migrations } from '../src/db/migrations.js';
import { createLogUpkeep } from '../src/usage/retention.js';
import type { NewLog } from '../src/db/schema.js';
import type { Db } from '../src/db/index.js';
import { tmpDir, MASTER_KEY } from './lib/targets.js';
import { percentile } from './lib/stats.js';
import { argOf, flag, numArg } from './lib/args.js';
import { LATER_LOG_COLUMNS } from '../src/usage/writer.js';

const ROWS = numArg('--rows', 10_000_000);
const DAYS = numArg('--days', 10);
const VARIANTS = (argOf('--variants') ?? 'partitioned,plain').split(',') as Array<'partitioned' | 'plain'>;
const DB = argOf('--db') ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const jsonOut = argOf('--json');
const KEYS = 10_000;
const WRITER_ROWS = 50_000;

const say = (s: string) =>
  process.stderr.write(`[logs-scale] ${new Date().toISOString().slice(11, 19)} ${s}\n`);
const ms = (t0: number) => Math.round(performance.now() - t0);

const now = Date.now();
const today = dayStart(now);
/** The rows span DAYS whole days ending at today's start: created_at grows with id. */
const first = today - DAYS * DAY_MS;
const PLAIN_UPTO = '0014_management_tokens';

async function dropSchema(schema: string) {
  const c = new pg.Client({ connectionString: DB });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await c.end();
}

async function load(db: Db, partitioned: boolean) {
  if (partitioned) await ensureDayPartitions(db, 'logs', 'created_at', first, DAYS + 3);
  const chunk = 1_000_000;
  const step = (DAYS * DAY_MS) / ROWS;
  const t0 = performance.now();
  for (let from = 1; from <= ROWS; from += chunk) {
    const to = Math.min(ROWS, from + chunk - 1);
    // 2% errors, 10k keys over 1k users, 8 models; sizes like a chat completion's.
    await sql`INSERT INTO logs (request_id, created_at, user_id, key_id, key_name, model, upstream_model,
        channel_id, endpoint, stream, status, error_code, prompt_tokens, cached_tokens, completion_tokens,
        cost_nano, latency_ms, ttft_ms, ip, estimated, protocol, cache_write_tokens, reasoning_tokens)
      SELECT 'req_' || md5(g::text), ${first}::bigint + floor(g * ${step}::float8)::bigint,
        1 + (g % ${KEYS}) % 1000, 1 + g % ${KEYS}, 'key-' || (1 + g % ${KEYS}),
        'model-' || (g % 8), 'model-' || (g % 8), 1 + g % 4, '/v1/chat/completions', g % 2,
        CASE WHEN g % 50 = 0 THEN 502 ELSE 200 END, CASE WHEN g % 50 = 0 THEN 'upstream_error' END,
        100 + g % 900, 0, 10 + g % 300, 1000 + g % 50000, 200 + g % 2000, 50 + g % 300, '10.0.0.1', 0,
        'openai', 0, 0
      FROM generate_series(${from}::bigint, ${to}::bigint) g`.execute(db);
    say(
      `  loaded ${to.toLocaleString()} rows (${Math.round(to / ((performance.now() - t0) / 1000)).toLocaleString()} rows/s)`,
    );
  }
  const loadMs = ms(t0);
  const t1 = performance.now();
  await sql`INSERT INTO usage_daily (day, user_id, key_id, model, requests, prompt_tokens, cached_tokens,
      completion_tokens, cost_nano)
    SELECT to_char(to_timestamp(created_at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), user_id, key_id,
      coalesce(model, ''), count(*), sum(prompt_tokens), sum(cached_tokens), sum(completion_tokens), sum(cost_nano)
    FROM logs GROUP BY 1, 2, 3, 4`.execute(db);
  const rollupMs = ms(t1);
  await sql`ANALYZE`.execute(db);
  const size = await sql<{ bytes: string }>`SELECT sum(pg_total_relation_size(c.oid))::bigint AS bytes
    FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
      AND c.relname LIKE 'logs%'`.execute(db);
  return {
    loadMs,
    loadRowsPerSec: Math.round(ROWS / (loadMs / 1000)),
    rollupMs,
    logsBytes: Number(size.rows[0]!.bytes),
  };
}

/** Times `n` runs of an API call (after one warm-up): p50 and max, ms. */
async function timeApi(base: string, path: string, n: number) {
  const call = async () => {
    const res = await fetch(base + path, { headers: { authorization: `Bearer ${MASTER_KEY}` } });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${text.slice(0, 200)}`);
    return text;
  };
  await call();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { p50: +percentile(times, 50).toFixed(1), max: +times[times.length - 1]!.toFixed(1), n };
}

async function variant(kind: 'partitioned' | 'plain') {
  const schema = `bench_logs_${kind}`;
  const dataDir = tmpDir(`logs-${kind}`);
  const out: Record<string, unknown> = { variant: kind };
  say(`${kind}: fresh schema ${schema}, ${ROWS.toLocaleString()} rows over ${DAYS} days`);
  await dropSchema(schema);
  const storage = await openStorage({
    databaseUrl: DB,
    dataDir,
    pgSchema: schema,
    ...(kind === 'plain' ? { migrateUpTo: PLAIN_UPTO } : {}),
  });
  // Today's code writes the hourly rollup (0016) with every batch: the plain table gets it too,
  // so the two variants differ only in partitioning (0015).
  if (kind === 'plain') await migrations('postgres')['0016_usage_hourly']!.up(storage.db);
  out.load = await load(storage.db, kind === 'partitioned');
  say(`${kind}: loaded ${JSON.stringify(out.load)}`);
  await storage.close();

  // The real services and app on that schema; the plain variant's migrations stay at 0014 (+ 0016).
  const config = loadConfig({
    MOLE_DATA_DIR: dataDir,
    MOLE_MASTER_KEY: MASTER_KEY,
    MOLE_SECRET: 'bench-secret-0123456789abcdef',
    MOLE_LOG_LEVEL: 'warn',
    MOLE_JOURNAL_FSYNC: '0',
    MOLE_FLUSH_INTERVAL_MS: '60000',
    DATABASE_URL: DB,
    HOST: '127.0.0.1',
    PORT: '0',
  });
  const logger = pino({ level: 'warn' });
  const services = await createServices(config, logger, {
    announceMasterKey: () => {},
    pgSchema: schema,
    ...(kind === 'plain' ? { migrateUpTo: PLAIN_UPTO } : {}),
  });
  const app = await buildApp(services, logger);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address();
  const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  try {
    // ── the usage writer's batch insert ───────────────────────────────────────────────
    let flushMs = 0;
    const t0 = performance.now();
    for (let i = 0; i < WRITER_ROWS; i += 5_000) {
      const batch: Promise<void>[] = [];
      for (let j = 0; j < 5_000; j++) {
        const n = i + j;
        const row: NewLog = {
          request_id: `w_${kind}_${now}_${n}`,
          created_at: Date.now(),
          user_id: 1 + (n % 1000),
          key_id: 1 + (n % KEYS),
          key_name: 'k',
          model: 'model-1',
          upstream_model: 'model-1',
          channel_id: 1,
          endpoint: '/v1/chat/completions',
          stream: 0,
          status: 200,
          error_code: null,
          prompt_tokens: 100,
          cached_tokens: 0,
          completion_tokens: 10,
          cost_nano: 0,
          latency_ms: 200,
          ttft_ms: null,
          ip: '10.0.0.1',
          estimated: 0,
          ...LATER_LOG_COLUMNS,
        };
        batch.push(services.usageWriter.enqueue(row));
      }
      await Promise.all(batch);
      const f0 = performance.now();
      await services.usageWriter.flush();
      flushMs += performance.now() - f0;
    }
    const totalMs = performance.now() - t0;
    out.writer = {
      rows: WRITER_ROWS,
      rowsPerSec: Math.round(WRITER_ROWS / (totalMs / 1000)),
      flushOnlyRowsPerSec: Math.round(WRITER_ROWS / (flushMs / 1000)),
    };
    say(`${kind}: writer ${JSON.stringify(out.writer)}`);

    // ── reads ─────────────────────────────────────────────────────────────────────────
    const iso = (t: number) => new Date(t).toISOString();
    const deepCursor = Math.round(ROWS * 0.1);
    const wholeFrom = iso(first + 2 * DAY_MS);
    const wholeTo = iso(first + 5 * DAY_MS);
    const partFrom = iso(first + 2 * DAY_MS + 6 * 3600_000);
    const partTo = iso(first + 5 * DAY_MS - 3 * 3600_000);
    const reads: Record<string, unknown> = {};
    const plan: Array<[string, string, number]> = [
      ['logs first page', '/api/logs?limit=50', 50],
      ['logs deep cursor page', `/api/logs?limit=50&cursor=${deepCursor}`, 50],
      ['logs status=error', '/api/logs?limit=50&status=error', 50],
      ['logs one key', '/api/logs?limit=50&key_id=4242', 50],
      ['usage by day, whole days (3)', `/api/usage?group_by=day&from=${wholeFrom}&to=${wholeTo}`, 20],
      [
        'usage by key, whole days (3)',
        `/api/usage?group_by=key&from=${wholeFrom}&to=${wholeTo}&limit=100`,
        10,
      ],
      ['usage by day, partial days (~2.6)', `/api/usage?group_by=day&from=${partFrom}&to=${partTo}`, 3],
      [
        'usage by key, partial days (~2.6)',
        `/api/usage?group_by=key&from=${partFrom}&to=${partTo}&limit=100`,
        5,
      ],
    ];
    for (const [name, path, n] of plan) {
      reads[name] = await timeApi(base, path, n);
      say(`${kind}: ${name}: ${JSON.stringify(reads[name])}`);
    }
    out.reads = reads;

    // ── retention: the oldest day goes ───────────────────────────────────────────────
    const upkeep = createLogUpkeep({
      db: services.storage.db,
      dialect: 'postgres',
      retentionDays: DAYS - 1,
      now: () => now,
      logger,
    });
    const r0 = performance.now();
    const r = await upkeep.run();
    out.dropOldestDay = {
      ms: ms(r0),
      partitionsDropped: r.partitionsDropped.length,
      rowsDeleted: r.rowsDeleted,
    };
    say(`${kind}: drop oldest day ${JSON.stringify(out.dropOldestDay)}`);
  } finally {
    await app.close();
    await services.close();
  }

  if (kind === 'plain') {
    // ── the upgrade of the populated plain table (migration 0015) ─────────────────────
    const s = await openStorage({ databaseUrl: DB, dataDir, pgSchema: schema, migrateUpTo: PLAIN_UPTO });
    const rows = await sql<{ n: string }>`SELECT count(*) AS n FROM logs`.execute(s.db);
    const m0 = performance.now();
    await migrateToLatest(s.db, 'postgres', schema, '0015_logs_partitions');
    out.migration0015 = { ms: ms(m0), rows: Number(rows.rows[0]!.n) };
    say(`${kind}: migration 0015 ${JSON.stringify(out.migration0015)}`);
    await s.close();
  }
  if (!flag('--keep')) await dropSchema(schema);
  return out;
}

const result: Record<string, unknown> = { rows: ROWS, days: DAYS, at: new Date(now).toISOString() };
for (const v of VARIANTS) result[v] = await variant(v);
const text = JSON.stringify(result, null, 2);
if (jsonOut) writeFileSync(jsonOut, text + '\n');
else process.stdout.write(text + '\n');
