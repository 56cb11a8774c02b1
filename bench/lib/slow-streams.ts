// Memory for N concurrent slow streams: a fresh upstream whose streams trickle (one SSE event
// every chunkDelayMs), a fresh server under test, and N streaming clients in a third process.
// The server's RSS and open descriptors are sampled while the streams are open.
import path from 'node:path';
import {
  BENCH_DIR,
  REPO,
  START_NODE_FLAGS,
  startBare,
  startMock,
  startMole,
  startPortkey,
  type Target,
} from './targets.js';
import { fdCount, memory, runToEnd } from './proc.js';

export interface SlowStreamResult {
  target: string;
  streams: number;
  chunkDelayMs: number;
  /** Completion tokens (= content events) per stream. */
  tokens: number;
  rampPerSec: number;
  rssBeforeBytes: number;
  rssPeakBytes: number;
  hwmBytes: number;
  bytesPerStream: number;
  fdPeak: number;
  client: {
    completed: number;
    failed: number;
    unfinished: number;
    errors: Record<string, number>;
    maxConcurrentStreaming: number;
    bytesPerStream: number;
    ttfbMs: { p50: number; p99: number; max: number };
    durationMs: { p50: number; p99: number; max: number };
    wallMs: number;
  };
}

export async function slowStreams(
  kind: 'bare' | 'mole' | 'portkey',
  o: {
    n: number;
    chunkDelayMs: number;
    tokens: number;
    limitMs: number;
    rampPerSec: number;
    moleMain: string;
  },
): Promise<SlowStreamResult> {
  const mock = await startMock({
    scenario: { chunkDelayMs: o.chunkDelayMs, completionTokens: o.tokens },
    name: 'slow-mock',
  });
  let t: Target | null = null;
  try {
    t =
      kind === 'bare'
        ? await startBare(mock.url, undefined, 'bare', START_NODE_FLAGS)
        : kind === 'mole'
          ? await startMole({ main: o.moleMain, mockUrl: mock.url, name: 'mole-slow' })
          : await startPortkey(mock.url);
    // Settle, then take the baseline.
    await fetch(t.url + '/v1/chat/completions', {
      method: 'POST',
      headers: t.headers,
      body: JSON.stringify({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'warm' }],
        max_tokens: 2,
        stream: true,
      }),
    }).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 500));
    const pid = t.server.pid;
    const before = memory(pid).rss;
    let peak = before;
    let fdPeak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        try {
          peak = Math.max(peak, memory(pid).rss);
          fdPeak = Math.max(fdPeak, fdCount(pid));
        } catch {
          /* exited */
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    const out = await runToEnd(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(BENCH_DIR, 'stream-clients.ts'),
        '--url',
        t.url,
        '--n',
        String(o.n),
        '--limit-ms',
        String(o.limitMs),
        '--ramp-per-sec',
        String(o.rampPerSec),
        '--max-tokens',
        String(Math.max(16, o.tokens)),
        '--headers',
        JSON.stringify(t.headers),
      ],
      { cwd: REPO, timeoutMs: o.limitMs + 60_000 },
    );
    sampling = false;
    await sampler;
    const client = JSON.parse(out.trim().split('\n').pop()!) as SlowStreamResult['client'];
    const hwm = memory(pid).hwm;
    return {
      target: kind,
      streams: o.n,
      chunkDelayMs: o.chunkDelayMs,
      tokens: o.tokens,
      rampPerSec: o.rampPerSec,
      rssBeforeBytes: before,
      rssPeakBytes: peak,
      hwmBytes: hwm,
      // Every request is held by the server from the moment it is accepted (streaming, or
      // queued for an upstream connection) until it ends, so growth ÷ requests open at once.
      bytesPerStream: (peak - before) / Math.max(1, o.n - client.failed),
      fdPeak,
      client,
    };
  } finally {
    await t?.server.stop();
    await mock.stop();
  }
}
