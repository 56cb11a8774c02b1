// The SQL of one usage batch: the call-log rows' multi-row inserts and the per-day and per-hour
// rollup upserts, written out directly (no query builder). The writer runs them in its
// transaction on PostgreSQL; on SQLite the writer's worker thread builds and runs them itself
// (writeBatchOn), so the main thread ships rows, not SQL. Nothing here imports a driver.
import type { Statement as SqliteStatement } from 'better-sqlite3';
import type { Dialect } from '../db/index.js';
import type { NewLog } from '../db/schema.js';

/** One statement, compiled: its text and positional parameters. */
export interface Statement {
  sql: string;
  parameters: readonly unknown[];
}

/**
 * Rows per log insert on PostgreSQL: one statement takes the whole batch (its rows travel as
 * one array a column), bounded so an insert after a long outage stays a few MiB.
 */
const PG_ROWS_PER_INSERT = 5_000;

/** Every column a log row sets, in the order the batch insert lists them. */
const LOG_COLUMNS = [
  'request_id',
  'created_at',
  'user_id',
  'key_id',
  'key_name',
  'ephemeral_id',
  'model',
  'upstream_model',
  'channel_id',
  'endpoint',
  'protocol',
  'stream',
  'status',
  'error_code',
  'prompt_tokens',
  'cached_tokens',
  'cache_write_tokens',
  'completion_tokens',
  'reasoning_tokens',
  'cache_write_1h_tokens',
  'web_searches',
  'service_tier',
  'cost_nano',
  'latency_ms',
  'ttft_ms',
  'ip',
  'estimated',
  'attempts',
] as const satisfies ReadonlyArray<keyof NewLog>;

/**
 * Rows per log insert on SQLite: a few fixed sizes, largest first, so the same SQL texts come
 * back batch after batch and the statement cache (db/sqlite.ts) keeps each one prepared
 * (preparing a statement of a few hundred rows cost more than running it). PostgreSQL takes
 * the batch in one statement of PG_ROWS_PER_INSERT rows at most.
 */
const SQLITE_INSERT_SIZES = [128, 64, 32, 16, 8, 4, 2, 1] as const;

/** How many rows each of the batch's inserts takes, in order. */
export function insertSizes(dialect: Dialect, rows: number): number[] {
  const out: number[] = [];
  if (dialect === 'postgres') {
    for (let i = 0; i < rows; i += PG_ROWS_PER_INSERT) out.push(Math.min(PG_ROWS_PER_INSERT, rows - i));
    return out;
  }
  let left = rows;
  for (const size of SQLITE_INSERT_SIZES) {
    for (; left >= size; left -= size) out.push(size);
  }
  return out;
}

const statementText = new Map<string, string>();

/**
 * `head` values <rows tuples of `width` placeholders> `tail`: SQLite's multi-row statements
 * (PostgreSQL's go by unnest), each text built once for its few fixed sizes.
 */
function valuesSql(head: string, width: number, rows: number, tail: string): string {
  const id = `${head}|${rows}`;
  const known = statementText.get(id);
  if (known) return known;
  const tuple = `(${'?, '.repeat(width - 1)}?)`;
  const text = `${head} values ${Array.from({ length: rows }, () => tuple).join(', ')} ${tail}`;
  statementText.set(id, text);
  return text;
}

/** The rows with each request_id once (the first); `rows` itself when none repeats. */
export function uniqueRows(rows: readonly NewLog[]): readonly NewLog[] {
  const seen = new Set<string>();
  for (const r of rows) seen.add(r.request_id);
  if (seen.size === rows.length) return rows;
  seen.clear();
  return rows.filter((r) => !seen.has(r.request_id) && !!seen.add(r.request_id));
}

/** `unnest($1::<type>[], …)`: PostgreSQL's rows as one array a column, of these types. */
const unnestOf = (types: readonly string[]) =>
  `unnest(${types.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})`;

const INSERT_LOGS_HEAD = `insert into "logs" (${LOG_COLUMNS.map((c) => `"${c}"`).join(', ')})`;
const SKIP_STORED = 'on conflict do nothing returning "request_id"';

