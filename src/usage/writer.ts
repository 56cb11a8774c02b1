// The call-log writer. Relay requests enqueue one row each (memory only); a timer writes
// them in batches, together with the per-day rollups and whatever the contributors hold
// (the ledger's pending spend, keys' last-use times), in one transaction. The queue is
// bounded: when it is full, enqueue waits for the next flush instead of dropping rows.
import type { Logger } from 'pino';
import type { Db } from '../db/index.js';
import type { NewLog } from '../db/schema.js';

/**
 * Joins a batch's transaction. `rows` are the log rows the batch writes: whatever a
 * contributor derives from them (spend) commits with exactly those rows, never ahead of them.
 */
export type Contributor = (
  trx: Db,
  rows: readonly NewLog[],
) => Promise<{ committed(): void; aborted(): void } | void>;

const MAX_QUEUE = 50_000;
const ROWS_PER_INSERT = 500;

/**
 * A row every database accepts: text without NUL (PostgreSQL refuses it) and within sane
 * lengths. One unstorable row would otherwise fail its whole batch on every retry.
 */
function storable(row: NewLog): NewLog {
  const clean = (v: string | null | undefined, max: number) =>
    v == null ? (v ?? null) : v.replace(/\u0000/g, '').slice(0, max);
  return {
    ...row,
    request_id: clean(row.request_id, 64)!,
    key_name: clean(row.key_name, 256)!,
    model: clean(row.model, 256),
    upstream_model: clean(row.upstream_model, 256),
    endpoint: clean(row.endpoint, 256)!,
    error_code: clean(row.error_code, 64),
    ip: clean(row.ip, 64),
    // Rows journaled by an older version lack the newer columns: their defaults apply.
    attempts: clean(row.attempts, 64 * 1024),
    protocol: clean(row.protocol ?? 'openai', 32)!,
    cache_write_tokens: row.cache_write_tokens ?? 0,
    reasoning_tokens: row.reasoning_tokens ?? 0,
  };
}

const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

export function createUsageWriter(deps: {
  db: Db;
  logger: Logger;
  intervalMs: number;
  contributors: Contributor[];
}) {
  let queue: NewLog[] = [];
  let flushing: Promise<void> | null = null;
  let again = false;
  let closed = false;
  let waiters: Array<() => void> = [];
  const stats = { rows: 0, batches: 0, failures: 0 };

  const timer = setInterval(() => void flush().catch(() => {}), deps.intervalMs);
  timer.unref();

  async function writeBatch(rows: NewLog[]): Promise<void> {
    let hooks: Array<{ committed(): void; aborted(): void }> = [];
    await deps.db
      .transaction()
      .execute(async (trx) => {
        for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
          await trx
            .insertInto('logs')
            .values(rows.slice(i, i + ROWS_PER_INSERT))
            .execute();
        }
        const rollup = new Map<
          string,
          {
            day: string;
            user_id: number;
            key_id: number;
            model: string;
            requests: number;
            prompt_tokens: number;
            cached_tokens: number;
            completion_tokens: number;
            cost_nano: number;
          }
        >();
        for (const r of rows) {
          const day = dayOf(r.created_at);
          const model = r.model ?? '';
          const id = `${day}|${r.key_id}|${model}`;
          let agg = rollup.get(id);
          if (!agg)
            rollup.set(
              id,
              (agg = {
                day,
                user_id: r.user_id,
                key_id: r.key_id,
                model,
                requests: 0,
                prompt_tokens: 0,
                cached_tokens: 0,
                completion_tokens: 0,
                cost_nano: 0,
              }),
            );
          agg.requests++;
          agg.prompt_tokens += r.prompt_tokens;
          agg.cached_tokens += r.cached_tokens;
          agg.completion_tokens += r.completion_tokens;
          agg.cost_nano += r.cost_nano;
        }
        const aggs = [...rollup.values()];
        for (let i = 0; i < aggs.length; i += ROWS_PER_INSERT) {
          await trx
            .insertInto('usage_daily')
            .values(aggs.slice(i, i + ROWS_PER_INSERT))
            .onConflict((oc) =>
              oc.columns(['day', 'user_id', 'key_id', 'model']).doUpdateSet((eb) => ({
                requests: eb('usage_daily.requests', '+', eb.ref('excluded.requests')),
                prompt_tokens: eb('usage_daily.prompt_tokens', '+', eb.ref('excluded.prompt_tokens')),
                cached_tokens: eb('usage_daily.cached_tokens', '+', eb.ref('excluded.cached_tokens')),
                completion_tokens: eb(
                  'usage_daily.completion_tokens',
                  '+',
                  eb.ref('excluded.completion_tokens'),
                ),
                cost_nano: eb('usage_daily.cost_nano', '+', eb.ref('excluded.cost_nano')),
              })),
            )
            .execute();
        }
        try {
          for (const c of deps.contributors) {
            const h = await c(trx, rows);
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
        () => hooks.forEach((h) => h.committed()),
        (err) => {
          hooks.forEach((h) => h.aborted());
          hooks = [];
          throw err;
        },
      );
  }

  async function flushOnce(): Promise<void> {
    // Spend and last-use times only ever change together with a queued row.
    if (queue.length === 0) return;
    const rows = queue;
    queue = [];
    const release = waiters;
    waiters = [];
    try {
      await writeBatch(rows);
      stats.rows += rows.length;
      stats.batches++;
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
    async enqueue(row: NewLog): Promise<void> {
      queue.push(storable(row));
      if (queue.length >= MAX_QUEUE && !closed) {
        await new Promise<void>((r) => waiters.push(r));
      }
    },
    pending: () => queue.length,
    stats: () => ({ ...stats, queued: queue.length }),
    async close(): Promise<void> {
      closed = true;
      clearInterval(timer);
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          await flush();
          if (queue.length === 0) return;
        } catch {
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    },
  };
}

export type UsageWriter = ReturnType<typeof createUsageWriter>;
