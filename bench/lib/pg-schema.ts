// A fresh PostgreSQL schema per benchmark run, so a run never meets another's tables.
import pg from 'pg';

/** Creates a schema on `base`; answers a URL whose search_path is it and a function dropping it. */
export async function pgSchema(base: string): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = `bench_${Date.now().toString(36)}`;
  const query = async (text: string) => {
    const client = new pg.Client({ connectionString: base });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  };
  await query(`CREATE SCHEMA "${schema}"`);
  const u = new URL(base);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return { url: u.toString(), drop: () => query(`DROP SCHEMA "${schema}" CASCADE`) };
}

/** The environment that puts MoleAPI on PostgreSQL (and Redis, when given). */
export const pgEnv = (url: string, redisUrl: string | undefined) => ({
  DATABASE_URL: url,
  MOLE_SECRET: 'bench-secret-0123456789abcdef0123456789',
  REDIS_URL: redisUrl || undefined,
});
