import { describe, expect, it } from 'vitest';
import type { NewLog } from '../db/schema.js';
import { Histogram, Registry } from 'prom-client';
import { DURATION_BUCKETS, TTFT_BUCKETS, createMetrics } from './metrics.js';

const row = (over: Partial<NewLog> = {}): NewLog => ({
  request_id: 'req_1',
  created_at: 0,
  user_id: 1,
  key_id: 1,
  key_name: 'k',
  model: 'gpt-4o',
  upstream_model: 'gpt-4o',
  channel_id: 1,
  endpoint: '/v1/chat/completions',
  protocol: 'openai',
  stream: 0,
  status: 200,
  error_code: null,
  prompt_tokens: 100,
  cached_tokens: 30,
  cache_write_tokens: 20,
  completion_tokens: 7,
  reasoning_tokens: 0,
  cache_write_1h_tokens: 0,
  web_searches: 0,
  service_tier: null,
  cost_nano: 1500,
  latency_ms: 250,
  ttft_ms: 40,
  ip: '127.0.0.1',
  estimated: 0,
  attempts: null,
  ...over,
});

const line = (text: string, series: string) =>
  Number(
    text
      .split('\n')
      .find((l) => l.startsWith(series + ' '))
      ?.split(' ')[1] ?? Number.NaN,
  );

describe('metrics.observe', () => {
  it('splits tokens into uncached input, cache reads, cache writes and output', async () => {
    const m = createMetrics({ processMetrics: false });
    m.observe(row(), 'vip');
    const t = await m.text();
    expect(line(t, 'mole_tokens_total{direction="input"}')).toBe(50);
    expect(line(t, 'mole_tokens_total{direction="cached"}')).toBe(30);
    expect(line(t, 'mole_tokens_total{direction="cache_write"}')).toBe(20);
    expect(line(t, 'mole_tokens_total{direction="output"}')).toBe(7);
    expect(line(t, 'mole_spend_usd_total{group="vip"}')).toBeCloseTo(0.0000015, 12);
    expect(line(t, 'mole_requests_total{protocol="openai",model="gpt-4o",status="200"}')).toBe(1);
    expect(line(t, 'mole_ttft_seconds_count{protocol="openai"}')).toBe(1);
    expect(line(t, 'mole_request_duration_seconds_sum{protocol="openai"}')).toBeCloseTo(0.25, 6);
  });

  it('counts failed upstream tries per channel, and shrugs off garbage attempts', async () => {
    const m = createMetrics({ processMetrics: false });
    const attempts = JSON.stringify([
      { channel_id: 1, channel_name: 'a', status: null, error: 'connect ECONNREFUSED', latency_ms: 1 },
      { channel_id: 2, channel_name: 'b', status: 503, error: null, latency_ms: 1 },
      { channel_id: 3, channel_name: 'c', status: 400, error: null, latency_ms: 1 },
      { channel_id: 4, channel_name: 'd', status: 200, error: null, latency_ms: 1 },
    ]);
    m.observe(row({ attempts }));
    m.observe(row({ attempts: '{not json' }));
    m.observe(row({ attempts: '"a string"' }));
    const t = await m.text();
    expect(line(t, 'mole_upstream_failures_total{channel="a"}')).toBe(1);
    expect(line(t, 'mole_upstream_failures_total{channel="b"}')).toBe(1);
    expect(t).not.toContain('channel="c"'); // the request's own fault, passed through
    expect(t).not.toContain('channel="d"');
    expect(line(t, 'mole_requests_total{protocol="openai",model="gpt-4o",status="200"}')).toBe(3);
  });

  it('bounds label values: unpriced models are "other"; at most 2000 values per label', async () => {
    const m = createMetrics({ processMetrics: false, knownModel: (x) => x.startsWith('known-') });
    m.observe(row({ model: 'made-up' }));
    m.observe(row({ model: null, status: 401 }));
    for (let i = 0; i < 2100; i++) m.observe(row({ model: `known-${i}` }));
    const t = await m.text();
    expect(t).not.toContain('made-up');
    expect(line(t, 'mole_requests_total{protocol="openai",model="none",status="401"}')).toBe(1);
    expect(line(t, 'mole_requests_total{protocol="openai",model="other",status="200"}')).toBe(101);
    expect(t).toContain('model="known-1999"');
    expect(t).not.toContain('model="known-2000"');
  });

  it('reads the key cache and the log queue when scraped', async () => {
    const stats = { hits: 5, misses: 2 };
    let depth = 3;
    const m = createMetrics({
      processMetrics: false,
      keyCache: () => stats,
      keyCacheSize: () => 9,
      logQueueDepth: () => depth,
      logWriteFailures: () => 1,
    });
    let t = await m.text();
    expect(line(t, 'mole_key_cache_hits_total')).toBe(5);
    expect(line(t, 'mole_key_cache_misses_total')).toBe(2);
    expect(line(t, 'mole_key_cache_entries')).toBe(9);
    expect(line(t, 'mole_log_queue_depth')).toBe(3);
    expect(line(t, 'mole_log_write_failures_total')).toBe(1);
    stats.hits = 8;
    depth = 0;
    t = await m.text();
    expect(line(t, 'mole_key_cache_hits_total')).toBe(8);
    expect(line(t, 'mole_log_queue_depth')).toBe(0);
  });

  it('never throws into the relay', () => {
    const m = createMetrics({
      processMetrics: false,
      knownModel: () => {
        throw new Error('boom');
      },
    });
    expect(() => m.observe(row())).not.toThrow();
  });
});

