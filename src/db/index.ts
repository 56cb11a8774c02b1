// The database as every domain sees it: one Kysely over the schema in schema.ts, on SQLite
// or PostgreSQL. Opening it (and migrating) is open.ts, so this file imports no code.
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';
export type Db = Kysely<Database>;

/**
 * Work done inside a change's transaction, after the change and before the commit (the audit
 * row): when it throws, the change is undone.
 */
export type OnChange<T> = (trx: Db, result: T) => Promise<void>;

export interface Storage {
  db: Db;
  dialect: Dialect;
  /** SQLite: the database file (the usage writer opens its own connection to it). */
  sqliteFile?: string;
  /** Migrations a newer release applied, unknown to this one (a rolling upgrade under way). */
  newerMigrations?: string[];
  close(): Promise<void>;
}
