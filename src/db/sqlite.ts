// One SQLite connection to the data dir's database file, as every connection to it is opened:
// the main one (open.ts, Kysely) and the usage writer's worker thread (usage/writer-worker.ts).
// Only better-sqlite3 is imported here, so a worker that needs just a connection starts light.
import fs from 'node:fs';
import SQLite from 'better-sqlite3';
import type { SqliteDatabase } from 'kysely';

/** Statements kept per SQLite connection, least recently used dropped first. */
const STATEMENT_CACHE_SIZE = 200;
/** Longer SQL (a one-off bulk statement) is prepared each time rather than kept. */
const STATEMENT_CACHE_MAX_SQL = 16 * 1024;

/**
 * How long a connection waits for another's write lock before SQLITE_BUSY. The wait is a
 * synchronous sleep in the calling thread: on the main thread it stalls the event loop (see
 * usage/writer-worker.ts for how short the worker's hold is).
 */
const BUSY_TIMEOUT_MS = 5000;

/** A connection as Kysely sees it (SqliteDatabase), its statements better-sqlite3's own. */
export interface CachingStatements extends SqliteDatabase {
  prepare(text: string): SQLite.Statement;
}

export function openSqliteFile(file: string): SQLite.Database {
  // A new database is the owner's alone (call logs, key hashes, sessions); SQLite gives its
  // -wal and -shm files the same mode. An existing file keeps the mode its operator chose.
  if (file !== ':memory:' && !fs.existsSync(file)) fs.closeSync(fs.openSync(file, 'a', 0o600));
  const sqlite = new SQLite(file);
  sqlite.pragma('journal_mode = WAL');
  // FULL: a commit is on disk before it returns. The usage writer deletes a batch's journal
  // segment once the batch commits, so the commit must survive a power cut too. The writer
  // commits a few times a second, so the extra fsync is cheap.
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  return sqlite;
}

/**
 * The SQLite handle as Kysely sees it, with each statement prepared once per SQL text: Kysely
 * prepares on every query, and parsing costs more than running a small statement (the usage
 * writer's batch insert, run several times a second, above all). better-sqlite3 resets a
 * statement and clears its bindings after each run, so reuse is safe; a statement still
 * being iterated (busy) is never handed out twice.
 */
export function cachingStatements(db: SQLite.Database, size = STATEMENT_CACHE_SIZE): CachingStatements {
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
