// Sees every query a running test server's Kysely instance runs (outside transactions): for
// suites that prove a hot path does no database round trip, or how SQLite plans a statement.
import { CompiledQuery } from 'kysely';
import type { TestServer } from './server.js';

export function countQueries(s: TestServer) {
  const executor = s.services.storage.db.getExecutor() as {
    executeQuery: (q: CompiledQuery, ...a: unknown[]) => Promise<unknown>;
  };
  const original = executor.executeQuery;
  /** The SQL text of each query, in order. */
  const seen: string[] = [];
  /** The queries themselves, with their parameters. */
  const queries: CompiledQuery[] = [];
  executor.executeQuery = function (this: unknown, q: CompiledQuery, ...a: unknown[]) {
    seen.push(String(q?.sql ?? ''));
    queries.push(q);
    return original.call(this, q, ...a);
  };
  return {
    seen,
    queries,
    restore: () => {
      executor.executeQuery = original;
    },
  };
}

/** SQLite's plan for a query the server ran (EXPLAIN QUERY PLAN), one step a line. */
export async function sqlitePlan(s: TestServer, q: CompiledQuery): Promise<string> {
  const plan = await s.services.storage.db.executeQuery<{ detail: string }>(
    CompiledQuery.raw(`EXPLAIN QUERY PLAN ${q.sql}`, [...q.parameters]),
  );
  return plan.rows.map((p) => p.detail).join('\n');
}
