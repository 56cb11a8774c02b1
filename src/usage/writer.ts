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
import { recordingDb } from '../db/recording.js';
import type { NewLog } from '../db/schema.js';
import { type BatchAnswer, logInserts, rollupUpserts, type Statement, uniqueRows } from './batch.js';
import type { Journal } from './journal.js';
import { nowAndThen } from '../shared/now-and-then.js';
import { createWorkerClient, type WorkerClient, WorkerLostError } from './worker-client.js';

export { insertSizes } from './batch.js';

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
) => Promise<Hooks> | Promise<void>;

/** A contributor's hooks: after the batch commits, or when it does not. */
interface Hooks {
  committed(): void;
  aborted(): void;
}

const raw = (s: Statement) => CompiledQuery.raw(s.sql, s.parameters as unknown[]);

const MAX_QUEUE = 50_000;
/** Tries of one batch on SQLite when the rows new to the database are not those expected. */
const WORKER_TRIES = 3;

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
  ['service_tier', 32],
] as const satisfies ReadonlyArray<readonly [keyof NewLog, number]>;

/**
 * The log columns later releases added, at the values a row without them stands for (one an
 * older release journaled; the database's defaults).
 */
export const LATER_LOG_COLUMNS = {
  protocol: 'openai',
  attempts: null,
  cache_write_tokens: 0,
  reasoning_tokens: 0,
  cache_write_1h_tokens: 0,
  web_searches: 0,
  service_tier: null,
} as const satisfies Partial<NewLog>;

/** Whether `row` is storable as it is: the relay's rows nearly always are. */
function alreadyStorable(row: NewLog): boolean {
  for (const [column, max] of TEXT_LIMITS) {
    const v = row[column];
    if (v === null && column !== 'protocol') continue;
    if (typeof v !== 'string' || v.length > max || v.includes('\u0000') || !v.isWellFormed()) return false;
  }
  return (
    row.cache_write_tokens != null &&
    row.reasoning_tokens != null &&
    row.cache_write_1h_tokens != null &&
    row.web_searches != null
  );
}

/** `row` with the later columns it lacks at their defaults. */
function withLaterColumns(row: NewLog): Record<string, unknown> {
  const out: Record<string, unknown> = { ...row };
  for (const [column, value] of Object.entries(LATER_LOG_COLUMNS)) out[column] ??= value;
  return out;
}

/**
 * A row every database accepts: text without NUL (PostgreSQL refuses it), well-formed (a lone
 * UTF-16 surrogate, from a client's `\ud800` or a cut between a pair's halves, is replaced by
 * U+FFFD: PostgreSQL reads the batch as JSON, which refuses it) and within sane lengths. One
 * unstorable row would otherwise fail its whole batch on every retry. A row that
 * is storable already is answered as it is, not copied: the writer owns a row once enqueued.
 */
