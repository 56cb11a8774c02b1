/**
 * N concurrent streaming clients, in their own process (so the gateway's memory and CPU are
 * not mixed with the load generator's). Opens every stream as fast as it can (one
 * connection each), reads them to the end, and reports timings as one JSON line.
 *
 *   tsx bench/stream-clients.ts --url http://127.0.0.1:PORT --n 5000 --limit-ms 40000 --headers '{"authorization":"Bearer …"}'
 *
 * Output: {started, completed, failed, unfinished, maxConcurrentStreaming, ttfbMs:{p50,p99,max}, durationMs:{p50,p99,max}, wallMs}
 * "maxConcurrentStreaming" = most streams that had received their first byte and not yet
 * ended at any instant: how many slow streams the server really held at once.
 */
import { Agent, request } from 'undici';
import { percentile } from './lib/stats.js';
import { argOf, numArg } from './lib/args.js';

const url = argOf('--url')!;
const N = numArg('--n', 5000);
const LIMIT = numArg('--limit-ms', 40_000);
/** New streams opened per second (a connection storm measures the accept queue, not holding streams). */
const RAMP = numArg('--ramp-per-sec', 1000);
const headers = JSON.parse(argOf('--headers') ?? '{}') as Record<string, string>;
const MAX_TOKENS = numArg('--max-tokens', 16);
const body = JSON.stringify({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Hello, slow mole!' }],
  max_tokens: MAX_TOKENS,
  stream: true,
});

const agent = new Agent({
  connections: N,
  pipelining: 1,
  keepAliveTimeout: 5_000,
  headersTimeout: LIMIT + 5_000,
  bodyTimeout: LIMIT + 5_000,
  connect: { timeout: 30_000 },
});
const stop = new AbortController();
const t0 = performance.now();

/** Times are ms since the client process started (absolute), except ttfb (since this request was sent). */
interface One {
  start: number;
  first: number;
  ttfb: number;
  end: number;
  ok: boolean;
  bytes: number;
  error?: string;
}

async function one(): Promise<One> {
  const r: One = { start: performance.now() - t0, first: NaN, ttfb: NaN, end: NaN, ok: false, bytes: 0 };
  try {
    const res = await request(url + '/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      dispatcher: agent,
      signal: stop.signal,
    });
    let tail = '';
    for await (const chunk of res.body) {
      if (Number.isNaN(r.first)) {
        r.first = performance.now() - t0;
        r.ttfb = r.first - r.start;
      }
      r.bytes += (chunk as Buffer).length;
      tail = (tail + (chunk as Buffer).toString('utf8')).slice(-32);
    }
    r.end = performance.now() - t0;
    r.ok = res.statusCode === 200 && tail.endsWith('data: [DONE]\n\n');
    if (!r.ok) r.error = `status ${res.statusCode}`;
  } catch (e) {
    r.error =
      (e as Error).name === 'AbortError' ? 'unfinished' : String((e as Error).message ?? e).slice(0, 80);
  }
  return r;
}

const timer = setTimeout(() => stop.abort(), LIMIT);
const pending: Array<Promise<One>> = [];
const TICK_MS = 50;
for (let i = 0; i < N; ) {
  const burst = Math.max(1, Math.round((RAMP * TICK_MS) / 1000));
  for (let j = 0; j < burst && i < N; j++, i++) pending.push(one());
  if (i < N) await new Promise((r) => setTimeout(r, TICK_MS));
}
const all = await Promise.all(pending);
clearTimeout(timer);
const wallMs = performance.now() - t0;

// Sweep: +1 at first byte, -1 at end (or at the cut-off for unfinished streams).
const events: Array<[number, number]> = [];
for (const r of all) {
  if (Number.isNaN(r.first)) continue;
  events.push([r.first, 1], [Number.isNaN(r.end) ? wallMs : r.end, -1]);
}
events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
let cur = 0;
let maxConc = 0;
for (const [, d] of events) {
  cur += d;
  maxConc = Math.max(maxConc, cur);
}

const ok = all.filter((r) => r.ok);
const ttfb = all
  .map((r) => r.ttfb)
  .filter(Number.isFinite)
  .sort((a, b) => a - b);
const dur = ok.map((r) => r.end - r.start).sort((a, b) => a - b);
const errors: Record<string, number> = {};
for (const r of all) if (!r.ok) errors[r.error ?? 'bad body'] = (errors[r.error ?? 'bad body'] ?? 0) + 1;

process.stdout.write(
  JSON.stringify({
    started: N,
    completed: ok.length,
    failed: all.filter((r) => !r.ok && r.error !== 'unfinished').length,
    unfinished: all.filter((r) => r.error === 'unfinished').length,
    errors,
    maxConcurrentStreaming: maxConc,
    bytesPerStream: ok.length ? ok.reduce((a, r) => a + r.bytes, 0) / ok.length : 0,
    ttfbMs: { p50: percentile(ttfb, 50), p99: percentile(ttfb, 99), max: ttfb[ttfb.length - 1] ?? NaN },
    /** Whole-stream duration of the completed ones. */
    durationMs: { p50: percentile(dur, 50), p99: percentile(dur, 99), max: dur[dur.length - 1] ?? NaN },
    wallMs,
  }) + '\n',
);
await agent.destroy();
process.exit(0);
