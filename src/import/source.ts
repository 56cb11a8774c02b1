// Read-only access to a new-api / one-api database: a SQLite file (opened read-only), MySQL /
// MariaDB (mysql2) or PostgreSQL (pg). The importer reads whole tables in pages ordered by id,
// with `SELECT *` so that columns added or missing across versions are simply present or not.
import fs from 'node:fs';
import SQLite from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';

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

/** One open connection, as the source is built from it. */
interface Connection {
  kind: SourceDb['kind'];
  /** Runs a query with its parameters bound in order. */
  rows(sql: string, params?: unknown[]): Promise<Row[]>;
  /** How the dialect quotes a table name, and spells the two parameters of `page`. */
  quote: string;
  pageParams: [after: string, limit: string];
  columns: SourceDb['columns'];
  close(): Promise<void>;
}

function sourceOver(c: Connection): SourceDb {
  const q = (t: string) => `${c.quote}${checkTable(t)}${c.quote}`;
  const [after, limit] = c.pageParams;
  return {
    kind: c.kind,
    columns: c.columns,
    async count(t) {
      return Number((await c.rows(`SELECT COUNT(*) AS n FROM ${q(t)}`))[0]!.n);
    },
    page: (t, a, l) => c.rows(`SELECT * FROM ${q(t)} WHERE id > ${after} ORDER BY id LIMIT ${limit}`, [a, l]),
    all: (t) => c.rows(`SELECT * FROM ${q(t)}`),
    close: c.close,
  };
}

export async function openSource(from: string): Promise<SourceDb> {
  const kind = sourceKind(from);
  if (kind === 'sqlite') {
    if (!fs.existsSync(from)) throw new Error(`no such SQLite file: ${from}`);
    const db = new SQLite(from, { readonly: true, fileMustExist: true });
    const rows = async (sql: string, params: unknown[] = []) => db.prepare(sql).all(...params) as Row[];
    return sourceOver({
      kind,
      rows,
      quote: '"',
      pageParams: ['?', '?'],
      async columns(t) {
        const r = await rows(`PRAGMA table_info("${checkTable(t)}")`);
        return new Set(r.map((x) => String(x.name)));
      },
      async close() {
        db.close();
      },
    });
  }
  if (kind === 'mysql') {
    const conn = await mysql.createConnection({
      uri: from.replace(/^mariadb:/i, 'mysql:'),
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: false,
    });
    const rows = async (sql: string, params: unknown[] = []) => (await conn.query(sql, params))[0] as Row[];
    return sourceOver({
      kind,
      rows,
      quote: '`',
      pageParams: ['?', '?'],
      async columns(t) {
        const r = await rows(
          'SELECT column_name AS c FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?',
          [checkTable(t)],
        );
        return new Set(r.map((x) => String(x.c ?? x.C ?? x.COLUMN_NAME)));
      },
      close: () => conn.end(),
    });
  }
  const client = new pg.Client({ connectionString: from });
  await client.connect();
  const rows = async (sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows as Row[];
  return sourceOver({
    kind,
    rows,
    quote: '"',
    pageParams: ['$1', '$2'],
    async columns(t) {
      const r = await rows(
        'SELECT column_name AS c FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1',
        [checkTable(t)],
      );
      return new Set(r.map((x) => String(x.c)));
    },
    close: () => client.end(),
  });
}
