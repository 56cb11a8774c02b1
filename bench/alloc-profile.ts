/**
 * What the gateway allocates per request, by function: V8's sampling heap profiler on the
 * compiled gateway's main thread under load, counting objects GC has collected too (a request's
 * garbage is what the GC pays for: ~11% of a plain request's main-thread CPU on SQLite).
 *
 *   npx tsx bench/alloc-profile.ts [--seconds 8] [--connections 50] [--modes plain,stream,msgs-plain,msgs-stream] [--survivors]
 *   BENCH_DATABASE_URL=postgres://… BENCH_REDIS_URL=redis://… npx tsx bench/alloc-profile.ts
 *
 * For each mode: a fresh MoleAPI process with bench/lib/heap-sampler.mjs preloaded, warmed up
 * for 3 s, then sampled (SIGUSR2 on, SIGUSR2 off) while autocannon drives it for --seconds.
 * Writes bench/results/alloc-<timestamp>.md: bytes per request in all, by function (self), by
 * our own functions with what they call (inclusive), and by package. Sampling (one sample per
 * 4 KiB allocated on average) makes small figures approximate; the totals are steady.
 * --survivors leaves out what young collections freed: what is left is what survived into the
 * old generation (or is still alive at the end), the garbage that costs full collections.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { argOf, numArg } from './lib/args.js';
import { verifierFor } from './lib/load.js';
import { backendName, eachMode, MODE, modesOf, where, writeReport } from './lib/profiling.js';
import { BENCH_DIR, buildMole } from './lib/targets.js';

const SECONDS = numArg('--seconds', 8);
const SURVIVORS = process.argv.includes('--survivors');
const COUNTED = SURVIVORS ? 'what survived young collections' : 'collected objects included';
const CONNECTIONS = numArg('--connections', 50);
const MODES = modesOf(argOf('--modes'));
const BACKEND = backendName();
const SAMPLER = path.join(BENCH_DIR, 'lib', 'heap-sampler.mjs');
const stamp = new Date()
  .toISOString()
  .replace(/[:.]/g, '-')
  .replace(/-\d+Z$/, 'Z');

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

function summarise(head: HeapNode, title: string, requests: number): string {
  const key = (n: HeapNode) =>
    `${n.callFrame.functionName || '(anonymous)'} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const pkg = new Map<string, number>();
  let total = 0;
  // Depth first with the keys on the path (each counted once per path: recursion is not doubled).
  const walk = (n: HeapNode, path: string[]) => {
    // The sampler's own garbage (it forces young collections before a --survivors profile ends).
    if (n.callFrame.url.endsWith('heap-sampler.mjs')) return;
    const k = key(n);
    const onPath = path.includes(k) ? path : [...path, k];
    total += n.selfSize;
    self.set(k, (self.get(k) ?? 0) + n.selfSize);
    const w = where(n.callFrame.url);
    const p = w.startsWith('src/') ? w : w.startsWith('node:') ? 'node: (core JS)' : w;
    pkg.set(p, (pkg.get(p) ?? 0) + n.selfSize);
    for (const f of onPath) if (f.includes(' src/')) incl.set(f, (incl.get(f) ?? 0) + n.selfSize);
    for (const c of n.children) walk(c, onPath);
  };
  walk(head, []);
  const perReq = (b: number) => (b / requests).toFixed(0);
  const rows = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, b]) => `| ${perReq(b)} | ${((b / total) * 100).toFixed(1)}% | \`${k}\` |\n`)
      .join('');
  let md = `## ${title}\n\n${requests.toLocaleString('en-US')} requests sampled; **${perReq(total)} bytes allocated per request** on the main thread (${COUNTED}).\n\n`;
  md += `### Top 30 functions by bytes allocated (self)\n\n| bytes/req | share | function (file:line) |\n| ---: | ---: | --- |\n${rows(self, 30)}`;
  md += `\n### Our code (src/) with what it calls\n\n| bytes/req | share | function (file:line) |\n| ---: | ---: | --- |\n${rows(incl, 30)}`;
  md += `\n### By package / file (self)\n\n| bytes/req | share | where |\n| ---: | ---: | --- |\n${rows(pkg, 20)}\n`;
  return md;
}

const tmp = path.join(BENCH_DIR, '.tmp', `alloc-${stamp}`);
mkdirSync(tmp, { recursive: true });
const main = await buildMole((s) => process.stderr.write(s + '\n'));
let report = `# MoleAPI allocation profile — ${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC\n\n`;
report += `\`npx tsx bench/alloc-profile.ts --seconds ${SECONDS} --connections ${CONNECTIONS} --modes ${MODES.join(',')}${SURVIVORS ? ' --survivors' : ''}\` on ${BACKEND}: compiled gateway with V8's sampling heap profiler (${COUNTED}), autocannon ${CONNECTIONS} connections for ${SECONDS} s after a 3 s warm-up, upstream = test/mock-provider.\n\n`;

await eachMode(
  MODES,
  {
    main,
    connections: CONNECTIONS,
    gateway: (mode) => ({
      nodeArgs: ['--import', SAMPLER],
      env: {
        HEAP_PROFILE_OUT: path.join(tmp, `${mode}.heapprofile`),
        HEAP_PROFILE_SURVIVORS: SURVIVORS ? '1' : '0',
      },
    }),
  },
  async ({ mode, title, mole, load }) => {
    const out = path.join(tmp, `${mode}.heapprofile`);
    const toggle = async (line: string) => {
      process.kill(mole.server.pid, 'SIGUSR2');
      for (let i = 0; i < 200 && !mole.server.output().includes(line); i++)
        await new Promise((r) => setTimeout(r, 25));
      if (!mole.server.output().includes(line)) throw new Error(`the gateway never said "${line}"`);
    };
    rmSync(out, { force: true });
    await toggle('heap sampling started');
    const r = await autocannon({ ...load, duration: SECONDS, verifyBody: verifierFor(MODE[mode]) });
    await toggle('heap profile written');
    if (!existsSync(out)) throw new Error(`no heap profile at ${out}`);
    process.stderr.write(
      `${mode}: ${(r['2xx'] / r.duration).toFixed(0)} req/s, errors ${r.errors}, non2xx ${r.non2xx}\n`,
    );
    const profile = JSON.parse(readFileSync(out, 'utf8')) as { head: HeapNode };
    report += summarise(
      profile.head,
      `${title}, ${CONNECTIONS} connections, ${BACKEND}`,
      r.latency.totalCount,
    );
  },
);

writeReport('alloc', stamp, report);
