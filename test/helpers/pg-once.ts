// One PostgreSQL statement on a connection of its own: creating and dropping the schemas and
// databases that test suites and benchmarks run in, and reading what the server itself reports.
import pg from 'pg';

/** Runs `sql` on a fresh connection to `url` and closes it, also when the statement fails. */
export async function pgOnce(url: string, sql: string): Promise<void> {
  await pgRows(url, sql);
}

/** pgOnce, answering the statement's rows. */
export async function pgRows<Row extends object = Record<string, unknown>>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<Row[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<Row>(sql, params)).rows;
  } finally {
    await c.end();
  }
}
