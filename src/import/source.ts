// Read-only access to a new-api / one-api database: a SQLite file (opened read-only), MySQL /
// MariaDB (mysql2) or PostgreSQL (pg). The importer reads whole tables in pages ordered by id,
// with `SELECT *` so that columns added or missing across versions are simply present or not.
import fs from 'node:fs';
import SQLite from 'better-sqlite3';
import mysql from 'mysql2/promise';
// With the gateway's number parsing, as the importer has always read PostgreSQL sources.
import pg from '../db/pg.js';

export type Row = Record<string, unknown>;

export interface SourceDb {
  kind: 'sqlite' | 'mysql' | 'postgres';
  /** Column names of a table; empty when the table does not exist. */
  columns(table: string): Promise<Set<string>>;
  count(table: string): Promise<number>;
  /** Rows with id > `after`, by id, at most `limit`. */
  page(table: string, after: number, limit: number): Promise<Row[]>;
  all(table: string): Promise<Row[]>;
  close(): Promise<void>;
}

/** What --from names: a mysql:// or postgres:// URL, else a SQLite file. */
export function sourceKind(from: string): SourceDb['kind'] {
  if (/^(mysql|mariadb):\/\//i.test(from)) return 'mysql';
  if (/^postgres(ql)?:\/\//i.test(from)) return 'postgres';
  return 'sqlite';
}

/** A connection string without its password, for messages. */
export const redactUrl = (from: string) => from.replace(/^([a-z]+:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');

const TABLE = /^[a-z_]+$/;
const checkTable = (t: string) => {
  if (!TABLE.test(t)) throw new Error(`bad table name ${t}`);
  return t;
};

/** What differs between the dialects' SQL: the table quote, the placeholders, the columns query. */
const DIALECTS: Record<SourceDb['kind'], { quote: string; params: [string, string]; columnsSql: string }> = {
  sqlite: { quote: '"', params: ['?', '?'], columnsSql: 'SELECT name AS c FROM pragma_table_info(?)' },
  mysql: {
    quote: '`',
    params: ['?', '?'],
    columnsSql:
      'SELECT column_name AS c FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?',
  },
  postgres: {
    quote: '"',
    params: ['$1', '$2'],
    columnsSql:
      'SELECT column_name AS c FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1',
  },
};

interface Connection {
  /** Runs a query with its parameters bound in order. */
  rows(sql: string, params?: unknown[]): Promise<Row[]>;
  close(): Promise<void>;
}

async function connect(kind: SourceDb['kind'], from: string): Promise<Connection> {
  if (kind === 'sqlite') {
    if (!fs.existsSync(from)) throw new Error(`no such SQLite file: ${from}`);
    const db = new SQLite(from, { readonly: true, fileMustExist: true });
    return {
      rows: async (sql, params = []) => db.prepare(sql).all(...params) as Row[],
      async close() {
        db.close();
      },
    };
  }
  if (kind === 'mysql') {
    const conn = await mysql.createConnection({
      uri: from.replace(/^mariadb:/i, 'mysql:'),
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: false,
    });
    conn.on('error', () => {}); // as for PostgreSQL below
    return {
      rows: async (sql, params = []) => (await conn.query(sql, params))[0] as Row[],
      close: () => conn.end(),
    };
  }
  const client = new pg.Client({ connectionString: from });
  // A connection lost between queries is an 'error' event, which unheard would end the import
  // with a stack trace; the next query then fails, and the import reports it.
  client.on('error', () => {});
  await client.connect();
  return {
    rows: async (sql, params = []) => (await client.query(sql, params)).rows as Row[],
    close: () => client.end(),
  };
}

export async function openSource(from: string): Promise<SourceDb> {
  const kind = sourceKind(from);
  const { rows, close } = await connect(kind, from);
  const { quote, params, columnsSql } = DIALECTS[kind];
  const q = (t: string) => `${quote}${checkTable(t)}${quote}`;
  return {
    kind,
    async columns(t) {
      const r = await rows(columnsSql, [checkTable(t)]);
      return new Set(r.map((x) => String(x.c ?? x.C ?? x.COLUMN_NAME)));
    },
    async count(t) {
      return Number((await rows(`SELECT COUNT(*) AS n FROM ${q(t)}`))[0]!.n);
    },
    page: (t, after, limit) =>
      rows(`SELECT * FROM ${q(t)} WHERE id > ${params[0]} ORDER BY id LIMIT ${params[1]}`, [after, limit]),
    all: (t) => rows(`SELECT * FROM ${q(t)}`),
    close,
  };
}
