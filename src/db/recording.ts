// A Db that runs nothing: each query is compiled for SQLite and recorded (text + parameters),
// and answered with no rows. The usage writer hands it to its contributors on SQLite, then
// sends what they recorded to its worker thread to run inside the batch's transaction
// (usage/writer.ts). A contributor only writes there (relative counter moves, last-use
// times): a query whose result it would need (a select, a `returning`) cannot be answered, and
// is refused loudly instead of being answered wrong.
import {
  type DatabaseConnection,
  type Driver,
  Kysely,
  type QueryResult,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely';
import type { Db } from './index.js';
import type { Database } from './schema.js';

/** One recorded statement, as the driver would have run it. */
export interface RecordedStatement {
  sql: string;
  parameters: readonly unknown[];
}

const WRITE = /^\s*(insert|update|delete)\b/i;
const RETURNING = /\breturning\b/i;

export function recordingDb(): { db: Db; statements: RecordedStatement[] } {
  const statements: RecordedStatement[] = [];
  const refuse = (what: string) => {
    throw new Error(`recording db: ${what} (a usage writer contributor only writes; it gets no results)`);
  };
  const connection: DatabaseConnection = {
    async executeQuery<R>(q: { sql: string; parameters: readonly unknown[] }): Promise<QueryResult<R>> {
      if (!WRITE.test(q.sql) || RETURNING.test(q.sql))
        refuse(`refused a query that answers rows: ${q.sql.slice(0, 80)}`);
      statements.push({ sql: q.sql, parameters: q.parameters });
      return { rows: [] };
    },
    streamQuery: () => refuse('refused a streamed query'),
  };
  const driver: Driver = {
    init: async () => {},
    acquireConnection: async () => connection,
    // The batch is the transaction: a contributor's statements already commit all or nothing.
    beginTransaction: async () => refuse('refused a transaction of its own'),
    commitTransaction: async () => {},
    rollbackTransaction: async () => {},
    releaseConnection: async () => {},
    destroy: async () => {},
  };
  const db = new Kysely<Database>({
    dialect: {
      createAdapter: () => new SqliteAdapter(),
      createDriver: () => driver,
      createIntrospector: (k) => new SqliteIntrospector(k),
      createQueryCompiler: () => new SqliteQueryCompiler(),
    },
  });
  return { db, statements };
}
