/**
 * `npm run bench` — MoleAPI against the floor (a bare pass-through proxy) and a peer
 * (Portkey's open-source gateway), in one interleaved run, plus micro and scale numbers.
 * See bench/README.md for what every number means.
 *
 *   npm run bench                      full run (~8–10 min on 2 cores)
 *   npm run bench -- --quick           smoke run: 2 s × 2 rounds, small scale numbers
 *   npm run bench -- --duration 5 --rounds 3 --skip-scale --skip-streams --skip-portkey
 *   BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… npm run bench   adds "mole-pg"
 *
 *   npm run bench -- --streams-portkey also runs the slow-streams test through Portkey
 *   npm run bench -- --render bench/results/<time>.json   re-render a run's report (no measuring)
 *
 * Everything listens on and talks to 127.0.0.1 only (Portkey binds every interface on its
 * port; it only ever receives loopback traffic from us).
 */
import {
  copyFileSync,
  existsSync,
  writeFileSync,
  readFileSync,
  readdirSync,
  mkdirSync,
  rmSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import {
  BENCH_DIR,
  PORTKEY_ENTRY,
  SHARED_FLOOR,
  START_NODE_FLAGS,
  REPO,
  buildMole,
  directTarget,
  moleUsage,
  startBare,
  startMock,
  startMole,
  startPortkey,
  type Target,
} from './lib/targets.js';
import { memory, runToEnd, type Server } from './lib/proc.js';
import {
  SCENARIOS,
  bodyFor,
  headersFor,
  measure,
  runs,
  scenarioPath,
  verifierFor,
  warm,
  type Measurement,
} from './lib/load.js';
import { slowStreams, type SlowStreamResult } from './lib/slow-streams.js';
import { headlineTable, renderMarkdown, summarize, type RunResult } from './lib/report.js';
import { argv, flag, numArg } from './lib/args.js';
import { pgEnv, pgSchema } from './lib/pg-schema.js';

// ── options ──────────────────────────────────────────────────────────────────────────────
const quick = flag('--quick');
const opts = {
  duration: numArg('--duration', quick ? 2 : 4),
  rounds: numArg('--rounds', quick ? 2 : 5),
  warmup: numArg('--warmup', quick ? 1 : 2),
  portkey: !flag('--skip-portkey'),
  streams: !flag('--skip-streams'),
  scale: !flag('--skip-scale'),
  longStreams: !flag('--skip-long-streams'),
  sharedFloor: !flag('--skip-shared-floor'),
  streamClients: numArg('--stream-clients', quick ? 500 : 5000),
  streamChunkDelayMs: numArg('--stream-chunk-delay', quick ? 1000 : 4000),
  streamTokens: numArg('--stream-tokens', 4),
  streamRampPerSec: numArg('--stream-ramp', 500),
  streamsPortkey: flag('--streams-portkey'),
  streamLimitMs: numArg('--stream-limit-ms', quick ? 15_000 : 50_000),
  scaleKeys: numArg('--keys', quick ? 20_000 : 1_000_000),
  scaleLogs: numArg('--logs', quick ? 50_000 : 1_000_000),
  /** Only these load scenarios (comma-separated ids), e.g. for a quick before/after. */
  scenarios: argv.includes('--scenarios') ? argv[argv.indexOf('--scenarios') + 1]!.split(',') : null,
};
if (opts.rounds < 1 || opts.duration < 1) throw new Error('--rounds and --duration must be ≥ 1');
const scenarios = SCENARIOS.filter((s) => !opts.scenarios || opts.scenarios.includes(s.id));
if (scenarios.length === 0)
  throw new Error(`--scenarios names none of ${SCENARIOS.map((s) => s.id).join(', ')}`);

const started = new Date();
const stamp = started
  .toISOString()
  .replace(/[:.]/g, '-')
  .replace(/-\d+Z$/, 'Z');
const say = (s: string) =>
  process.stderr.write(`[bench ${((Date.now() - started.getTime()) / 1000).toFixed(0).padStart(4)}s] ${s}\n`);

const servers: Server[] = [];
let pgCleanup: (() => Promise<void>) | null = null;
async function stopAll() {
  for (const s of servers.splice(0).reverse()) await s.stop().catch(() => {});
  if (pgCleanup) await pgCleanup().catch(() => {});
  pgCleanup = null;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    say(`${sig}: stopping servers`);
    void stopAll().then(() => process.exit(130));
  });
}

