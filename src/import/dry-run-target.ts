// The database `mole import new-api --dry-run` reads instead of opening the server's own
// (contract §10: "--dry-run writes nothing"). A dry run only reads the target — what was imported
// before, usernames taken, models priced, groups present — but opening it as the server does
// (db/open.ts) creates the data dir and the SQLite file and applies every migration. Here:
//
// - a target whose migrations are all applied is read as it is: SQLite on a query_only
//   connection, PostgreSQL sessions in read-only transactions (default_transaction_read_only);
// - a SQLite file that is not there yet is an empty database: one migrated in memory;
// - a SQLite file at an older schema version is copied (SQLite's online backup, to a temporary
//   folder outside the data dir) and the copy migrated, read, and removed;
// - a PostgreSQL database not (fully) migrated yet — none of our tables, or an older version —
//   is migrated inside one transaction on one connection, read, and rolled back. Nothing is
//   committed; the tables being created or altered are locked while the dry run reads.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type MigrationProvider } from 'kysely';
import type { Db, Dialect } from '../db/index.js';
import { migrateToLatest, migrations } from '../db/migrations.js';
import type { Database } from '../db/schema.js';

export interface DryRunTarget {
  db: Db;
  dialect: Dialect;
  /** What was read: the database itself, an empty one, or a migrated copy or transaction. */
  kind: 'as-is' | 'empty' | 'migrated-copy' | 'rolled-back-migration';
  /** Closes it; nothing read was changed (a copy is removed, a transaction rolled back). */
  close(): Promise<void>;
}

/** Migrations of ours not applied to a database that has `applied`. */
function pending(dialect: Dialect, applied: string[]): string[] {
  const done = new Set(applied);
  return Object.keys(migrations(dialect)).filter((name) => !done.has(name));
}

/** Opens the server's database (MOLE_DATA_DIR or DATABASE_URL) for a dry run: see above. */
export async function openDryRunTarget(opts: {
  databaseUrl?: string | undefined;
  dataDir: string;
}): Promise<DryRunTarget> {
  return opts.databaseUrl
    ? openPostgres(opts.databaseUrl)
    : openSqlite(path.join(opts.dataDir, 'mole.sqlite'));
}

const sqliteDb = (database: SQLite.Database): Db =>
  new Kysely<Database>({ dialect: new SqliteDialect({ database }) });

async function openSqlite(file: string): Promise<DryRunTarget> {
  if (!fs.existsSync(file)) {
    const db = sqliteDb(new SQLite(':memory:'));
    try {
      await migrateToLatest(db, 'sqlite');
    } catch (err) {
      await db.destroy();
      throw err;
    }
    return { db, dialect: 'sqlite', kind: 'empty', close: () => db.destroy() };
  }
  // Opened read-write but query_only (no statement can write), rather than read-only: reading
  // a WAL database makes its -wal and -shm files, and only a connection that may write removes
  // them when it is the last to close (a read-only one would leave them in the data dir). With
  // a gateway running they are its own, and stay.
  const conn = new SQLite(file, { fileMustExist: true });
  try {
    conn.pragma('query_only = ON');
    // A gateway writing meanwhile holds the lock only for a moment: wait for it, as it would.
    conn.pragma('busy_timeout = 5000');
    const hasTable = conn
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kysely_migration'")
      .get();
    const applied = hasTable
      ? (conn.prepare('SELECT name FROM kysely_migration').all() as { name: string }[]).map((r) => r.name)
      : [];
    if (pending('sqlite', applied).length === 0) {
      const db = sqliteDb(conn);
      return { db, dialect: 'sqlite', kind: 'as-is', close: () => db.destroy() };
    }
    // An older schema: read a migrated copy, made by SQLite's online backup (a running
    // gateway keeps writing meanwhile).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-dry-run-'));
    const removeCopy = () => fs.rmSync(dir, { recursive: true, force: true });
    try {
      const copy = path.join(dir, 'mole.sqlite');
      await conn.backup(copy);
      conn.close();
      const db = sqliteDb(new SQLite(copy, { fileMustExist: true }));
      try {
        await migrateToLatest(db, 'sqlite');
      } catch (err) {
        await db.destroy();
        throw err;
      }
      return {
        db,
        dialect: 'sqlite',
        kind: 'migrated-copy',
        close: async () => {
          try {
            await db.destroy();
          } finally {
            removeCopy();
          }
        },
      };
    } catch (err) {
      removeCopy();
      throw err;
    }
  } catch (err) {
    if (conn.open) conn.close();
    throw err;
  }
}

async function openPostgres(databaseUrl: string): Promise<DryRunTarget> {
  // Loaded here, as db/open.ts does: a SQLite setup never needs it.
  const { default: pg } = await import('../db/pg.js');
  const open = (readOnly: boolean) =>
    new Kysely<Database>({
      dialect: new PostgresDialect({
        pool: new pg.Pool({
          connectionString: databaseUrl,
          // One connection, kept while the dry run lasts: the rolled-back migration's
          // transaction lives on it.
          max: 1,
          idleTimeoutMillis: 0,
          ...(readOnly ? { options: '-c default_transaction_read_only=on' } : {}),
        }),
      }),
    });

  const reader = open(true);
  let applied: string[];
  let schema: string;
  try {
    schema = (await sql<{ schema: string }>`SELECT current_schema() AS schema`.execute(reader)).rows[0]!
      .schema;
    const table = await sql<{ found: string | null }>`
      SELECT to_regclass(${`${quoteIdent(schema)}.kysely_migration`}) AS found`.execute(reader);
    applied = table.rows[0]?.found
      ? (
          await sql<{ name: string }>`SELECT name FROM ${sql.id(schema, 'kysely_migration')}`.execute(reader)
        ).rows.map((r) => r.name)
      : [];
  } catch (err) {
    await reader.destroy();
    throw err;
  }
  if (pending('postgres', applied).length === 0)
    return { db: reader, dialect: 'postgres', kind: 'as-is', close: () => reader.destroy() };
  await reader.destroy();

  // Not migrated (fully) yet: migrate in a transaction that is never committed.
  const db = open(false);
  try {
    await sql`BEGIN`.execute(db);
    const all = migrations('postgres');
    const provider: MigrationProvider = { getMigrations: async () => all };
    const { error } = await new Migrator({
      db,
      provider,
      migrationTableSchema: schema,
      // The transaction is ours (BEGIN above), and ends in ROLLBACK.
      disableTransactions: true,
    }).migrateToLatest();
    if (error) throw new Error(`database migration failed: ${String((error as Error).message ?? error)}`);
  } catch (err) {
    await sql`ROLLBACK`.execute(db).catch(() => {});
    await db.destroy();
    throw err;
  }
  return {
    db,
    dialect: 'postgres',
    kind: applied.length ? 'rolled-back-migration' : 'empty',
    close: async () => {
      try {
        await sql`ROLLBACK`.execute(db);
      } finally {
        await db.destroy();
      }
    },
  };
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;
