import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { describe, expect, it, vi } from 'vitest';
import type { Storage } from './index.js';
import { isTransientMigrationFailure, openStorage } from './open.js';
import { cachingStatements, openSqliteFile } from './sqlite.js';

describe('cachingStatements', () => {
  const open = () => {
    const raw = new SQLite(':memory:');
    raw.exec('create table t (x integer)');
    const prepared = vi.spyOn(raw, 'prepare');
    return { raw, prepared };
  };

  it('prepares each SQL text once and reuses the statement', () => {
    const { raw, prepared } = open();
    const db = cachingStatements(raw);
    const insert = 'insert into t (x) values (?)';
    db.prepare(insert).run([1]);
    db.prepare(insert).run([2]);
    expect(db.prepare(insert)).toBe(db.prepare(insert));
    expect(prepared).toHaveBeenCalledTimes(1);
    // Bindings do not carry over from one run to the next.
    expect(db.prepare('select x from t order by x').all([])).toEqual([{ x: 1 }, { x: 2 }]);
    raw.close();
  });

  it('hands out a fresh statement while the cached one is still being iterated', () => {
    const { raw } = open();
    raw.exec('insert into t (x) values (1), (2)');
    const db = cachingStatements(raw);
    const select = 'select x from t order by x';
    const outer = db.prepare(select).iterate([]);
    expect(outer.next().value).toEqual({ x: 1 });
    expect(db.prepare(select).all([])).toEqual([{ x: 1 }, { x: 2 }]);
    expect(outer.next().value).toEqual({ x: 2 });
    outer.return?.();
    raw.close();
  });

  it('keeps at most `size` statements, dropping the least recently used', () => {
    const { raw, prepared } = open();
    const db = cachingStatements(raw, 2);
    const q = (n: number) => `select ${n} as n`;
    db.prepare(q(1));
    db.prepare(q(2));
    db.prepare(q(1));
    db.prepare(q(3)); // drops q(2), the least recently used
    expect(prepared).toHaveBeenCalledTimes(3);
    db.prepare(q(1));
    expect(prepared).toHaveBeenCalledTimes(3);
    db.prepare(q(2));
    expect(prepared).toHaveBeenCalledTimes(4);
    raw.close();
  });
});

describe('isTransientMigrationFailure', () => {
  // The failures seen when the migrator's look at every schema's tables races another
  // schema's DDL (its introspection calls pg_get_serial_sequence by name), before any of our
  // migrations ran: the message names no migration.
  it.each([
    'database migration failed: relation "t_1f2e.logs_p20261205" does not exist',
    'database migration failed: column "channel_id" of relation "logs_p20261205" does not exist',
    'schema "t_9a8b7c" does not exist',
  ])('retries %s', (message) => {
    expect(isTransientMigrationFailure(new Error(message))).toBe(true);
  });

  it.each([
    // a migration of ours failed: a real error, never retried
    'database migration failed at 0015_logs_partitions: relation "logs_before" does not exist',
    'database migration failed at 0004_usage: column "x" of relation "logs" does not exist',
    'database migration failed: permission denied for schema public',
    'connect ECONNREFUSED 127.0.0.1:5432',
  ])('does not retry %s', (message) => {
    expect(isTransientMigrationFailure(new Error(message))).toBe(false);
  });
});

