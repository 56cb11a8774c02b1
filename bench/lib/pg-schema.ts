// A fresh PostgreSQL schema per benchmark run, so a run never meets another's tables.
import { pgOnce } from '../../test/helpers/pg-once.js';

/** Creates a schema on `base`; answers a URL whose search_path is it and a function dropping it. */
export async function pgSchema(base: string): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = `bench_${Date.now().toString(36)}`;
  await pgOnce(base, `CREATE SCHEMA "${schema}"`);
  const u = new URL(base);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return { url: u.toString(), drop: () => pgOnce(base, `DROP SCHEMA "${schema}" CASCADE`) };
}

/** The environment that puts MoleAPI on PostgreSQL (and Redis, when given). */
export const pgEnv = (url: string, redisUrl: string | undefined) => ({
  DATABASE_URL: url,
  MOLE_SECRET: 'bench-secret-0123456789abcdef0123456789',
  REDIS_URL: redisUrl || undefined,
});
