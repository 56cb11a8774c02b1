// Opens the database named by the config: embedded SQLite (WAL) by default, PostgreSQL when
// DATABASE_URL is set. Both speak the one schema in schema.ts and run the same migrations.
import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { Kysely, PostgresDialect, SqliteDialect, sql, type SqliteDatabase } from 'kysely';
import type { Database } from './schema.js';
import type { Storage } from './index.js';
import { migrateToLatest } from './migrations.js';

// int8 and numeric arrive from pg as strings; the schema keeps every such value within
// Number.MAX_SAFE_INTEGER (money is bounded in billing/money.ts), so numbers are exact.
function toSafeNumber(v: string): number {
  const n = Number(v);
  if (Number.isInteger(n) && !Number.isSafeInteger(n)) throw new Error('integer out of safe range');
  return n;
}
pg.types.setTypeParser(20, toSafeNumber);
pg.types.setTypeParser(1700, toSafeNumber);

/** Statements kept per SQLite connection, least recently used dropped first. */
const STATEMENT_CACHE_SIZE = 200;
/** Longer SQL (a one-off bulk statement) is prepared each time rather than kept. */
const STATEMENT_CACHE_MAX_SQL = 16 * 1024;

/**
 * The SQLite handle as Kysely sees it, with each statement prepared once per SQL text: Kysely
 * prepares on every query, and parsing costs more than running a small statement (the usage
 * writer's batch insert, run several times a second, above all). better-sqlite3 resets a
 * statement and clears its bindings after each run, so reuse is safe; a statement still
 * being iterated (busy) is never handed out twice.
 */
export function cachingStatements(db: SQLite.Database, size = STATEMENT_CACHE_SIZE): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => db.close(),
    prepare(text: string) {
      const hit = cache.get(text);
      if (hit && !hit.busy) {
        // Most recently used last: Map keeps insertion order.
        cache.delete(text);
        cache.set(text, hit);
        return hit;
      }
      const stmt = db.prepare(text);
      if (text.length <= STATEMENT_CACHE_MAX_SQL && !hit) {
        cache.set(text, stmt);
        if (cache.size > size) cache.delete(cache.keys().next().value!);
      }
      return stmt;
    },
  };
}

export interface OpenOptions {
  databaseUrl?: string | undefined;
  dataDir: string;
  /** PostgreSQL schema to use (tests isolate themselves in one each). */
  pgSchema?: string;
  /** Stop migrating after this migration (tests of a later one's upgrade path). */
  migrateUpTo?: string;
}

/**
 * A PostgreSQL migration run that failed before any migration of ours ran, on a catalog race
 * with another schema's DDL (see openStorage): worth another look.
 */
export function isTransientMigrationFailure(err: unknown): boolean {
  const message = String((err as Error)?.message ?? err);
  return (
    /schema .* does not exist/.test(message) ||
    /^database migration failed: (column .* of )?relation .* does not exist/.test(message)
  );
}

export async function openStorage(opts: OpenOptions): Promise<Storage> {
  let storage: Storage;
  if (opts.databaseUrl) {
    const schema = opts.pgSchema;
    if (schema && !/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error('invalid schema name');
    // The schema is part of every connection's startup options, so no query can run before it applies.
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: 10,
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
    });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    if (schema) await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(schema)}`.execute(db);
    storage = { db, dialect: 'postgres', close: () => db.destroy() };
  } else {
    fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    const file = path.join(opts.dataDir, 'mole.sqlite');
    const sqlite = new SQLite(file);
    sqlite.pragma('journal_mode = WAL');
    // FULL: a commit is on disk before it returns. The usage writer deletes a batch's journal
    // segment once the batch commits, so the commit must survive a power cut too. The writer
    // commits a few times a second, so the extra fsync is cheap.
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: cachingStatements(sqlite) }) });
    storage = { db, dialect: 'sqlite', close: () => db.destroy() };
  }
  // On PostgreSQL the migrator is always told its schema: left to itself it takes a
  // kysely_migration table in ANY schema of the database (another app's, a leftover) for its
  // own, then fails to find it on the search path.
  const migrationSchema = opts.databaseUrl
    ? (opts.pgSchema ??
      (await sql<{ schema: string }>`SELECT current_schema() AS schema`.execute(storage.db)).rows[0]!.schema)
    : undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      await migrateToLatest(storage.db, storage.dialect, migrationSchema, opts.migrateUpTo);
      break;
    } catch (err) {
      // Seen only with many per-test schemas under heavy parallel load: the migrator's first
      // look missed a schema created a moment before, or its look at every schema's tables (and
      // their columns) met a table another schema was creating or dropping ("relation … does
      // not exist", "column … of relation … does not exist", before any migration of ours ran:
      // the message names none). Migrations are idempotent and a failed PostgreSQL run rolls
      // back whole: look again, a few times.
      if (!migrationSchema || !isTransientMigrationFailure(err) || attempt === 3) throw err;
      await new Promise((r) => setTimeout(r, 200 * attempt));
      await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(migrationSchema)}`.execute(storage.db);
    }
  }
  return storage;
}