describe('SQLite transactions', () => {
  it('take the write lock at BEGIN: a commit from another connection cannot slip in after their reads', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-open-'));
    const storage = await openStorage({ dataDir: dir });
    // A second connection, as the usage writer's worker thread opens one, that does not wait.
    const other = openSqliteFile(storage.sqliteFile!);
    other.pragma('busy_timeout = 0');
    try {
      await storage.db.transaction().execute(async (trx) => {
        const before = await trx.selectFrom('meta').selectAll().execute();
        expect(() => other.exec(`insert into "meta" ("name", "value") values ('other', '1')`)).toThrow(
          /locked|busy/i,
        );
        // A deferred transaction would fail here (SQLITE_BUSY_SNAPSHOT) had `other` committed.
        await trx
          .insertInto('meta')
          .values({ name: 'mine', value: String(before.length) })
          .execute();
      });
      other.exec(`insert into "meta" ("name", "value") values ('other', '1')`);
      const names = (await storage.db.selectFrom('meta').select('name').execute()).map((r) => r.name);
      expect(names).toEqual(expect.arrayContaining(['mine', 'other']));
    } finally {
      other.close();
      await storage.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SQLite files', () => {
  it('a new database and its -wal and -shm are the owner’s alone; an existing file keeps its mode', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-open-'));
    const old = process.umask(0o022);
    try {
      const storage = await openStorage({ dataDir: path.join(dir, 'data') });
      try {
        for (const f of ['mole.sqlite', 'mole.sqlite-wal', 'mole.sqlite-shm'])
          expect(fs.statSync(path.join(dir, 'data', f)).mode & 0o777, f).toBe(0o600);
      } finally {
        await storage.close();
      }
      const chosen = path.join(dir, 'chosen.sqlite');
      fs.writeFileSync(chosen, '', { mode: 0o640 });
      openSqliteFile(chosen).close();
      expect(fs.statSync(chosen).mode & 0o777).toBe(0o640);
    } finally {
      process.umask(old);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a database a newer release migrated', () => {
  it('opens, its newer migrations counted as done and named; an unknown older one still fails', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-open-'));
    try {
      const first = await openStorage({ dataDir: dir });
      expect(first.newerMigrations).toEqual([]);
      await sql`INSERT INTO kysely_migration (name, timestamp) VALUES ('9999_from_a_newer_release', '2027-01-01T00:00:00.000Z')`.execute(
        first.db,
      );
      await first.close();
      const second = await openStorage({ dataDir: dir });
      expect(second.newerMigrations).toEqual(['9999_from_a_newer_release']);
      expect(await second.db.selectFrom('users').selectAll().execute()).toEqual([]);
      await sql`INSERT INTO kysely_migration (name, timestamp) VALUES ('0000_unknown', '2027-01-01T00:00:00.000Z')`.execute(
        second.db,
      );
      await second.close();
      await expect(openStorage({ dataDir: dir })).rejects.toThrow(/0000_unknown/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!process.env.MOLE_TEST_PG_URL)('PostgreSQL pool', () => {
  it('holds MOLE_DB_POOL_SIZE connections at most, and reports a connection the server refuses', async () => {
    const admin = new URL(process.env.MOLE_TEST_PG_URL!);
    const role = `mole_limit_${process.pid}_${Date.now() % 100_000}`;
    const { default: pg } = await import('./pg.js');
    const su = new pg.Client({ connectionString: admin.toString() });
    await su.connect();
    // A role the server lets open two connections at once (as a managed plan or a busy server would).
    await su.query(`CREATE ROLE ${role} LOGIN CONNECTION LIMIT 2`);
    await su.query(`GRANT CREATE ON DATABASE "${admin.pathname.slice(1)}" TO ${role}`);
    const url = new URL(admin);
    url.username = role;
    const opened: Awaited<ReturnType<typeof openStorage>>[] = [];
    try {
      const heard: string[] = [];
      const open = async (poolSize: number) => {
        const s = await openStorage({
          databaseUrl: url.toString(),
          dataDir: '',
          pgSchema: role,
          poolSize,
          onConnectionError: (err) => heard.push(err.message),
        });
        opened.push(s);
        return s;
      };
      const sleeps = (s: Storage) =>
        Promise.allSettled(Array.from({ length: 4 }, () => sql`SELECT pg_sleep(0.2)`.execute(s.db)));
      // Within the limit: the fourth query waits for a pooled connection.
      const within = await open(2);
      expect((await sleeps(within)).every((r) => r.status === 'fulfilled')).toBe(true);
      await within.close();
      opened.pop();
      // Past it: the queries that asked for a third connection fail, and the refusal is heard.
      const past = await open(4);
      const results = await sleeps(past);
      expect(results.some((r) => r.status === 'rejected')).toBe(true);
      expect(heard.some((m) => /too many connections/.test(m))).toBe(true);
    } finally {
      for (const s of opened) await s.close();
      await su.query(`DROP SCHEMA IF EXISTS ${role} CASCADE`);
      await su.query(`REVOKE CREATE ON DATABASE "${admin.pathname.slice(1)}" FROM ${role}`);
      await su.query(`DROP ROLE ${role}`);
      await su.end();
    }
  });
});