/**
 * PostgreSQL's log insert: the rows as one JSON array, read into the table's own row type. One
 * short statement whatever the batch's size, where a multi-row VALUES list of 25 parameters a
 * row made the server parse and plan thousands of parameters per batch (measured: 25 → 16 µs
 * of server CPU per row). Before, the rows went as one array a column (unnest), which the
 * driver wrote element by element in JavaScript: the JSON text costs the event loop ~2 µs a
 * row less and PostgreSQL about as much more (bench/README.md, "A usage batch on PostgreSQL"),
 * work moved off the gateway onto the database's host.
 */
const PG_INSERT_LOGS = `${INSERT_LOGS_HEAD} select ${LOG_COLUMNS.map((c) => `"${c}"`).join(', ')} from json_populate_recordset(null::"logs", $1::json) ${SKIP_STORED}`;

/**
 * The batch's multi-row log inserts, each answering the request_ids it stored. A request_id
 * already stored is skipped (replay), whatever its unique key spans on the dialect. Written
 * out directly: the query builder would build and compile a node per value (several µs per
 * row on the relay's busiest path).
 */
export function logInserts(dialect: Dialect, rows: readonly NewLog[]): Statement[] {
  const out: Statement[] = [];
  let from = 0;
  for (const count of insertSizes(dialect, rows.length)) {
    if (dialect === 'postgres') {
      const part = rows.slice(from, from + count);
      from += count;
      out.push({ sql: PG_INSERT_LOGS, parameters: [JSON.stringify(part)] });
      continue;
    }
    const parameters: unknown[] = new Array(count * LOG_COLUMNS.length);
    let k = 0;
    for (let i = from; i < from + count; i++) {
      const r = rows[i]!;
      for (const c of LOG_COLUMNS) parameters[k++] = r[c] ?? null;
    }
    from += count;
    const sql = valuesSql(INSERT_LOGS_HEAD, LOG_COLUMNS.length, count, SKIP_STORED);
    out.push({ sql, parameters });
  }
  return out;
}

const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

interface Sums {
  requests: number;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  cost_nano: number;
}
type RollupRow = ({ day: string } | { hour: number }) & {
  user_id: number;
  key_id: number;
  model: string;
} & Sums;

/**
 * The rows summed per period (UTC day or hour of created_at), key and model: the rollup rows
 * one batch adds. Only rows new to the database are passed in, so a replayed or repeated
 * request_id never counts twice.
 */
function rollUp(rows: readonly NewLog[], period: 'day' | 'hour'): RollupRow[] {
  const out = new Map<string, RollupRow>();
  // A batch's rows nearly all share one day: its text is made once, not per row.
  let dayStart = Number.NaN;
  let day = '';
  for (const r of rows) {
    const ms = r.created_at;
    let p: string | number;
    if (period === 'hour') p = ms - (ms % HOUR_MS);
    else {
      if (ms - (ms % DAY_MS) !== dayStart) {
        dayStart = ms - (ms % DAY_MS);
        day = dayOf(ms);
      }
      p = day;
    }
    const model = r.model ?? '';
    const id = `${p}|${r.key_id}|${model}`;
    let agg = out.get(id);
    if (!agg) {
      agg = {
        ...(period === 'hour' ? { hour: p as number } : { day: p as string }),
        user_id: r.user_id,
        key_id: r.key_id,
        model,
        requests: 0,
        prompt_tokens: 0,
        cached_tokens: 0,
        completion_tokens: 0,
        cost_nano: 0,
      };
      out.set(id, agg);
    }
    agg.requests++;
    agg.prompt_tokens += r.prompt_tokens;
    agg.cached_tokens += r.cached_tokens;
    agg.completion_tokens += r.completion_tokens;
    agg.cost_nano += r.cost_nano;
  }
  return [...out.values()];
}

const SUM_COLUMNS = ['requests', 'prompt_tokens', 'cached_tokens', 'completion_tokens', 'cost_nano'] as const;

/**
 * The upserts adding `written` (the rows new to the database) to usage_daily and then
 * usage_hourly: each rollup row is added to the stored one (or stored), in the log insert's
 * sizes, since a batch with many keys and models has as many rollup rows.
 */
