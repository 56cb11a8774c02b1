// GET /metrics (contract §9): Prometheus text that moves with relay traffic (requests,
// durations, time to first byte, upstream failures, spend, tokens, key cache, log queue),
// never carries key material or credentials, and is served to loopback only unless
// MOLE_METRICS_TOKEN is set (then Bearer, from anywhere).
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { startTestServer, userWithKey, type TestServer } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import { closedPort } from '../relay/relay-helpers.js';

const CHANNEL_CRED = 'upstream-cred-7f3a9c1e5b2d4f60';
const TOKEN = 'metrics-token-0123456789abcdef';

/** Parses the text exposition into "name{labels}" → value. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{.*\})?\s+(\S+)$/.exec(line);
    if (m) out.set(m[1]! + (m[2] ?? ''), Number(m[3]));
  }
  return out;
}

/** The sum of every series of `name` whose labels include all of `labels`. */
function value(m: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [k, v] of m) {
    const brace = k.indexOf('{');
    if ((brace < 0 ? k : k.slice(0, brace)) !== name) continue;
    if (Object.entries(labels).every(([l, lv]) => k.includes(`${l}="${lv}"`))) sum += v;
  }
  return sum;
}

async function scrape(s: TestServer, headers: Record<string, string> = {}) {
  const res = await fetch(s.url + '/metrics', { headers });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

describe('metrics', () => {
  let secret: string;
  let display: string;
  const s = suiteServer({});
  beforeAll(async () => {
    // A dead channel tried first (higher priority), then the offline mock answers.
    const port = await closedPort();
    for (const ch of [
      {
        name: 'dead-upstream',
        type: 'openai',
        base_url: `http://127.0.0.1:${port}/v1`,
        api_key: CHANNEL_CRED,
        models: ['mole-mini'],
        priority: 10,
      },
      { name: 'offline', type: 'mock', models: ['mole-mini'] },
    ]) {
      const r = await s.api('POST', '/api/channels', ch);
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    }
    expect((await s.api('PUT', '/api/prices/mole-mini', { input: 1, output: 2 })).status).toBe(200);
    const k = await userWithKey(s, { balance: 10, key: { name: 'metrics-key' } });
    secret = k.secret;
    display = k.key.display;
  });

  const chat = (body: Record<string, unknown>) =>
    fetch(s.url + '/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mole-mini', messages: [{ role: 'user', content: 'hello' }], ...body }),
    });

  it('serves the Prometheus text exposition, with process metrics', async () => {
    const r = await scrape(s);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of [
      'mole_requests_total',
      'mole_request_duration_seconds',
      'mole_ttft_seconds',
      'mole_upstream_failures_total',
      'mole_spend_usd_total',
      'mole_tokens_total',
      'mole_key_cache_hits_total',
      'mole_key_cache_misses_total',
      'mole_log_queue_depth',
      'process_cpu_user_seconds_total',
    ])
      expect(r.text).toContain(`# TYPE ${name} `);
    expect(r.text).toContain('# TYPE mole_request_duration_seconds histogram');
    expect(r.text).toContain('# TYPE mole_ttft_seconds histogram');
  });

  it('moves with traffic, and carries no key, secret or credential', async () => {
    const before = parse((await scrape(s)).text);

    const plain = await chat({});
    expect(plain.status).toBe(200);
    const plainBody = (await plain.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    const stream = await chat({ stream: true });
    expect(stream.status).toBe(200);
    await stream.text();
    const gemini = await fetch(`${s.url}/v1beta/models/mole-mini:generateContent?key=${secret}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
    });
    expect(gemini.status).toBe(200);
    await gemini.text();
    // a model nobody prices: counted under "other", never as the name the client made up
    const unknown = await chat({ model: 'made-up-model-x1' });
    expect(unknown.status).toBe(404);
    await unknown.text();

    const r = await scrape(s);
    const after = parse(r.text);
    const d = (name: string, labels: Record<string, string> = {}) =>
      value(after, name, labels) - value(before, name, labels);

    expect(d('mole_requests_total', { protocol: 'openai', model: 'mole-mini', status: '200' })).toBe(2);
    expect(d('mole_requests_total', { protocol: 'gemini', model: 'mole-mini', status: '200' })).toBe(1);
    expect(d('mole_requests_total', { protocol: 'openai', model: 'other', status: '404' })).toBe(1);
    expect(r.text).not.toContain('made-up-model-x1');
    expect(d('mole_request_duration_seconds_count', { protocol: 'openai' })).toBe(3);
    expect(d('mole_request_duration_seconds_count', { protocol: 'gemini' })).toBe(1);
    expect(d('mole_ttft_seconds_count')).toBeGreaterThanOrEqual(1);
    // every answered call first tried the dead channel (until its cool-down)
    expect(d('mole_upstream_failures_total', { channel: 'dead-upstream' })).toBeGreaterThanOrEqual(1);
    expect(d('mole_upstream_failures_total', { channel: 'offline' })).toBe(0);
    expect(d('mole_spend_usd_total', { group: 'default' })).toBeGreaterThan(0);
    expect(d('mole_tokens_total', { direction: 'input' })).toBeGreaterThanOrEqual(
      plainBody.usage.prompt_tokens,
    );
    expect(d('mole_tokens_total', { direction: 'output' })).toBeGreaterThanOrEqual(
      plainBody.usage.completion_tokens,
    );
    for (const dir of ['cached', 'cache_write'])
      expect(after.has(`mole_tokens_total{direction="${dir}"}`)).toBe(true);
    expect(d('mole_key_cache_hits_total') + d('mole_key_cache_misses_total')).toBeGreaterThanOrEqual(4);
    expect(d('mole_key_cache_hits_total')).toBeGreaterThanOrEqual(3);
    expect(after.has('mole_log_queue_depth')).toBe(true);

    // spend matches the logged cost
    await s.services.flush();
    const logs = await s.api('GET', '/api/logs?limit=100');
    const logged = (logs.body.data as Array<{ cost: number }>).reduce((a, l) => a + l.cost, 0);
    expect(value(after, 'mole_spend_usd_total')).toBeCloseTo(logged, 9);

    for (const secretText of [secret, s.masterKey, CHANNEL_CRED, display, 'metrics-key'])
      expect(r.text).not.toContain(secretText);
    expect(r.text).not.toMatch(/sk-[0-9A-Za-z]/);
  });
});

describe('metrics access', () => {
  it('without a token: loopback only; a forwarded or remote client is refused', async () => {
    const s = await startTestServer();
    const proxied = await startTestServer({ env: { MOLE_TRUSTED_PROXIES: '127.0.0.1/32' } });
    try {
      expect((await scrape(s)).status).toBe(200);
      // forwarded by a proxy on this host that is not trusted: the real client is unknown
      const fwd = await scrape(s, { 'x-forwarded-for': '203.0.113.7' });
      expect(fwd.status).toBe(403);
      expect(fwd.type).toMatch(/json/);
      expect(JSON.parse(fwd.text).error.code).toBe('forbidden');
      // a trusted proxy says the client is remote
      expect((await scrape(proxied, { 'x-forwarded-for': '203.0.113.7' })).status).toBe(403);
      expect((await scrape(proxied, { 'x-forwarded-for': '127.0.0.1' })).status).toBe(200);
      expect((await scrape(proxied)).status).toBe(200);
    } finally {
      await s.close();
      await proxied.close();
    }
  });

  it('with MOLE_METRICS_TOKEN: the Bearer token is required, from anywhere', async () => {
    const s = await startTestServer({
      env: { MOLE_METRICS_TOKEN: TOKEN, MOLE_TRUSTED_PROXIES: '127.0.0.1/32' },
    });
    try {
      const none = await scrape(s);
      expect(none.status).toBe(401);
      expect(none.text).not.toContain(TOKEN);
      expect((await scrape(s, { authorization: 'Bearer wrong-token-0123456789' })).status).toBe(401);
      expect((await scrape(s, { authorization: `Bearer ${s.masterKey}` })).status).toBe(401);
      const ok = await scrape(s, { authorization: `Bearer ${TOKEN}`, 'x-forwarded-for': '203.0.113.7' });
      expect(ok.status).toBe(200);
      expect(ok.text).toContain('mole_requests_total');
      expect(ok.text).not.toContain(TOKEN);
    } finally {
      await s.close();
    }
  });

  it('refuses a token shorter than 16 characters at start-up', async () => {
    expect(() => loadConfig({ MOLE_METRICS_TOKEN: 'short' })).toThrow(
      /MOLE_METRICS_TOKEN: must be at least 16 characters/,
    );
  });
});
