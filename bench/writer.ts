/**
 * The call-log writer's CPU per row: `enqueue` (storable copy + journal append, group commit)
 * and the batch (log insert, rollups, the ledger's spend, keys' last use) on a temp SQLite
 * data dir, with the real writer, journal, keys, accounts and local ledger.
 *
 *   npx tsx bench/writer.ts [--rows 40000] [--batch 800] [--in-flight 50] [--keys 4] [--rounds 3]
 *                           [--paths worker,thread]
 *
 * Rows arrive `--in-flight` at a time; the writer's batch runs every `--batch` rows (about
 * what a 200 ms flush interval sees at 4,000 requests/s). Each round runs every path in
 * `--paths`: `worker` writes batches in the writer's worker thread (the gateway on SQLite),
 * `thread` on the main thread's connection (as before issue 12's worker; PostgreSQL's shape).
 * CPU: `process` is process.cpuUsage() (user + system, every thread: the worker, libuv's pool
 * and the journal's fdatasync included); `main` is the main thread's alone (Linux /proc), what
 * bounds the gateway's throughput. Prints one line per round and path, then the best of each;
 * on a shared machine compare paths within one run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { argOf, numArg } from './lib/args.js';
import { createUsageWriter } from '../src/usage/writer.js';
import { openJournal } from '../src/usage/journal.js';
import { benchLogRow } from '../test/helpers/log-row.js';
import { ledgerWorld, silentLogger } from '../test/helpers/ledger-world.js';

const ROWS = numArg('--rows', 40_000);
const BATCH = numArg('--batch', 800);
const IN_FLIGHT = numArg('--in-flight', 50);
const KEYS = numArg('--keys', 4);
const ROUNDS = numArg('--rounds', 3);
const PATHS = (argOf('--paths') ?? 'worker,thread').split(',') as Array<'worker' | 'thread'>;
const logger = silentLogger;
const cpuUs = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};
/** The main thread's CPU (user + system) in µs, from /proc in clock ticks of 10 ms (Linux). */
const mainCpuUs = () => {
  const stat = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
};

async function round(n: number, via: 'worker' | 'thread') {
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
    sqliteFile: via === 'worker' ? storage.sqliteFile : undefined,
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

  // Unmeasured: a few batches start the worker thread and warm both threads' code, as a
  // gateway that has been serving for a while has.
  for (let b = 0; b < 5; b++) {
    await Promise.all(Array.from({ length: BATCH }, (_, i) => writer.enqueue(row(ROWS + b * BATCH + i))));
    await writer.flush();
  }
  const warm = writer.stats();
  let next = 0;
  let sinceFlush = 0;
  let flushing: Promise<void> = Promise.resolve();
  const t0 = cpuUs();
  const m0 = mainCpuUs();
  const w0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < ROWS) {
        await writer.enqueue(row(next++));
        if (++sinceFlush >= BATCH) {
          sinceFlush = 0;
          await flushing;
          flushing = writer.flush();
        }
      }
    }),
  );
  await flushing;
  await writer.flush();
  const total = cpuUs() - t0;
  const main = mainCpuUs() - m0;
  const wall = performance.now() - w0;
  const st = writer.stats();
  const logged = await storage.db
    .selectFrom('logs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  if (Number(logged.n) !== ROWS + 5 * BATCH) throw new Error(`logged ${logged.n} of ${ROWS} rows`);
  await writer.close();
  await storage.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const r = {
    round: n,
    via,
    cpuPerRow: total / ROWS,
    mainPerRow: main / ROWS,
    wallPerRow: (wall * 1000) / ROWS,
    batches: st.batches - warm.batches,
    syncs: (st.journal?.syncs ?? 0) - (warm.journal?.syncs ?? 0),
  };
  console.log(
    `round ${r.round} ${via.padEnd(6)}: CPU process ${r.cpuPerRow.toFixed(1)} µs/row, main thread ` +
      `${r.mainPerRow.toFixed(1)}, wall ${r.wallPerRow.toFixed(1)} µs/row, ${r.batches} batches, ` +
      `${r.syncs} group commits`,
  );
  return r;
}

console.log(`${ROWS} rows, batch every ${BATCH}, ${IN_FLIGHT} in flight, ${KEYS} keys`);
const results: Array<Awaited<ReturnType<typeof round>>> = [];
for (let i = 1; i <= ROUNDS; i++) for (const via of PATHS) results.push(await round(i, via));
for (const via of PATHS) {
  const mine = results.filter((r) => r.via === via);
  const best = (f: (r: (typeof mine)[number]) => number) => Math.min(...mine.map(f)).toFixed(1);
  console.log(
    `best ${via.padEnd(6)}: CPU process ${best((r) => r.cpuPerRow)} µs/row, main thread ${best((r) => r.mainPerRow)} µs/row`,
  );
}
