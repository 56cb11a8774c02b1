// The call-log writer. Relay requests enqueue one row each: it joins the in-memory queue and
// the durable journal (usage/journal.ts), and enqueue resolves once the journal holds it, so
// the relay can release an answer knowing its row (and the spend it carries) survives a crash.
// A timer writes the queue in batches, together with the per-day and per-hour rollups and whatever the
// contributors derive (the spend of the rows, keys' last-use times), in one transaction; a
// committed batch's journal segments are deleted. At start, journal rows a crashed process
// left are replayed through the same path; rows are keyed by request_id (a unique index), so
// a row already in the database is skipped and its spend is never charged twice. The queue is
// bounded: when it is full, enqueue waits for the next flush instead of dropping rows.
import type { Logger } from 'pino';
import { CompiledQuery } from 'kysely';
import type { Db, Dialect } from '../db/index.js';
import type { NewLog } from '../db/schema.js';
import type { Journal } from './journal.js';
import { nowAndThen } from '../shared/now-and-then.js';

/**
 * Joins a batch's transaction. `rows` are the log rows the batch took from the queue;
 * `written` those of them the database did not hold yet (a replayed or repeated request_id
 * is skipped). Whatever a contributor derives from them (spend) commits with exactly those
 * rows, never ahead of them.
 */
export type Contributor = (
  trx: Db,
  rows: readonly NewLog[],
  written: readonly NewLog[],
) => Promise<{ committed(): void; aborted(): void } | void>;

const MAX_QUEUE = 50_000;
const ROWS_PER_INSERT = 500;

/** Text columns of a log row and the length each is cut to (whether it may be null aside). */
const TEXT_LIMITS = [
  ['request_id', 64],
  ['key_name', 256],
  ['model', 256],
  ['upstream_model', 256],
  ['endpoint', 256],
  ['error_code', 64],
  ['ip', 64],
  ['attempts', 64 * 1024],
  ['protocol', 32],
] as const satisfies ReadonlyArray<readonly [keyof NewLog, number]>;

/** Whether `row` is storable as it is: the relay's rows nearly always are. */
function alreadyStorable(row: NewLog): boolean {
  for (const [column, max] of TEXT_LIMITS) {
    const v = row[column];
    if (v === null && column !== 'protocol') continue;
    if (typeof v !== 'string' || v.length > max || v.includes('\u0000')) return false;
  }
  return row.cache_write_tokens != null && row.reasoning_tokens != null;
}

/**
 * A row every database accepts: text without NUL (PostgreSQL refuses it) and within sane
 * lengths. One unstorable row would otherwise fail its whole batch on every retry. A row that
 * is storable already is answered as it is, not copied: the writer owns a row once enqueued.
 */
function storable(row: NewLog): NewLog {
  if (alreadyStorable(row)) return row;
  // Rows journaled by an older version lack the newer columns: their defaults apply.
  const out: Record<string, unknown> = {
    ...row,
    protocol: row.protocol ?? 'openai',
    cache_write_tokens: row.cache_write_tokens ?? 0,
    reasoning_tokens: row.reasoning_tokens ?? 0,
  };
  for (const [column, max] of TEXT_LIMITS) {
    const v = out[column] as string | null | undefined;
    out[column] = v == null ? null : v.replace(/\u0000/g, '').slice(0, max);
  }
  return out as unknown as NewLog;
}

/** A journal record that can be written: anything else (a damaged line) is skipped. */
function isLogRecord(x: unknown): x is NewLog {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Record<string, unknown>;
  const int = (k: string) => Number.isSafeInteger(r[k]);
  const str = (k: string) => typeof r[k] === 'string';
  return (
    str('request_id') &&
    str('key_name') &&
    str('endpoint') &&
    ['created_at', 'user_id', 'key_id', 'stream', 'status', 'prompt_tokens', 'cached_tokens'].every(int) &&
    ['completion_tokens', 'cost_nano', 'latency_ms', 'estimated'].every(int)
  );
}

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
  'cost_nano',
  'latency_ms',
  'ttft_ms',
  'ip',
  'estimated',
  'attempts',
] as const satisfies ReadonlyArray<keyof NewLog>;

/**
 * Rows per log insert on SQLite: a few fixed sizes, largest first, so the same SQL texts come
 * back batch after batch and the statement cache (db/open.ts) keeps each one prepared
 * (preparing a statement of a few hundred rows cost more than running it). PostgreSQL parses
 * every statement anyway: there the batch goes in statements of ROWS_PER_INSERT rows.
 */
const SQLITE_INSERT_SIZES = [128, 64, 32, 16, 8, 4, 2, 1] as const;

