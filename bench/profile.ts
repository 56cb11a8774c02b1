/**
 * CPU-profiles the compiled gateway under load and summarises where its time goes.
 *
 *   npx tsx bench/profile.ts [--seconds 15] [--connections 50] [--modes plain,stream,msgs-plain,msgs-stream]
 *   BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… npx tsx bench/profile.ts   (PostgreSQL + Redis)
 *
 * Modes: plain and stream are OpenAI chat completions passed through to an OpenAI channel;
 * msgs-plain and msgs-stream are Anthropic Messages translated to that channel (the
 * translation path). Default: plain,stream. With BENCH_DATABASE_URL the gateway runs on
 * PostgreSQL (a fresh schema, dropped after), and on Redis too with BENCH_REDIS_URL.
 *
 * For each mode: a fresh MoleAPI process started with
 * `node --cpu-prof`, driven by autocannon for --seconds, then stopped with SIGTERM (which
 * writes the profile). Writes bench/results/profile-<timestamp>.md with the top functions
 * by self time, by inclusive time (our own code), and by package; keeps the raw
 * .cpuprofile files in bench/.tmp/ (open them in Chrome DevTools → Performance).
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { argOf, numArg } from './lib/args.js';
import { verifierFor } from './lib/load.js';
import { backendName, eachMode, MODE, modesOf, where, writeReport } from './lib/profiling.js';
import { BENCH_DIR, buildMole } from './lib/targets.js';

const SECONDS = numArg('--seconds', 15);
const CONNECTIONS = numArg('--connections', 50);
const MODES = modesOf(argOf('--modes'));
const BACKEND = backendName();
const stamp = new Date()
  .toISOString()
  .replace(/[:.]/g, '-')
  .replace(/-\d+Z$/, 'Z');

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Monotonic clock in µs: the same clock V8 stamps profile samples with (CLOCK_MONOTONIC). */
const monoUs = () => Number(process.hrtime.bigint() / 1000n);

function summarise(p: Profile, title: string, totalReqs: number, window: [number, number]): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  // Only samples taken while the measured load ran (start-up and shutdown are left out).
  const selfUs = new Map<number, number>();
  let t = p.startTime;
  let inWindow = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < window[0] || t > window[1]) continue;
    inWindow++;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  if (inWindow === 0) throw new Error('no profile samples fall inside the measured window (clock mismatch?)');
  const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idle = p.nodes
    .filter((n) => n.callFrame.functionName === '(idle)')
    .reduce((a, n) => a + (selfUs.get(n.id) ?? 0), 0);
  const busy = totalUs - idle;
  const key = (n: Node) =>
    `${n.callFrame.functionName || '(anonymous)'} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;

  // Self time per function.
  const self = new Map<string, number>();
  for (const n of p.nodes)
    if (n.callFrame.functionName !== '(idle)')
      self.set(key(n), (self.get(key(n)) ?? 0) + (selfUs.get(n.id) ?? 0));
  // Inclusive time per function (each function counted once per stack, so recursion is not double-counted).
  const incl = new Map<string, number>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)!;
      if (n.callFrame.functionName === '(idle)' || n.callFrame.functionName === '(root)') continue;
      const k = key(n);
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + us);
    }
  }
  // Self time per package / file.
  const pkg = new Map<string, number>();
  for (const n of p.nodes) {
    if (n.callFrame.functionName === '(idle)') continue;
    const w = where(n.callFrame.url);
    const k = w.startsWith('src/') ? w : w.startsWith('node:') ? 'node: (core JS)' : w;
    pkg.set(k, (pkg.get(k) ?? 0) + (selfUs.get(n.id) ?? 0));
  }

  const pct = (us: number) => `${((us / busy) * 100).toFixed(1)}%`;
  const perReq = (us: number) => (us / totalReqs).toFixed(1);
  let md = `## ${title}\n\n${totalReqs.toLocaleString('en-US')} requests in the measured window (${inWindow.toLocaleString('en-US')} of ${p.samples.length.toLocaleString('en-US')} samples; start-up, warm-up and shutdown excluded); busy (non-idle) CPU ${(busy / 1e6).toFixed(1)} s = ${(busy / totalReqs).toFixed(0)} µs per request (profiler overhead included).\n\n`;
  md +=
    '### Top 30 functions by self time\n\n| self | µs/req | function (file:line) |\n| ---: | ---: | --- |\n';
  for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30))
    md += `| ${pct(us)} | ${perReq(us)} | \`${k}\` |\n`;
  md +=
    '\n### Our code (src/) by inclusive time\n\n| inclusive | µs/req | function (file:line) |\n| ---: | ---: | --- |\n';
  for (const [k, us] of [...incl]
    .filter(([k]) => k.includes(' src/'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, 30))
    md += `| ${pct(us)} | ${perReq(us)} | \`${k}\` |\n`;
  md += '\n### Self time by package / file\n\n| self | µs/req | where |\n| ---: | ---: | --- |\n';
  for (const [k, us] of [...pkg].sort((a, b) => b[1] - a[1]).slice(0, 25))
    md += `| ${pct(us)} | ${perReq(us)} | ${k} |\n`;
  return md + '\n';
}

const profDir = path.join(BENCH_DIR, '.tmp', `prof-${stamp}`);
mkdirSync(profDir, { recursive: true });
const main = await buildMole((s) => process.stderr.write(s + '\n'));
let report = `# MoleAPI CPU profile — ${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC\n\n`;
report += `\`npx tsx bench/profile.ts --seconds ${SECONDS} --connections ${CONNECTIONS} --modes ${MODES.join(',')}\` on ${BACKEND}: compiled gateway under \`node --cpu-prof\`, autocannon ${CONNECTIONS} connections for ${SECONDS} s, upstream = test/mock-provider. Raw profiles: bench/.tmp/prof-${stamp}/ (not committed).\n\n`;

await eachMode(
  MODES,
  {
    main,
    connections: CONNECTIONS,
    gateway: (mode) => {
      mkdirSync(path.join(profDir, mode), { recursive: true });
      return { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${path.join(profDir, mode)}`] };
    },
  },
  async ({ mode, title, mole, load }) => {
    const dir = path.join(profDir, mode);
    const w0 = monoUs();
    const r = await autocannon({ ...load, duration: SECONDS, verifyBody: verifierFor(MODE[mode]) });
    const w1 = monoUs();
    process.stderr.write(
      `${mode}: ${(r['2xx'] / r.duration).toFixed(0)} req/s, errors ${r.errors}, non2xx ${r.non2xx}, mismatches ${r.mismatches}\n`,
    );
    // SIGTERM ends the process cleanly, which writes the profile.
    await mole.server.stop('SIGTERM', 30_000);
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error(`no profile written in ${dir}`);
    const prof = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Profile;
    report += summarise(prof, `${title}, ${CONNECTIONS} connections, ${BACKEND}`, r.latency.totalCount, [
      w0,
      w1,
    ]);
  },
);

writeReport('profile', stamp, report);