describe('metrics counters summed between scrapes', () => {
  it('show each label set in first-seen order, with the running float sum, scrape after scrape', async () => {
    const m = createMetrics({ processMetrics: false });
    const costs = [1500, 7, 333_333, 1, 98_765_432];
    let spend = 0;
    for (const [i, cost] of costs.entries()) {
      m.observe(row({ status: i % 2 ? 429 : 200, cost_nano: cost }), 'gold');
      spend += cost / 1e9;
    }
    m.observe(row({ model: 'o3', status: 500 }), 'silver');
    const text = await m.text();
    const series = text.split('\n').filter((l) => l.startsWith('mole_requests_total{'));
    expect(series).toEqual([
      'mole_requests_total{protocol="openai",model="gpt-4o",status="200"} 3',
      'mole_requests_total{protocol="openai",model="gpt-4o",status="429"} 2',
      'mole_requests_total{protocol="openai",model="o3",status="500"} 1',
    ]);
    expect(line(text, 'mole_spend_usd_total{group="gold"}')).toBe(spend);
    // A second scrape shows the same totals (not doubled), then what came since.
    expect(await m.text()).toBe(text);
    m.observe(row({ cost_nano: 5 }), 'gold');
    const again = await m.text();
    expect(line(again, 'mole_requests_total{protocol="openai",model="gpt-4o",status="200"}')).toBe(4);
    expect(line(again, 'mole_spend_usd_total{group="gold"}')).toBe(spend + 5 / 1e9);
  });
});

describe('metrics histograms counted in plain arrays', () => {
  it('print the lines prom-client’s Histogram prints for the same observations', async () => {
    const m = createMetrics({ processMetrics: false });
    const ref = new Registry();
    const duration = new Histogram({
      name: 'mole_request_duration_seconds',
      help: 'x',
      labelNames: ['protocol'],
      buckets: DURATION_BUCKETS,
      registers: [ref],
    });
    const ttft = new Histogram({
      name: 'mole_ttft_seconds',
      help: 'x',
      labelNames: ['protocol'],
      buckets: TTFT_BUCKETS,
      registers: [ref],
    });
    // Bucket edges, between them, past the last, zero; several protocols, ttft sometimes absent.
    const latencies = [0, 5, 7, 10, 250, 333, 1000, 2500, 299_999, 300_000, 300_001, 1_000_000, 13];
    for (const [i, ms] of latencies.entries()) {
      const protocol = ['openai', 'anthropic', 'gemini'][i % 3]!;
      const ttftMs = i % 4 === 3 ? null : ms / 3;
      m.observe(row({ protocol, latency_ms: ms, ttft_ms: ttftMs }));
      duration.observe({ protocol }, ms / 1000);
      if (ttftMs !== null) ttft.observe({ protocol }, ttftMs / 1000);
    }
    const series = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(`${name}_`));
    const ours = await m.text();
    const theirs = await ref.metrics();
    for (const name of ['mole_request_duration_seconds', 'mole_ttft_seconds']) {
      expect(series(ours, name).length).toBeGreaterThan(0);
      expect(series(ours, name)).toEqual(series(theirs, name));
    }
    expect(ours).toContain('# TYPE mole_request_duration_seconds histogram');
  });
});
