// Upkeep of the call-log table, at start and then periodically on every instance: on
// PostgreSQL, day partitions of `logs` made ahead (migration 0015; safe on many instances at
// once, see db/partitions.ts); and with MOLE_LOG_RETENTION_DAYS, rows of older days removed:
// on PostgreSQL whole day partitions are dropped (O(1) each), rows in the partitions that
// span days (`logs_before` from the upgrade, DEFAULT) and every old row on SQLite are
// deleted in bounded batches, yielding between them. The daily rollup (usage_daily) is the
// bill history and is never removed.
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db, Dialect } from '../db/index.js';
import { DAY_MS, dayStart, dropPartitionsBefore, ensureDayPartitions } from '../db/partitions.js';
import { LOG_PARTITION_DAYS_AHEAD } from '../db/migrations.js';
import type { Clock } from '../shared/clock.js';
import { periodicJob } from '../shared/periodic.js';

/** How often the upkeep runs, ms: partitions are made days ahead, so an hour is plenty. */
export const LOG_UPKEEP_INTERVAL_MS = 3600_000;
/** Rows one retention DELETE removes (short statements: the writer is never held up long). */
export const RETENTION_BATCH = 5_000;

export interface UpkeepResult {
  partitionsCreated: string[];
  partitionsDropped: string[];
  rowsDeleted: number;
}

export function createLogUpkeep(deps: {
  db: Db;
  dialect: Dialect;
  /** 0 = keep every row. */
  retentionDays: number;
  now: Clock;
  logger: Logger;
  batch?: number;
}) {
  const { db, dialect } = deps;
  const batch = deps.batch ?? RETENTION_BATCH;
  let stopping = false;

  /** PostgreSQL: today's and the next days' partitions (a no-op on SQLite). */
  async function ensurePartitions(now = deps.now()): Promise<string[]> {
    if (dialect !== 'postgres') return [];
    return ensureDayPartitions(db, 'logs', 'created_at', now, LOG_PARTITION_DAYS_AHEAD);
  }

  /** Deletes rows created before `cutoff`, `batch` at a time; answers how many. */
  async function deleteBefore(cutoff: number): Promise<number> {
    let total = 0;
    for (;;) {
      // The outer bound lets PostgreSQL prune the partitions that cannot hold such rows.
      const r =
        dialect === 'postgres'
          ? await sql`DELETE FROM logs WHERE created_at < ${cutoff} AND (id, created_at) IN (
              SELECT id, created_at FROM logs WHERE created_at < ${cutoff} LIMIT ${batch})`.execute(db)
          : await sql`DELETE FROM logs WHERE id IN (
              SELECT id FROM logs WHERE created_at < ${cutoff} LIMIT ${batch})`.execute(db);
      const n = Number(r.numAffectedRows ?? 0);
      total += n;
      if (n < batch || stopping) return total;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  let last: Promise<unknown> = Promise.resolve();
  /** One upkeep pass at the clock's current time (after the one under way, if any). */
  function run(now = deps.now()): Promise<UpkeepResult> {
    const next = last.then(() => pass(now));
    last = next.catch(() => {});
    return next;
  }

  async function pass(now: number): Promise<UpkeepResult> {
    const partitionsCreated = await ensurePartitions(now);
    let partitionsDropped: string[] = [];
    let rowsDeleted = 0;
    if (deps.retentionDays > 0) {
      const cutoff = dayStart(now) - deps.retentionDays * DAY_MS;
      if (dialect === 'postgres') partitionsDropped = await dropPartitionsBefore(db, 'logs', cutoff);
      rowsDeleted = await deleteBefore(cutoff);
    }
    if (partitionsCreated.length || partitionsDropped.length || rowsDeleted)
      deps.logger.info(
        { partitionsCreated, partitionsDropped, rowsDeleted, retentionDays: deps.retentionDays },
        'call-log upkeep',
      );
    return { partitionsCreated, partitionsDropped, rowsDeleted };
  }

  const job = periodicJob(
    () => run(),
    (err) => deps.logger.error({ err: String(err) }, 'call-log upkeep failed; retried next run'),
  );

  return {
    ensurePartitions,
    run,
    /** Runs at once (in the background) and then every `intervalMs`. */
    start(intervalMs = LOG_UPKEEP_INTERVAL_MS) {
      job.start(intervalMs);
    },
    async stop() {
      stopping = true;
      await job.stop();
    },
  };
}

export type LogUpkeep = ReturnType<typeof createLogUpkeep>;