function gitCommit(): string {
  try {
    return (
      execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO }).toString().trim() +
      (execFileSync('git', ['status', '--porcelain', 'src'], { cwd: REPO }).toString().trim()
        ? ' (src has uncommitted changes)'
        : '')
    );
  } catch {
    return 'unknown';
  }
}

/** Fresh PostgreSQL schema for the mole-pg target (dropped at the end). */
async function pgSchemaUrl(base: string): Promise<string> {
  const { url, drop } = await pgSchema(base);
  pgCleanup = drop;
  return url;
}

/** Replaces the "latest results" block of bench/README.md (between its markers) with this run's headline. */
function updateReadme(r: RunResult, file: string) {
  const readme = path.join(BENCH_DIR, 'README.md');
  let text: string;
  try {
    text = readFileSync(readme, 'utf8');
  } catch {
    return;
  }
  const start = '<!-- latest-results:start -->';
  const end = '<!-- latest-results:end -->';
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a < 0 || b < a) return;
  const block = `${start}\n_${r.startedAt.slice(0, 16).replace('T', ' ')} UTC, \`${r.command}\`, commit ${r.commit}, load average ${r.machine.loadavgStart.map((v) => v.toFixed(1)).join(' ')}. Full report: [results/${file}](results/${file})._\n\n${headlineTable(r)}\n`;
  writeFileSync(readme, text.slice(0, a) + block + text.slice(b));
  // The repository's formatter owns the README's layout (npm test checks it): keep it so.
  try {
    execFileSync('npx', ['biome', 'format', '--write', readme], { stdio: 'ignore' });
  } catch {
    /* formatting is cosmetic; the numbers are written */
  }
}

/** `--render results/<time>.json`: rebuild that run's Markdown (and latest.md / README if it is the newest) without measuring. */
function renderOnly(file: string) {
  const r = JSON.parse(readFileSync(path.resolve(file), 'utf8')) as RunResult;
  r.summary = summarize(r.measurements, r.targets);
  const base = path.basename(file).replace(/\.json$/, '');
  const md = renderMarkdown(r);
  writeFileSync(path.join(BENCH_DIR, 'results', `${base}.md`), md);
  const newest = readdirSync(path.join(BENCH_DIR, 'results'))
    .filter((f) => /^\d{4}-[^q]*Z\.json$/.test(f))
    .sort()
    .pop();
  if (newest === `${base}.json`) {
    writeFileSync(path.join(BENCH_DIR, 'results', 'latest.md'), md);
    updateReadme(r, `${base}.md`);
  }
  process.stdout.write(md);
}