export function rollupUpserts(dialect: Dialect, written: readonly NewLog[]): Statement[] {
  const out: Statement[] = [];
  for (const table of ['usage_daily', 'usage_hourly'] as const) {
    const period = table === 'usage_daily' ? 'day' : 'hour';
    const aggs = rollUp(written, period);
    const keyColumns = [period, 'user_id', 'key_id', 'model'];
    const head = `insert into "${table}" (${[...keyColumns, ...SUM_COLUMNS].map((c) => `"${c}"`).join(', ')})`;
    const tail =
      `on conflict (${keyColumns.map((c) => `"${c}"`).join(', ')}) do update set ` +
      SUM_COLUMNS.map((c) => `"${c}" = "${table}"."${c}" + "excluded"."${c}"`).join(', ');
    // A rollup row's values, in the order of keyColumns then SUM_COLUMNS, and their types.
    const valuesOf = (a: (typeof aggs)[number]) => [
      'day' in a ? a.day : a.hour,
      a.user_id,
      a.key_id,
      a.model,
      ...SUM_COLUMNS.map((c) => a[c]),
    ];
    const types = [
      period === 'day' ? 'text' : 'int8',
      'int8',
      'int8',
      'text',
      ...SUM_COLUMNS.map(() => 'int8'),
    ];
    let from = 0;
    for (const count of insertSizes(dialect, aggs.length)) {
      const rows = aggs.slice(from, from + count).map(valuesOf);
      from += count;
      // PostgreSQL: one array a column, unnested, as the log insert (VALUES would be parsed
      // parameter by parameter, and a batch over many keys and models has as many rollup rows).
      if (dialect === 'postgres')
        out.push({
          sql: `${head} select * from ${unnestOf(types)} ${tail}`,
          parameters: types.map((_, j) => rows.map((v) => v[j])),
        });
      else out.push({ sql: valuesSql(head, types.length, count, tail), parameters: rows.flat() });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// A whole batch on one SQLite connection (the writer's worker thread)

/** A batch as the main thread sends it to the worker. */
export interface BatchRequest {
  /** The batch's rows in queue order, each as its JSON text (a repeated request_id: the first counts). */
  rows: readonly string[];
  /** request_ids the contributors took to be new to the database; null = every (unique) row. */
  written: readonly string[] | null;
  /** The contributors' statements (recorded on the main thread), run after the rollups. */
  statements: readonly Statement[];
}

/**
 * committed: the batch is in the database, `written` rows of it new. Not committed (rolled
 * back): the database held other rows than the request expected (a replay after a crash):
 * `inserted` are the request_ids that are new, to compute the contributors' part again.
 */
export type BatchAnswer = { committed: true; written: number } | { committed: false; inserted: string[] };

/** What the worker needs of its connection: prepared statements (db/sqlite.ts cachingStatements). */
export interface StatementSource {
  prepare(sql: string): SqliteStatement;
  exec(sql: string): unknown;
  readonly inTransaction: boolean;
}

/**
 * Runs a batch in ONE transaction: the log inserts, the rollups of the rows they stored, the
 * contributors' statements, COMMIT. BEGIN IMMEDIATE takes the write lock first, so no other
 * connection's commit can slip in between. Throws (rolled back) on any failure.
 */
export function writeBatchOn(db: StatementSource, request: BatchRequest): BatchAnswer {
  const rows = uniqueRows(request.rows.map((json) => JSON.parse(json) as NewLog));
  db.exec('begin immediate');
  try {
    const inserted: string[] = [];
    for (const s of logInserts('sqlite', rows)) {
      for (const id of db.prepare(s.sql).pluck().all(s.parameters) as string[]) inserted.push(id);
    }
    const expected = request.written;
    if (expected === null ? inserted.length !== rows.length : !sameIds(inserted, expected)) {
      db.exec('rollback');
      return { committed: false, inserted };
    }
    let written = rows;
    if (inserted.length !== rows.length) {
      const stored = new Set(inserted);
      written = rows.filter((r) => stored.has(r.request_id));
    }
    for (const s of rollupUpserts('sqlite', written)) db.prepare(s.sql).run(s.parameters);
    for (const s of request.statements) db.prepare(s.sql).run(s.parameters);
    db.exec('commit');
    return { committed: true, written: written.length };
  } catch (err) {
    if (db.inTransaction) db.exec('rollback');
    throw err;
  }
}

/** Whether `got` (distinct ids) holds exactly the ids of `expected` (distinct too). */
function sameIds(got: readonly string[], expected: readonly string[]): boolean {
  if (got.length !== expected.length) return false;
  const want = new Set(expected);
  return got.every((id) => want.has(id));
}
