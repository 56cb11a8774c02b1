// One PostgreSQL statement on a connection of its own: creating and dropping the schemas and
// databases that test suites and benchmarks run in.
import pg from 'pg';

/** Runs `sql` on a fresh connection to `url` and closes it, also when the statement fails. */
export async function pgOnce(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}
