import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { describe, expect, it, vi } from 'vitest';
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