async function main() {
  const renderIdx = argv.indexOf('--render');
  if (renderIdx >= 0) return renderOnly(argv[renderIdx + 1]!);
  const result: RunResult = {
    startedAt: started.toISOString(),
    finishedAt: '',
    command: `npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}`,
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? '?',
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      loadavgStart: os.loadavg(),
      loadavgEnd: [],
    },
    commit: gitCommit(),
    options: opts,
    targets: [],
    measurements: [],
    summary: [],
    peakRss: {},
    moleCheck: null,
    slowStreams: [],
    longStreams: [],
    scale: null,
    notes: [],
  };

  say('compiling src/ → bench/.build/server');
  const moleMain = await buildMole((s) => {
    say(s);
    result.notes.push(
      'tsc reported type errors in src/ at build time (someone was mid-edit); the emitted JS was used.',
    );
  });

  // ── servers ──────────────────────────────────────────────────────────────────────────
  say('starting mock upstream, bare proxy, MoleAPI' + (opts.portkey ? ', Portkey' : ''));
  const mock = await startMock();
  servers.push(mock);
  // The mock alone first: its rate and CPU per request show it is not what limits the others.
  const targets: Target[] = [directTarget(mock)];
  // Ours runs with the gateway's node flags (npm start's), the workplace's byte for byte with
  // none: each ratio is taken against the faster of the two.
  const bare = await startBare(mock.url, undefined, 'bare', START_NODE_FLAGS);
  if (START_NODE_FLAGS.length)
    result.notes.push(
      `MoleAPI and our floor (bench/bare-proxy.mjs) ran with npm start's node flags: \`${START_NODE_FLAGS.join(' ')}\`; the workplace's floor with none.`,
    );
  servers.push(bare.server);
  targets.push(bare);
  // The floor is a copy of the workplace's: measured beside it in the same rounds, so a report
  // shows the copy is not slower than the original (its "× bare" should be ~1.00×).
  if (opts.sharedFloor && existsSync(SHARED_FLOOR)) {
    // Run byte for byte, from bench/.build/ so that its `undici` resolves to the project's.
    const copy = path.join(BENCH_DIR, '.build', 'bare-proxy-shared.mjs');
    copyFileSync(SHARED_FLOOR, copy);
    const shared = await startBare(mock.url, copy, 'bare-shared');
    servers.push(shared.server);
    targets.push(shared);
  }
  const mole = await startMole({ main: moleMain, mockUrl: mock.url });
  servers.push(mole.server);
  targets.push(mole);
  // A/B during development: another build of the gateway (its main.js) measured beside this one.
  if (process.env.BENCH_MOLE_BASE) {
    // BENCH_MOLE_BASE_ENV: extra env for it, e.g. "MOLE_JOURNAL_FSYNC=0" (same build, other settings).
    const env = Object.fromEntries(
      (process.env.BENCH_MOLE_BASE_ENV ?? '')
        .split(/\s+/)
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
    );
    const base = await startMole({
      env,
      // BENCH_MOLE_BASE_NODE_ARGS: node flags for it, after npm start's (NODE_OPTIONS would reach
      // every process the run starts).
      nodeArgs: (process.env.BENCH_MOLE_BASE_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
      main: path.resolve(process.env.BENCH_MOLE_BASE),
      mockUrl: mock.url,
      name: 'mole-base',
    });
    servers.push(base.server);
    targets.push(base);
  }
  let molePg: (Target & { keyId: number }) | null = null;
  if (process.env.BENCH_DATABASE_URL) {
    const dbUrl = await pgSchemaUrl(process.env.BENCH_DATABASE_URL);
    molePg = await startMole({
      main: moleMain,
      mockUrl: mock.url,
      name: process.env.BENCH_REDIS_URL ? 'mole-pg-redis' : 'mole-pg',
      env: pgEnv(dbUrl, process.env.BENCH_REDIS_URL),
    });
    servers.push(molePg.server);
    targets.push(molePg);
  }
  if (opts.portkey && !existsSync(PORTKEY_ENTRY)) {
    say('Portkey is not installed (npm run bench:install): running without the peer');
    result.notes.push('Portkey was not installed (bench/node_modules absent): no peer in this run.');
  } else if (opts.portkey) {
    const pk = await startPortkey(mock.url);
    servers.push(pk.server);
    targets.push(pk);
  }
  result.targets = targets.map((t) => t.name);

  // Sanity: every target answers both shapes correctly before we time anything.
  for (const t of targets) {
    for (const s of scenarios.filter((s) => runs(t, s))) {
      const res = await fetch(t.url + scenarioPath(s), {
        method: 'POST',
        headers: headersFor(t, s),
        body: bodyFor(s),
      });
      const text = await res.text();
      const ok = res.status === 200 && verifierFor(s)(text);
      if (!ok)
        throw new Error(`${t.name} answered a ${s.id} request wrongly: ${res.status} ${text.slice(0, 300)}`);
    }
  }

  // ── interleaved load rounds ──────────────────────────────────────────────────────────
  say(`warm-up (${opts.warmup} s per target and scenario)`);
  for (const s of scenarios) for (const t of targets) if (runs(t, s)) await warm(t, s, opts.warmup);

  const total = opts.rounds * scenarios.reduce((a, s) => a + targets.filter((t) => runs(t, s)).length, 0);
  let n = 0;
  for (let round = 1; round <= opts.rounds; round++) {
    for (const s of scenarios) {
      // A B C, then B C A, …: every target takes every position, so none always runs right
      // after a scenario change or always follows the same neighbour.
      const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]!);
      for (const t of order.filter((t) => runs(t, s))) {
        n++;
        const m = await measure(t, s, round, opts.duration, mock.pid);
        result.measurements.push(m);
        say(
          `${String(n).padStart(3)}/${total} r${round} ${s.id.padEnd(10)} ${t.name.padEnd(14)} ${m.rps.toFixed(0).padStart(6)} req/s  p50 ${m.p50ms} ms  p99 ${m.p99ms} ms  cpu ${m.serverCpuUsPerReq.toFixed(0)} µs/req (main ${m.serverMainCpuUsPerReq.toFixed(0)})${m.errors + m.non2xx + m.mismatches + m.timeouts ? `  ERR ${m.errors}/${m.non2xx}/${m.mismatches}/${m.timeouts}` : ''}`,
        );
      }
    }
  }
  for (const t of targets) if (t.name !== 'direct') result.peakRss[t.name] = memory(t.server.pid).hwm;
  result.peakRss.mock = memory(mock.pid).hwm;

  // Did MoleAPI really log and bill every request? (usage rows written by the batch writer)
  {
    const completedOk = result.measurements
      .filter((m) => m.target === 'mole')
      .reduce((a, m) => a + m.ok2xx, 0);
    await new Promise((r) => setTimeout(r, 500));
    const u = await moleUsage(mole.url, mole.keyId);
    result.moleCheck = { measured2xx: completedOk, loggedRequests: u.requests, billedUsd: u.cost };
    say(
      `MoleAPI logged ${u.requests} requests (measured runs alone completed ${completedOk} with 2xx; warm-up and sanity requests are logged too), billed ${u.cost.toFixed(4)} USD`,
    );
  }
  await stopAll();

  // ── N slow concurrent streams ──────────────────────────────────────────────────────────
  if (opts.streams) {
    const kinds: Array<'bare' | 'mole' | 'portkey'> = [
      'bare',
      'mole',
      ...(opts.portkey && opts.streamsPortkey ? (['portkey'] as const) : []),
    ];
    for (const kind of kinds) {
      say(
        `${opts.streamClients} concurrent slow streams (one event per ${opts.streamChunkDelayMs} ms) through ${kind}`,
      );
      const r: SlowStreamResult = await slowStreams(kind, {
        n: opts.streamClients,
        chunkDelayMs: opts.streamChunkDelayMs,
        tokens: opts.streamTokens,
        limitMs: opts.streamLimitMs,
        rampPerSec: opts.streamRampPerSec,
        moleMain,
      });
      result.slowStreams.push(r);
      say(
        `  completed ${r.client.completed}, unfinished ${r.client.unfinished}, failed ${r.client.failed}; at most ${r.client.maxConcurrentStreaming} streaming at once; RSS ${(r.rssBeforeBytes / 1048576).toFixed(0)} → ${(r.rssPeakBytes / 1048576).toFixed(0)} MiB`,
      );
    }
  }

  // ── long streams: memory that grows with the length of a stream ───────────────────────
  if (opts.longStreams) {
    for (const kind of ['bare', 'mole'] as const) {
      say(`100 concurrent long streams (1,000 tokens, 10 ms apart) through ${kind}`);
      const r = await slowStreams(kind, {
        n: 100,
        chunkDelayMs: 10,
        tokens: 1000,
        limitMs: 40_000,
        rampPerSec: 200,
        moleMain,
      });
      result.longStreams ??= [];
      result.longStreams.push(r);
      say(
        `  completed ${r.client.completed}; at most ${r.client.maxConcurrentStreaming} at once; RSS ${(r.rssBeforeBytes / 1048576).toFixed(0)} → ${(r.rssPeakBytes / 1048576).toFixed(0)} MiB`,
      );
    }
  }

  // ── micro / scale (separate process, with --expose-gc) ─────────────────────────────────
  if (opts.scale) {
    say(`scale: ${opts.scaleKeys} keys, ${opts.scaleLogs} log rows (bench/scale.ts)`);
    const out = path.join(BENCH_DIR, '.tmp', `scale-${stamp}.json`);
    mkdirSync(path.dirname(out), { recursive: true });
    await runToEnd(
      process.execPath,
      [
        '--expose-gc',
        '--max-old-space-size=6144',
        '--import',
        'tsx',
        path.join(BENCH_DIR, 'scale.ts'),
        '--keys',
        String(opts.scaleKeys),
        '--logs',
        String(opts.scaleLogs),
        '--json',
        out,
      ],
      { cwd: REPO, echo: true, timeoutMs: 15 * 60_000 },
    );
    result.scale = JSON.parse(readFileSync(out, 'utf8'));
    rmSync(out, { force: true });
  }

  // ── report ─────────────────────────────────────────────────────────────────────────────
  result.finishedAt = new Date().toISOString();
  result.machine.loadavgEnd = os.loadavg();
  result.summary = summarize(result.measurements, result.targets);
  const md = renderMarkdown(result);
  const dir = path.join(BENCH_DIR, 'results');
  mkdirSync(dir, { recursive: true });
  // Smoke runs (--quick) are kept apart (and git-ignored) so they never replace a real result.
  const name = quick ? `${stamp}-quick` : stamp;
  writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(result, null, 2) + '\n');
  writeFileSync(path.join(dir, `${name}.md`), md);
  if (!quick) writeFileSync(path.join(dir, 'latest.md'), md);
  if (!quick && !flag('--no-readme')) updateReadme(result, `${stamp}.md`);
  process.stdout.write('\n' + md + '\n');
  say(`wrote bench/results/${name}.md and .json${quick ? '' : ' (and latest.md)'}`);
}

main()
  .catch(async (err) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await stopAll();
  });

export type { Measurement };
