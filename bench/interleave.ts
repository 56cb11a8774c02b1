/**
 * `npm run bench`'s rotation at 50 connections, window by window: which windows are slow, and
 * whether the gateway or the machine made them so. Each window is `measure()` (bench/lib/load.ts),
 * as in the full run; for MoleAPI it adds what V8's collectors took in that window (from its
 * `/metrics`), and with --tail the machine's busy cores every 250 ms for 4 s after every window
 * (does one target's work reach into the next one's window?).
 *
 *   npx tsx bench/interleave.ts [--rounds 8] [--seconds 4] [--tail] [--portkey]
 *   BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… npx tsx bench/interleave.ts
 *
 * Targets: the floor (bench/bare-proxy.mjs) and MoleAPI on SQLite, plus MoleAPI on PostgreSQL
 * (+ Redis) when BENCH_DATABASE_URL is set and Portkey with --portkey (npm run bench:install).
 * Prints one line a window; writes nothing.
 */
import { flag, numArg } from './lib/args.js';
import { measure, SCENARIOS, warm } from './lib/load.js';
import { pgEnv, pgSchema } from './lib/pg-schema.js';
import { machineCpuMicros } from './lib/proc.js';
import { buildMole, startBare, startMock, startMole, startPortkey, type Target } from './lib/targets.js';

const ROUNDS = numArg('--rounds', 8);
const SECONDS = numArg('--seconds', 4);
const TAIL = flag('--tail');

const main = await buildMole();
const mock = await startMock();
const targets: Target[] = [await startBare(mock.url), await startMole({ main, mockUrl: mock.url })];
const db = process.env.BENCH_DATABASE_URL ? await pgSchema(process.env.BENCH_DATABASE_URL) : null;
if (db) {
  const name = process.env.BENCH_REDIS_URL ? 'mole-pg-redis' : 'mole-pg';
  targets.push(
    await startMole({ main, mockUrl: mock.url, name, env: pgEnv(db.url, process.env.BENCH_REDIS_URL) }),
  );
}
if (flag('--portkey')) targets.push(await startPortkey(mock.url));

/** Seconds V8's collectors took so far, by kind (prom-client's default GC histogram). */
async function gcSeconds(t: Target): Promise<Map<string, number>> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum\{kind="(\w+)"\} (\S+)$/gm))
    out.set(m[1]!, Number(m[2]));
  return out;
}

/** Busy cores in each 250 ms of the 4 s after a window. */
async function tail(): Promise<string> {
  const busy: string[] = [];
  let before = machineCpuMicros();
  for (let i = 0; i < 16; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const now = machineCpuMicros();
    busy.push(((now - before) / 250_000).toFixed(2));
    before = now;
  }
  return busy.join(' ');
}

try {
  const scenarios = SCENARIOS.filter((s) => s.id === 'plain-c50' || s.id === 'stream-c50');
  for (const s of scenarios) for (const t of targets) await warm(t, s, 2);
  for (let round = 1; round <= ROUNDS; round++)
    for (const s of scenarios) {
      // Rotated each round, as in bench/run.ts.
      const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]!);
      for (const t of order) {
        const isMole = t.name.startsWith('mole');
        const gc0 = isMole ? await gcSeconds(t) : null;
        const m = await measure(t, s, round, SECONDS, mock.pid);
        const gc1 = isMole ? await gcSeconds(t) : null;
        const gc = gc1
          ? [...gc1]
              .map(([kind, sec]) => `${kind} ${Math.round((sec - (gc0!.get(kind) ?? 0)) * 1000)} ms`)
              .join(', ')
          : '';
        const line = [
          `r${round}`,
          s.id.padEnd(10),
          t.name.padEnd(14),
          `${Math.round(m.rps)} req/s`.padStart(11),
          `main ${m.serverMainCpuUsPerReq.toFixed(0)} µs/req`,
          `process ${m.serverCpuUsPerReq.toFixed(0)}`,
          `machine ${m.machineCpuUsPerReq.toFixed(0)}`,
          gc && `GC: ${gc}`,
        ];
        console.log(line.filter(Boolean).join('  '));
        if (TAIL) console.log(`   busy cores after: ${await tail()}`);
      }
    }
} finally {
  for (const t of targets) await t.server.stop();
  await mock.stop();
  await db?.drop();
}
