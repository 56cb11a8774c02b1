/**
 * How long one usage batch takes to write on PostgreSQL as the number of keys in it grows:
 * 1,000 log rows spread over 1, 100 and 1,000 keys (and as many accounts), through the real
 * usage writer of an in-process gateway (test/helpers/server.ts), spend, balances, rollups and
 * last-use times included. A batch should stay well inside MOLE_FLUSH_INTERVAL_MS (200 ms).
 *
 *   PG=postgres://postgres@127.0.0.1:5432/test npx tsx bench/pg-batch.ts [--rows 1000] [--rounds 3]
 *
 * The rows name key and account ids that need not exist: the updates then touch no row, but
 * every statement and round trip is made as for real ones.
 */
import { logRow } from '../test/helpers/log-row.js';
import { startTestServer } from '../test/helpers/server.js';
import { numArg } from './lib/args.js';

const ROWS = numArg('--rows', 1000);
const ROUNDS = numArg('--rounds', 3);
const url = process.env.PG;
if (!url) throw new Error('PG=postgres://… is required');
process.env.MOLE_TEST_PG_URL = url;

const s = await startTestServer({ backend: 'postgres' });
try {
  const writer = s.services.usageWriter;
  for (let round = 1; round <= ROUNDS; round++)
    for (const keys of [1, 100, 1000]) {
      const rows = Array.from({ length: ROWS }, (_, i) =>
        logRow({ user_id: 1 + (i % keys), key_id: 1 + (i % keys), cost_nano: 1000, ip: `10.0.0.${i % 250}` }),
      );
      for (const r of rows) s.services.verifier.touch(r.key_id, r.ip!, r.created_at);
      await Promise.all(rows.map((r) => writer.enqueue(r)));
      const t = performance.now();
      await writer.flush();
      console.log(
        `round ${round}: ${ROWS} rows over ${keys} keys: batch ${(performance.now() - t).toFixed(1)} ms`,
      );
    }
} finally {
  await s.close();
}
