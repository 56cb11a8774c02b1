// Sees every query a running test server's Kysely instance runs (outside transactions): for
// suites that prove a hot path does no database round trip.
import type { TestServer } from './server.js';

export function countQueries(s: TestServer) {
  const executor = s.services.storage.db.getExecutor() as {
    executeQuery: (...a: unknown[]) => Promise<unknown>;
  };
  const original = executor.executeQuery;
  const seen: string[] = [];
  executor.executeQuery = function (this: unknown, ...args: unknown[]) {
    seen.push(String((args[0] as { sql?: string })?.sql ?? ''));
    return original.apply(this, args);
  };
  return {
    seen,
    restore: () => {
      executor.executeQuery = original;
    },
  };
}
