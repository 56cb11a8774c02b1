// Finds PostgreSQL for the storage suites: TEST_DATABASE_URL, or the machine's default
// server. When none answers, the PostgreSQL suites are skipped with a visible message.
// Likewise Redis (TEST_REDIS_URL) and MariaDB / MySQL for the importer's MySQL sources
// (TEST_MYSQL_URL, default mysql://root@127.0.0.1:3306/mysql).
//
// The PostgreSQL suites run in a database of the run's own, made on that server here and
// dropped when the run ends. A run makes and drops hundreds of schemas, which leave dead rows
// in the database's catalogs; on a server that never vacuums them (autovacuum off, as on the
// shared benchmark host) they piled up run after run in the one test database (240k dead
// pg_attribute rows, 35 MB), and every later schema's DDL and catalog reads slowed down: the
// same five suites cost PostgreSQL 7.1 s of CPU there against 5.4 s in a fresh database. A
// database per run also keeps runs of other checkouts on the server out of its catalogs.
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import { createClient } from '@redis/client';
import mysql from 'mysql2/promise';
import { pgOnce } from './helpers/pg-once.js';

/** This host's run databases: mole_run_<host>_<pid>_<random>. */
const RUN_DB_PREFIX = `mole_run_${createHash('sha256').update(os.hostname()).digest('hex').slice(0, 6)}_`;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Makes this run's database on the server `c` is connected to and drops those left by runs of
 * this host whose process is gone (a run that was killed); answers its name.
 */
async function runDatabase(c: pg.Client): Promise<string> {
  const { rows } = await c.query<{ datname: string }>(
    'SELECT datname FROM pg_database WHERE starts_with(datname, $1)',
    [RUN_DB_PREFIX],
  );
  for (const { datname } of rows) {
    const pid = Number(datname.slice(RUN_DB_PREFIX.length).split('_')[0]);
    if (Number.isInteger(pid) && !alive(pid))
      await c.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => {});
  }
  const name = `${RUN_DB_PREFIX}${process.pid}_${randomBytes(3).toString('hex')}`;
  await c.query(`CREATE DATABASE "${name}"`);
  return name;
}

export default async function setup() {
  const candidate = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
  const c = new pg.Client({ connectionString: candidate, connectionTimeoutMillis: 1500 });
  let teardown = async () => {};
  try {
    await c.connect();
    await c.query('select 1');
    const url = new URL(candidate);
    let note = '';
    try {
      const name = await runDatabase(c);
      url.pathname = `/${name}`;
      teardown = () => pgOnce(candidate, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      note = ' (made for this run, dropped at its end)';
    } catch (err) {
      note = ` itself (no database of the run's own: ${(err as Error).message})`;
    }
    process.env.MOLE_TEST_PG_URL = url.toString();
    console.log(
      `[moleapi tests] PostgreSQL suites run against ${url.toString().replace(/:[^:@/]*@/, ':***@')}${note}`,
    );
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
  return teardown;
}
