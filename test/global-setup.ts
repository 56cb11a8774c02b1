// Finds PostgreSQL for the storage suites: TEST_DATABASE_URL, or the machine's default
// server. When none answers, the PostgreSQL suites are skipped with a visible message.
// Likewise Redis (TEST_REDIS_URL) and MariaDB / MySQL for the importer's MySQL sources
// (TEST_MYSQL_URL, default mysql://root@127.0.0.1:3306/mysql).
import pg from 'pg';
import { createClient } from '@redis/client';
import mysql from 'mysql2/promise';

export default async function setup() {
  const candidate = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
  const c = new pg.Client({ connectionString: candidate, connectionTimeoutMillis: 1500 });
  try {
    await c.connect();
    await c.query('select 1');
    process.env.MOLE_TEST_PG_URL = candidate;
    console.log(`[moleapi tests] PostgreSQL suites run against ${candidate.replace(/:[^:@/]*@/, ':***@')}`);
  } catch (err) {
    console.warn(
      `[moleapi tests] SKIPPING PostgreSQL suites: no server at ${candidate.replace(/:[^:@/]*@/, ':***@')} (${(err as Error).message})`,
    );
  } finally {
    await c.end().catch(() => {});
  }
  const redisCandidate = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';
  const r = createClient({ url: redisCandidate, socket: { connectTimeout: 1500, reconnectStrategy: false } });
  r.on('error', () => {});
  try {
    await r.connect();
    await r.ping();
    process.env.MOLE_TEST_REDIS_URL = redisCandidate;
    console.log(`[moleapi tests] Redis suites run against ${redisCandidate}`);
  } catch (err) {
    console.warn(
      `[moleapi tests] SKIPPING Redis suites: no server at ${redisCandidate} (${(err as Error).message})`,
    );
  } finally {
    r.destroy();
  }
  const mysqlCandidate = process.env.TEST_MYSQL_URL || 'mysql://root@127.0.0.1:3306/mysql';
  const shown = mysqlCandidate.replace(/:[^:@/]*@/, ':***@');
  try {
    const m = await mysql.createConnection({ uri: mysqlCandidate, connectTimeout: 1500 });
    try {
      await m.query('select 1');
    } finally {
      await m.end().catch(() => {});
    }
    process.env.MOLE_TEST_MYSQL_URL = mysqlCandidate;
    console.log(`[moleapi tests] MySQL suites run against ${shown}`);
  } catch (err) {
    console.warn(`[moleapi tests] SKIPPING MySQL suites: no server at ${shown} (${(err as Error).message})`);
  }
}
