// Opens the database named by the config: embedded SQLite (WAL) by default, PostgreSQL when
// DATABASE_URL is set. Both speak the one schema in schema.ts and run the same migrations.
import fs from 'node:fs';
import path from 'node:path';
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  PostgresDialect,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
  sql,
} from 'kysely';
import type { Database } from './schema.js';
import type { Storage } from './index.js';
import { migrateToLatest } from './migrations.js';
import { cachingStatements, openSqliteFile } from './sqlite.js';

/**
 * Kysely's SQLite driver, with transactions that take the write lock at BEGIN. The usage
 * writer commits from its own connection (a worker thread): a deferred transaction that read
 * before that commit and writes after it would fail at once with SQLITE_BUSY_SNAPSHOT, while
 * BEGIN IMMEDIATE waits for the lock (busy_timeout) and then reads the newest data.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  constructor(config: SqliteDialectConfig) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
}

export interface OpenOptions {
  databaseUrl?: string | undefined;
  dataDir: string;
  /** PostgreSQL schema to use (tests isolate themselves in one each). */
  pgSchema?: string;
  /** Stop migrating after this migration (tests of a later one's upgrade path). */
  migrateUpTo?: string;
  /**
   * PostgreSQL: how long a query may wait for its answer, and a request for a pooled
   * connection, before it fails (a stalled server or a link that drops packets); unset or 0 =
   * no limit. Migrations run without it: a large table's may rightly take longer.
   */
  queryTimeoutMs?: number;
  /**
   * A pooled PostgreSQL connection failed (the server restarted, or the network cut it): the
   * pool drops it and connects anew when asked; a query running on it fails with the error.
   * Unheard, the error would end the process.
   */
  onConnectionError?: (err: Error) => void;
  /** PostgreSQL: connections in the pool (default 10); each instance holds up to this many. */
  poolSize?: number;
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

/**
 * Migrates to the latest (or `upTo`) migration, trying again on a transient PostgreSQL catalog
 * race (isTransientMigrationFailure).
 */
export async function migrateRetrying(
  db: Kysely<Database>,
  dialect: Storage['dialect'],
  schema: string | undefined,
  upTo?: string,
): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrateToLatest(db, dialect, schema, upTo);
    } catch (err) {
      // Seen only with many per-test schemas under heavy parallel load: the migrator's first
      // look missed a schema created a moment before, or its look at every schema's tables (and
      // their columns) met a table another schema was creating or dropping ("relation … does
      // not exist", "column … of relation … does not exist", before any migration of ours ran:
      // the message names none). Migrations are idempotent and a failed PostgreSQL run rolls
      // back whole: look again, a few times.
      if (!schema || !isTransientMigrationFailure(err) || attempt === 3) throw err;
      await new Promise((r) => setTimeout(r, 200 * attempt));
      await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(schema)}`.execute(db);
    }
  }
}

export async function openStorage(opts: OpenOptions): Promise<Storage> {
  if (opts.databaseUrl) {
    const schema = opts.pgSchema;
    if (schema && !/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error('invalid schema name');
    const databaseUrl = opts.databaseUrl;
    // Loaded here, not at start: a gateway on SQLite never needs it (~0.1 s of CPU to load).
    const { default: pg } = await import('./pg.js');
    const heard = (err: Error) => opts.onConnectionError?.(err);
    const open = (max: number, timeoutMs?: number) => {
      // The schema is part of every connection's startup options, so no query can run before it applies.
      const pool = new pg.Pool({
        connectionString: databaseUrl,
        max,
        ...(schema ? { options: `-c search_path=${schema}` } : {}),
        ...(timeoutMs
          ? { query_timeout: timeoutMs, connectionTimeoutMillis: timeoutMs, keepAlive: true }
          : {}),
      });
      // An idle connection's failure is the pool's 'error'; one checked out (a query or a
      // transaction running on it) emits 'error' on the client itself, which the pool does not
      // listen to while it is out.
      pool.on('error', heard);
      pool.on('connect', (client) => client.on('error', heard));
      // A new connection the server refuses (too many clients, a role's connection limit, a
      // wrong password) fails the query that asked for it, and the pool emits nothing: heard here.
      const connect = pool.connect.bind(pool) as (cb?: unknown) => Promise<unknown> | undefined;
      pool.connect = ((cb?: unknown) =>
        cb !== undefined
          ? connect(cb)
          : connect()!.catch((err: Error) => {
              heard(err);
              throw err;
            })) as typeof pool.connect;
      return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    };
    // Migrations on a connection of their own, without the query timeout.
    const migrator = open(3);
    let newerMigrations: string[];
    try {
      if (schema) await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(schema)}`.execute(migrator);
      newerMigrations = await migrateRetrying(
        migrator,
        'postgres',
        await migrationSchemaOf(migrator, schema),
        opts.migrateUpTo,
      );
    } finally {
      await migrator.destroy();
    }
    const db = open(opts.poolSize ?? 10, opts.queryTimeoutMs);
    return { db, dialect: 'postgres', newerMigrations, close: () => db.destroy() };
  }
  fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(opts.dataDir, 'mole.sqlite');
  const db = new Kysely<Database>({
    dialect: new ImmediateSqliteDialect({ database: cachingStatements(openSqliteFile(file)) }),
  });
  const newerMigrations = await migrateRetrying(db, 'sqlite', undefined, opts.migrateUpTo);
  return { db, dialect: 'sqlite', sqliteFile: file, newerMigrations, close: () => db.destroy() };
}

/**
 * The schema PostgreSQL migrations are told: always given, as left to itself the migrator
 * takes a kysely_migration table in ANY schema of the database (another app's, a leftover) for
 * its own, then fails to find it on the search path.
 */
async function migrationSchemaOf(db: Kysely<Database>, schema: string | undefined): Promise<string> {
  return (
    schema ?? (await sql<{ schema: string }>`SELECT current_schema() AS schema`.execute(db)).rows[0]!.schema
  );
}
