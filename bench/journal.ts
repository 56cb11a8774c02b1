// The usage journal's cost on the hot path: how long `usageWriter.enqueue` takes to resolve
// (the row durable, so the relay may release the answer) at a given number of requests in
// flight, in each MOLE_JOURNAL_FSYNC mode (always: fdatasync group commit; interval, the
// default: write, fdatasync in the background; never: write only) and without a journal (the
// old, memory-only behaviour). Real writer, real SQLite, temp dir.
//
//   npx tsx bench/journal.ts [--rows 20000]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { openStorage } from '../src/db/open.js';
import { createUsageWriter } from '../src/usage/writer.js';
import { type JournalSync, openJournal } from '../src/usage/journal.js';
import { benchLogRow } from '../test/helpers/log-row.js';

const ROWS = Number(process.argv[process.argv.indexOf('--rows') + 1]) || 20_000;
const logger = pino({ level: 'silent' });

const row = (i: number) =>
  benchLogRow(i, {
    request_id: `req_bench_${i}_${Math.random().toString(36).slice(2)}`,
    user_id: 1,
    key_id: 1,
  });

const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;

async function run(mode: JournalSync | 'none', inFlight: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-bench-journal-'));
  const storage = await openStorage({ dataDir: dir });
  const writer = createUsageWriter({
    db: storage.db,
    dialect: storage.dialect,
    logger,
    intervalMs: 200,
    contributors: [],
    journal: mode === 'none' ? null : openJournal({ dir: path.join(dir, 'journal'), sync: mode }),
  });
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < ROWS) {
        const i = next++;
        const t = performance.now();
        await writer.enqueue(row(i));
        lat.push(performance.now() - t);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const { writes = 0, syncs = 0 } = writer.stats().journal ?? {};
  await writer.close();
  await storage.close();
  fs.rmSync(dir, { recursive: true, force: true });
  lat.sort((a, b) => a - b);
  return {
    mode,
    inFlight,
    rowsPerSec: Math.round(ROWS / secs),
    p50: pct(lat, 50),
    p99: pct(lat, 99),
    writes,
    syncs,
  };
}

const out: string[] = [
  '| journal | in flight | rows/s | enqueue p50 ms | p99 ms | group commits | fdatasyncs |',
  '| --- | --- | --- | --- | --- | --- | --- |',
];
for (const inFlight of [1, 64, 512])
  for (const mode of ['none', 'never', 'interval', 'always'] as const) {
    const r = await run(mode, inFlight);
    out.push(
      `| ${r.mode} | ${r.inFlight} | ${r.rowsPerSec} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.writes} | ${r.syncs} |`,
    );
    console.error(out[out.length - 1]);
  }
console.log(out.join('\n'));
