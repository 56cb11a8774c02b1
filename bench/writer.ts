/**
 * The call-log writer's CPU per row: `enqueue` (storable copy + journal append, group commit)
 * and the batch (log insert, rollups, the ledger's spend, keys' last use) on a temp SQLite
 * data dir, with the real writer, journal, keys, accounts and local ledger.
 *
 *   npx tsx bench/writer.ts [--rows 40000] [--batch 800] [--in-flight 50] [--keys 4] [--rounds 3]
 *
 * Rows arrive `--in-flight` at a time; the writer's batch runs every `--batch` rows (about
 * what a 200 ms flush interval sees at 4,000 requests/s). CPU is process.cpuUsage() (user +
 * system, libuv's pool included: the journal's fdatasync). Prints one line per round and the
 * best round; on a shared machine compare runs taken minutes apart with care.
 */
import fs from 'node:fs';
import path from 'node:path';
import { numArg } from './lib/args.js';
import { createUsageWriter } from '../src/usage/writer.js';
import { openJournal } from '../src/usage/journal.js';
import { benchLogRow } from '../test/helpers/log-row.js';
import { ledgerWorld, silentLogger } from '../test/helpers/ledger-world.js';

const ROWS = numArg('--rows', 40_000);
const BATCH = numArg('--batch', 800);
const IN_FLIGHT = numArg('--in-flight', 50);
const KEYS = numArg('--keys', 4);
const ROUNDS = numArg('--rounds', 3);
const logger = silentLogger;
const cpuUs = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};

async function round(n: number) {
  const { dir, storage, accounts, keys, ledger } = await ledgerWorld('mole-bench-writer-');
  const ids: Array<{ keyId: number; userId: number }> = [];
  for (let k = 0; k < KEYS; k++) {
    const user = await accounts.createUser({
      username: `bench${k}`,
      password: 'password-123',
      role: 'user',
      group: 'default',
      balanceNano: 1e15,
    });
    const { row: key } = await keys.create(Number(user.id), { name: `k${k}` });
    ids.push({ keyId: Number(key.id), userId: Number(user.id) });
  }
  const lastUse = new Map<number, { at: number; ip: string }>();
  const writer = createUsageWriter({
    db: storage.db,
    dialect: storage.dialect,
    logger,
    intervalMs: 60_000,
    contributors: [
      ledger.flushInto,
      async (trx) => {
        const uses = new Map(lastUse);
        lastUse.clear();
        await keys.recordLastUse(trx, uses);
      },
    ],
    journal: openJournal({ dir: path.join(dir, 'journal'), sync: 'always' }),
  });

  const row = (i: number) => {
    const id = ids[i % ids.length]!;
    lastUse.set(id.keyId, { at: Date.now(), ip: '127.0.0.1' });
    return benchLogRow(i, {
      user_id: id.userId,
      key_id: id.keyId,
      key_name: 'bench key',
      ttft_ms: 2,
    });
  };

  let next = 0;
  let batchCpu = 0;
  let sinceFlush = 0;
  let flushing: Promise<void> = Promise.resolve();
  const t0 = cpuUs();
  const w0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < ROWS) {
        await writer.enqueue(row(next++));
        if (++sinceFlush >= BATCH) {
          sinceFlush = 0;
          // The batch runs on this thread (SQLite): its CPU is what the clock sees meanwhile.
          await flushing;
          const c = cpuUs();
          flushing = writer.flush().then(() => {
            batchCpu += cpuUs() - c;
          });
        }
      }
    }),
  );
  await flushing;
  const c = cpuUs();
  await writer.flush();
  batchCpu += cpuUs() - c;
  const total = cpuUs() - t0;
  const wall = performance.now() - w0;
  const st = writer.stats();
  const logged = await storage.db
    .selectFrom('logs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  if (Number(logged.n) !== ROWS) throw new Error(`logged ${logged.n} of ${ROWS} rows`);
  await writer.close();
  await storage.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const r = {
    round: n,
    cpuPerRow: total / ROWS,
    batchPerRow: batchCpu / ROWS,
    wallPerRow: (wall * 1000) / ROWS,
    batches: st.batches,
    syncs: st.journal?.syncs ?? 0,
  };
  console.log(
    `round ${r.round}: CPU ${r.cpuPerRow.toFixed(1)} µs/row (batch ${r.batchPerRow.toFixed(1)}), ` +
      `wall ${r.wallPerRow.toFixed(1)} µs/row, ${r.batches} batches, ${r.syncs} group commits`,
  );
  return r;
}

console.log(`${ROWS} rows, batch every ${BATCH}, ${IN_FLIGHT} in flight, ${KEYS} keys`);
const results = [];
for (let i = 1; i <= ROUNDS; i++) results.push(await round(i));
const best = results.reduce((a, b) => (b.cpuPerRow < a.cpuPerRow ? b : a));
console.log(
  `best: CPU ${best.cpuPerRow.toFixed(1)} µs/row, batch ${Math.min(...results.map((r) => r.batchPerRow)).toFixed(1)} µs/row`,
);