/** How many rows each of the batch's inserts takes, in order. */
export function insertSizes(dialect: Dialect, rows: number): number[] {
  const out: number[] = [];
  if (dialect === 'postgres') {
    for (let i = 0; i < rows; i += ROWS_PER_INSERT) out.push(Math.min(ROWS_PER_INSERT, rows - i));
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
 * `head` values <rows tuples of `width` placeholders> `tail`: the texts of the fixed SQLite
 * sizes (and PostgreSQL's full statements) are built once.
 */
function valuesSql(dialect: Dialect, head: string, width: number, rows: number, tail: string): string {
  const id = `${head}|${dialect}|${rows}`;
  const known = statementText.get(id);
  if (known) return known;
  const tuples: string[] = [];
  for (let i = 0; i < rows; i++)
    tuples.push(
      dialect === 'postgres'
        ? `(${Array.from({ length: width }, (_, j) => `$${i * width + j + 1}`).join(', ')})`
        : `(${'?, '.repeat(width - 1)}?)`,
    );
  const text = `${head} values ${tuples.join(', ')} ${tail}`;
  if (dialect === 'sqlite' || rows === ROWS_PER_INSERT) statementText.set(id, text);
  return text;
}

const INSERT_LOGS_HEAD = `insert into "logs" (${LOG_COLUMNS.map((c) => `"${c}"`).join(', ')})`;

/**
 * The batch's multi-row insert of rows[from, from + count), written out directly: the query
 * builder would build and compile a node per value (several µs per row on the relay's busiest
 * path). A request_id already stored is skipped (replay), whatever its unique key spans on
 * the dialect.
 */
function insertLogs(dialect: Dialect, rows: readonly NewLog[], from: number, count: number): CompiledQuery {
  const params: unknown[] = new Array(count * LOG_COLUMNS.length);
  let k = 0;
  for (let i = from; i < from + count; i++) {
    const r = rows[i]!;
    for (const c of LOG_COLUMNS) params[k++] = r[c] ?? null;
  }
  return CompiledQuery.raw(
    valuesSql(
      dialect,
      INSERT_LOGS_HEAD,
      LOG_COLUMNS.length,
      count,
      'on conflict do nothing returning "request_id"',
    ),
    params,
  );
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
 * Adds each rollup row to the stored one (or stores it), written out directly like the log
 * insert and in the same sizes: a batch with many keys and models has as many rollup rows.
 */
async function upsertRollup(
  trx: Db,
  dialect: Dialect,
  table: 'usage_daily' | 'usage_hourly',
  aggs: RollupRow[],
): Promise<void> {
  const period = table === 'usage_daily' ? 'day' : 'hour';
  const keyColumns = [period, 'user_id', 'key_id', 'model'];
  const head = `insert into "${table}" (${[...keyColumns, ...SUM_COLUMNS].map((c) => `"${c}"`).join(', ')})`;
  const tail =
    `on conflict (${keyColumns.map((c) => `"${c}"`).join(', ')}) do update set ` +
    SUM_COLUMNS.map((c) => `"${c}" = "${table}"."${c}" + "excluded"."${c}"`).join(', ');
  const width = keyColumns.length + SUM_COLUMNS.length;
  let from = 0;
  for (const count of insertSizes(dialect, aggs.length)) {
    const params: unknown[] = [];
    for (let i = from; i < from + count; i++) {
      const a = aggs[i]!;
      params.push('day' in a ? a.day : a.hour, a.user_id, a.key_id, a.model);
      for (const c of SUM_COLUMNS) params.push(a[c]);
    }
    from += count;
    await trx.executeQuery(CompiledQuery.raw(valuesSql(dialect, head, width, count, tail), params));
  }
}

export function createUsageWriter(deps: {
  db: Db;
  dialect: Dialect;
  logger: Logger;
  intervalMs: number;
  contributors: Contributor[];
  /** Durable journal; null = memory only (a crash loses the rows not yet written). */
  journal?: Journal | null;
}) {
  const journal = deps.journal ?? null;
  const reportAppendFailure = nowAndThen(10_000, (err: unknown) =>
    deps.logger.error({ err: String(err) }, 'usage journal: append failed; rows are in memory only'),
  );
  let queue: NewLog[] = [];
  let flushing: Promise<void> | null = null;
  let again = false;
  let closed = false;
  let waiters: Array<() => void> = [];
  const stats = { rows: 0, batches: 0, failures: 0 };

  const timer = setInterval(() => void flush().catch(() => {}), deps.intervalMs);
  timer.unref();

  /** Writes `rows`; answers how many were new to the database. */
  async function writeBatch(rows: NewLog[]): Promise<number> {
    let hooks: Array<{ committed(): void; aborted(): void }> = [];
    let count = 0;
    await deps.db
      .transaction()
      .execute(async (trx) => {
        const seen = new Set<string>();
        const unique = rows.filter((r) => !seen.has(r.request_id) && !!seen.add(r.request_id));
        const returned: Array<{ request_id: string }[]> = [];
        let from = 0;
        let insertedCount = 0;
        for (const count of insertSizes(deps.dialect, unique.length)) {
          const got = await trx.executeQuery<{ request_id: string }>(
            insertLogs(deps.dialect, unique, from, count),
          );
          from += count;
          returned.push(got.rows);
          insertedCount += got.rows.length;
        }
        // Every row inserted (the usual case): no need to look up which.
        let written: readonly NewLog[] = unique;
        if (insertedCount < unique.length) {
          const inserted = new Set(returned.flat().map((g) => g.request_id));
          written = unique.filter((r) => inserted.has(r.request_id));
        }
        count = written.length;
        await upsertRollup(trx, deps.dialect, 'usage_daily', rollUp(written, 'day'));
        await upsertRollup(trx, deps.dialect, 'usage_hourly', rollUp(written, 'hour'));
        try {
          for (const c of deps.contributors) {
            const h = await c(trx, rows, written);
            if (h) hooks.push(h);
          }
        } catch (err) {
          for (const h of hooks) h.aborted();
          hooks = [];
          throw err;
        }
      })
      .then(
        // Kysely has committed (or rolled back) by the time the transaction promise settles.
        () => {
          for (const h of hooks) h.committed();
        },
        (err) => {
          for (const h of hooks) h.aborted();
          hooks = [];
          throw err;
        },
      );
    return count;
  }

  async function flushOnce(): Promise<void> {
    // Spend and last-use times only ever change together with a queued row.
    if (queue.length === 0) return;
    // The rows and the journal segments holding them are taken at the same instant.
    const rows = queue;
    queue = [];
    const segments = journal?.seal() ?? [];
    const release = waiters;
    waiters = [];
    try {
      await writeBatch(rows);
      stats.rows += rows.length;
      stats.batches++;
      if (journal)
        void journal
          .discard(segments)
          .catch((err) =>
            deps.logger.warn({ err: String(err) }, 'usage journal: could not delete a written segment'),
          );
    } catch (err) {
      stats.failures++;
      // Keep the rows (in order) for the next attempt; nothing is dropped.
      queue = rows.concat(queue);
      deps.logger.error(
        { err: err instanceof Error ? err.message : String(err), rows: rows.length },
        'usage writer: batch failed; will retry',
      );
      throw err;
    } finally {
      for (const w of release) w();
    }
  }

  /** Writes everything queued so far; concurrent callers share one flush. */
  function flush(): Promise<void> {
    if (flushing) {
      again = true;
      return flushing;
    }
    flushing = (async () => {
      try {
        do {
          again = false;
          await flushOnce();
        } while (again);
      } finally {
        flushing = null;
      }
    })();
    return flushing;
  }

  return {
    flush,
    /**
     * Queues one row; resolves once the journal holds it (group commit: one write, and in
     * `always` mode one fdatasync, for every row that arrived meanwhile), or later when the
     * queue is full.
     */
    async enqueue(row: NewLog): Promise<void> {
      const r = storable(row);
      queue.push(r);
      if (journal) {
        try {
          // Written already unless the journal syncs before answering (MOLE_JOURNAL_FSYNC=always).
          const synced = journal.append(r);
          if (synced) await synced;
        } catch (err) {
          // The row is still queued: it reaches the database unless the process dies first.
          reportAppendFailure(err);
        }
      }
      if (queue.length >= MAX_QUEUE && !closed) {
        await new Promise<void>((r) => waiters.push(r));
      }
    },
    /**
     * Replays what a crashed process left in the journal (call before serving). Rows already
     * in the database are skipped by request_id; the rest are written with their spend.
     */
    async recover(): Promise<{ rows: number; written: number }> {
      if (!journal) return { rows: 0, written: 0 };
      const left = await journal.orphans();
      let written = 0;
      const rows = left.records.filter(isLogRecord).map(storable);
      if (rows.length < left.records.length)
        deps.logger.error(
          { skipped: left.records.length - rows.length },
          'usage journal: skipped damaged records',
        );
      for (let i = 0; i < rows.length; i += 5_000) written += await writeBatch(rows.slice(i, i + 5_000));
      await left.remove();
      if (rows.length > 0)
        deps.logger.warn(
          { rows: rows.length, written, files: left.files },
          'usage journal: replayed rows a previous process left',
        );
      return { rows: rows.length, written };
    },
    pending: () => queue.length,
    stats: () => ({ ...stats, queued: queue.length, journal: journal?.stats() ?? null }),
    async close(): Promise<void> {
      closed = true;
      clearInterval(timer);
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          await flush();
          if (queue.length === 0) break;
        } catch {
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      await journal?.close(queue.length === 0);
    },
  };
}

export type UsageWriter = ReturnType<typeof createUsageWriter>;
