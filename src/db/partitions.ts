// PostgreSQL day partitions of a table range-partitioned on an epoch-ms column (`logs`,
// migration 0015): one partition per UTC day (`<table>_pYYYYMMDD`), made ahead of time, a
// DEFAULT partition that takes any row no day partition holds, and whole days dropped in O(1).
// Every instance may run these at once: each runs in one transaction under a per-schema
// advisory lock and looks at the catalog after taking it, so the work is done once.
import { type Kysely, sql } from 'kysely';

export const DAY_MS = 86_400_000;
export const dayStart = (ms: number): number => Math.floor(ms / DAY_MS) * DAY_MS;

export interface Partition {
  name: string;
  /** Lower bound (inclusive); null = MINVALUE. */
  from: number | null;
  /** Upper bound (exclusive); null = MAXVALUE. */
  to: number | null;
  isDefault: boolean;
}

const NAME_RE = /^[a-z_][a-z0-9_]*$/;
function checkName(name: string): string {
  if (!NAME_RE.test(name)) throw new Error(`invalid table name: ${name}`);
  return name;
}

export const dayPartitionName = (table: string, dayMs: number): string =>
  `${checkName(table)}_p${new Date(dayMs).toISOString().slice(0, 10).replace(/-/g, '')}`;

function bound(text: string): number | null {
  const t = text.trim().replace(/^'|'$/g, '');
  return t === 'MINVALUE' || t === 'MAXVALUE' ? null : Number(t);
}

/** Is `table` (in the search path) a partitioned table? */
export async function isPartitioned<DB>(db: Kysely<DB>, table: string): Promise<boolean> {
  const r = await sql<{ kind: string | null }>`
    SELECT (SELECT relkind FROM pg_class WHERE oid = to_regclass(${checkName(table)})) AS kind`.execute(db);
  return r.rows[0]?.kind === 'p';
}

/** The partitions of `table` with their bounds, ordered by lower bound (DEFAULT last). */
export async function listPartitions<DB>(db: Kysely<DB>, table: string): Promise<Partition[]> {
  const r = await sql<{ name: string; bound: string }>`
    SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = to_regclass(${checkName(table)})`.execute(db);
  const out = r.rows.map(({ name, bound: b }) => {
    if (b.trim() === 'DEFAULT') return { name, from: null, to: null, isDefault: true };
    const m = /FROM \((.+?)\) TO \((.+?)\)/.exec(b);
    if (!m) throw new Error(`unexpected partition bound of ${name}: ${b}`);
    return { name, from: bound(m[1]!), to: bound(m[2]!), isDefault: false };
  });
  const key = (p: Partition) => (p.isDefault ? Infinity : (p.from ?? -Infinity));
  return out.sort((a, b) => key(a) - key(b));
}

/** Serialises partition work on `table` in this schema until the transaction ends. */
async function lockPartitions<DB>(trx: Kysely<DB>, table: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtext(current_schema() || ${'.' + table + ':partitions'}))`.execute(
    trx,
  );
}

/**
 * Inside a transaction: the DEFAULT partition and one partition per UTC day from the day of
 * `now` to `daysAhead` days later, those that do not exist yet (a day another partition
 * already covers is skipped). A day whose rows went to DEFAULT meanwhile gets them moved
 * into its new partition. Answers the partitions created.
 */
export async function ensureDayPartitionsIn<DB>(
  trx: Kysely<DB>,
  table: string,
  column: string,
  now: number,
  daysAhead: number,
): Promise<string[]> {
  checkName(column);
  // A table not (yet) partitioned, as before migration 0015, has nothing to make.
  if (!(await isPartitioned(trx, table))) return [];
  await lockPartitions(trx, table);
  const existing = await listPartitions(trx, table);
  const created: string[] = [];
  const parent = sql.id(table);
  const def = existing.find((p) => p.isDefault)?.name ?? null;
  const overlaps = (from: number, to: number) =>
    existing.some((p) => !p.isDefault && (p.from ?? -Infinity) < to && (p.to ?? Infinity) > from);
  for (let d = 0; d <= daysAhead; d++) {
    const from = dayStart(now) + d * DAY_MS;
    const to = from + DAY_MS;
    if (overlaps(from, to)) continue;
    const name = dayPartitionName(table, from);
    // CREATE TABLE … PARTITION OF would lock the whole table (ACCESS EXCLUSIVE); ATTACH
    // locks it only against other schema changes, so inserts and reads go on meanwhile.
    await sql`CREATE TABLE IF NOT EXISTS ${sql.id(name)} (LIKE ${parent} INCLUDING DEFAULTS)`.execute(trx);
    if (def)
      await sql`WITH moved AS (
          DELETE FROM ${sql.id(def)} WHERE ${sql.id(column)} >= ${from} AND ${sql.id(column)} < ${to}
          RETURNING *)
        INSERT INTO ${sql.id(name)} SELECT * FROM moved`.execute(trx);
    await sql`ALTER TABLE ${parent} ATTACH PARTITION ${sql.id(name)}
      FOR VALUES FROM (${sql.lit(from)}) TO (${sql.lit(to)})`.execute(trx);
    created.push(name);
  }
  if (!def) {
    const name = `${table}_default`;
    await sql`CREATE TABLE IF NOT EXISTS ${sql.id(name)} PARTITION OF ${parent} DEFAULT`.execute(trx);
    created.push(name);
  }
  return created;
}

/**
 * Lock waits of the periodic work are bounded: dropping a partition locks the whole table,
 * and while it waits for a long read to end, inserts and reads queue behind it. A busy
 * moment is retried on the next run.
 */
const LOCK_TIMEOUT = '2s';

/** `ensureDayPartitionsIn` in a transaction of its own. */
export function ensureDayPartitions<DB>(
  db: Kysely<DB>,
  table: string,
  column: string,
  now: number,
  daysAhead: number,
): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    await sql`SET LOCAL lock_timeout = ${sql.lit(LOCK_TIMEOUT)}`.execute(trx);
    return ensureDayPartitionsIn(trx, table, column, now, daysAhead);
  });
}

/**
 * Drops every partition whose rows all lie before `cutoff` (its upper bound ≤ cutoff): O(1)
 * per partition, whatever it holds. DEFAULT is never dropped. Answers the partitions dropped.
 */
export function dropPartitionsBefore<DB>(db: Kysely<DB>, table: string, cutoff: number): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    await sql`SET LOCAL lock_timeout = ${sql.lit(LOCK_TIMEOUT)}`.execute(trx);
    await lockPartitions(trx, table);
    const old = (await listPartitions(trx, table)).filter(
      (p) => !p.isDefault && p.to !== null && p.to <= cutoff,
    );
    for (const p of old) await sql`DROP TABLE ${sql.id(p.name)}`.execute(trx);
    return old.map((p) => p.name);
  });
}