function storable(row: NewLog): NewLog {
  if (alreadyStorable(row)) return row;
  // Rows journaled by an older version lack the newer columns: their defaults apply.
  const out = withLaterColumns(row);
  for (const [column, max] of TEXT_LIMITS) {
    const v = out[column] as string | null | undefined;
    out[column] =
      v == null
        ? null
        : v
            .replace(/\u0000/g, '')
            .slice(0, max)
            .toWellFormed();
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

export function createUsageWriter(deps: {
  db: Db;
  dialect: Dialect;
  /**
   * SQLite: the database file. Batches are then written by a worker thread on its own
   * connection (writer-worker.ts); without it, on `db` like PostgreSQL's.
   */
  sqliteFile?: string | undefined;
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
  const worker = deps.dialect === 'sqlite' && deps.sqliteFile ? createWorkerClient(deps.sqliteFile) : null;
  let queue: NewLog[] = [];
  /**
   * With the worker: each queued row's JSON text (the journal's line), in step with `queue`.
   * Rows go to the worker as these strings: copying them costs this thread a tenth of cloning
   * the row objects (~0.2 against 2–4 µs a row), and parsing them costs the worker less too.
   */
  let queueJson: string[] = [];
  let flushing: Promise<void> | null = null;
  let again = false;
  let closed = false;
  let waiters: Array<() => void> = [];
  const stats = { rows: 0, batches: 0, failures: 0 };

  const timer = setInterval(() => void flush().catch(() => {}), deps.intervalMs);
  timer.unref();

  /** Each contributor's part of a batch, in order; those that joined are aborted if one throws. */
  async function contribute(trx: Db, rows: readonly NewLog[], written: readonly NewLog[]): Promise<Hooks[]> {
    const hooks: Hooks[] = [];
    try {
      for (const c of deps.contributors) {
        const h = await c(trx, rows, written);
        if (h) hooks.push(h);
      }
    } catch (err) {
      for (const h of hooks) h.aborted();
      throw err;
    }
    return hooks;
  }

  /** Writes `rows` (`json`: their JSON texts, for the worker); answers how many were new to the database. */
  function writeBatch(rows: NewLog[], json: string[]): Promise<number> {
    return worker ? writeInWorker(worker, rows, json) : writeInTransaction(rows);
  }

  /** The batch in one transaction on `db`, from this thread (PostgreSQL's driver is asynchronous). */
  async function writeInTransaction(rows: NewLog[]): Promise<number> {
    let hooks: Hooks[] = [];
    let count = 0;
    await deps.db
      .transaction()
      .execute(async (trx) => {
        const unique = uniqueRows(rows);
        const inserted: string[] = [];
        for (const s of logInserts(deps.dialect, unique)) {
          const got = await trx.executeQuery<{ request_id: string }>(raw(s));
          for (const r of got.rows) inserted.push(r.request_id);
        }
        // Every row inserted (the usual case): no need to look up which.
        let written: readonly NewLog[] = unique;
        if (inserted.length < unique.length) {
          const stored = new Set(inserted);
          written = unique.filter((r) => stored.has(r.request_id));
        }
        count = written.length;
        for (const s of rollupUpserts(deps.dialect, written)) await trx.executeQuery(raw(s));
        hooks = await contribute(trx, rows, written);
      })
      .then(
        // Kysely has committed (or rolled back) by the time the transaction promise settles.
        () => {
          for (const h of hooks) h.committed();
        },
        (err) => {
          for (const h of hooks) h.aborted();
          throw err;
        },
      );
    return count;
  }

  /**
   * The batch in the worker's transaction (SQLite). The contributors run here, against a Db
   * that records their statements (db/recording.ts), taking every row to be new to the
   * database; the worker checks that as it inserts. A replay after a crash may meet rows
   * stored already: then nothing commits, the worker answers which rows are new, and the
   * contributors' part is made again from those.
   */
  async function writeInWorker(client: WorkerClient, rows: NewLog[], json: string[]): Promise<number> {
    const unique = uniqueRows(rows);
    let written = unique;
    for (let attempt = 1; ; attempt++) {
      const recording = recordingDb();
      const hooks = await contribute(recording.db, rows, written);
      let answer: BatchAnswer;
      try {
        answer = await client.write({
          rows: json,
          written: written === unique ? null : written.map((r) => r.request_id),
          statements: recording.statements,
        });
      } catch (err) {
        // A worker that died with the batch in flight may have committed it (the batch is all
        // or nothing). Every row it was to store being stored tells; a replay whose rows were
        // all stored before is taken as committed too, which leaves no row unwritten.
        const committed = err instanceof WorkerLostError && (await allStored(written));
        for (const h of hooks) committed ? h.committed() : h.aborted();
        if (committed) return written.length;
        throw err;
      }
      if (answer.committed) {
        for (const h of hooks) h.committed();
        return answer.written;
      }
      for (const h of hooks) h.aborted();
      if (attempt === WORKER_TRIES)
        throw new Error('usage writer: the rows new to the database kept changing');
      const inserted = new Set(answer.inserted);
      written = unique.filter((r) => inserted.has(r.request_id));
    }
  }

  /** Whether every one of `rows` is stored (false for none, or when the database cannot say). */
  async function allStored(rows: readonly NewLog[]): Promise<boolean> {
    if (rows.length === 0) return false;
    try {
      for (let i = 0; i < rows.length; i += 500) {
        const ids = rows.slice(i, i + 500).map((r) => r.request_id);
        const found = await deps.db
          .selectFrom('logs')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('request_id', 'in', ids)
          .executeTakeFirstOrThrow();
        if (Number(found.n) !== ids.length) return false;
      }
      return true;
    } catch {
      return false;
    }
  }

  async function flushOnce(): Promise<void> {
    // Spend and last-use times only ever change together with a queued row.
    if (queue.length === 0) return;
    // The rows and the journal segments holding them are taken at the same instant.
    const rows = queue;
    const json = queueJson;
    queue = [];
    queueJson = [];
    const segments = journal?.seal() ?? [];
    const release = waiters;
    waiters = [];
    try {
      await writeBatch(rows, json);
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
      if (worker) queueJson = json.concat(queueJson);
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
     * queue is full. `alone`: no other request is under way to share the journal's write.
     */
    async enqueue(row: NewLog, alone = false): Promise<void> {
      const r = storable(row);
      queue.push(r);
      const json = journal || worker ? JSON.stringify(r) : '';
      if (worker) queueJson.push(json);
      if (journal) {
        try {
          await journal.appendJson(json, alone);
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
      for (let i = 0; i < rows.length; i += 5_000) {
        const batch = rows.slice(i, i + 5_000);
        written += await writeBatch(batch, worker ? batch.map((r) => JSON.stringify(r)) : []);
      }
      await left.remove();
      if (rows.length > 0)
        deps.logger.warn(
          { rows: rows.length, written, files: left.files },
          'usage journal: replayed rows a previous process left',
        );
      return { rows: rows.length, written };
    },
    pending: () => queue.length,
    /** Ends the worker thread at once, as a crash would (tests). */
    killWorker: async () => worker?.terminate(),
    stats: () => ({
      ...stats,
      queued: queue.length,
      journal: journal?.stats() ?? null,
      workerThread: worker?.running() ?? false,
    }),
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
      await worker?.close();
    },
  };
}

export type UsageWriter = ReturnType<typeof createUsageWriter>;
