// The stored nano-USD counters the ledgers keep (a key's or an ephemeral key's spend, an
// account's balance): one number column on a row found by id. The owning domain names its
// table and column; it reads the value as stored, and the ledger's flush moves it by relative
// updates inside its transaction, so that concurrent writers add up instead of overwriting.
import { type Kysely, type Selectable, sql } from 'kysely';
import type { Db, Dialect } from '../db/index.js';
import type { Database } from '../db/schema.js';

/** The columns of `T` that hold a number. */
type NumberColumn<T extends keyof Database> = {
  [C in keyof Selectable<Database[T]>]-?: Selectable<Database[T]>[C] extends number ? C : never;
}[keyof Selectable<Database[T]>] &
  string;

/** Just what the counter queries need of a table: an id and number columns. */
type CounterDb = Record<string, { id: number } & Record<string, number>>;

/** A counter's value as stored (0 when the row is gone). */
export async function storedCounter<T extends keyof Database & string>(
  db: Db,
  table: T,
  column: NumberColumn<T>,
  id: number,
): Promise<number> {
  const c: string = column;
  const r = await (db as unknown as Kysely<CounterDb>)
    .selectFrom(table as string)
    .select(c)
    .where('id', '=', id)
    .executeTakeFirst();
  return r ? Number(r[c]) : 0;
}

/**
 * Moves each row's counter by its delta (`op` adds or subtracts it). PostgreSQL: one UPDATE
 * for them all (the ids and deltas as two arrays), since a statement per row is a round trip
 * per key or account in the batch (1,000 keys made a usage batch take ~0.5 s). SQLite: one
 * UPDATE per non-zero delta (prepared once, no round trip). Rows are taken in id order, so
 * two instances' batches lock shared rows in the same order.
 */
export async function moveCounters<T extends keyof Database & string>(
  trx: Db,
  table: T,
  column: NumberColumn<T>,
  op: '+' | '-',
  deltas: Map<number, number>,
  dialect: Dialect = 'sqlite',
): Promise<void> {
  const moves = [...deltas].filter(([, delta]) => delta !== 0).sort((a, b) => a[0] - b[0]);
  if (moves.length === 0) return;
  // Raw SQL, not the query builder: its compile cost several times the update itself.
  const c = sql.ref(column);
  if (dialect === 'postgres') {
    const ids = moves.map(([id]) => id);
    const by = moves.map(([, delta]) => delta);
    await sql`update ${sql.table(table)} as t set ${c} = t.${c} ${sql.raw(op)} d.delta
      from unnest(${ids}::int8[], ${by}::int8[]) as d(id, delta) where t."id" = d.id`.execute(trx);
    return;
  }
  for (const [id, delta] of moves)
    await sql`update ${sql.table(table)} set ${c} = ${c} ${sql.raw(op)} ${delta} where "id" = ${id}`.execute(
      trx,
    );
}
