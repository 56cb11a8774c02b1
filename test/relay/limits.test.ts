// Rate, token and concurrency limits through the real server (contract §7): exact admission
// under bursts, sliding windows on the server's injected clock (no sleeping past minute
// boundaries), tokens per minute corrected to the real usage, concurrency slots given back
// after upstream timeouts and client disconnects, the rate-limit headers on every answer of a
// limited key (OpenAI's, and Anthropic's through @anthropic-ai/sdk), and GET /v1/key's
// `limits`. The in-memory limits run here; Redis ones in the Redis block at the end.
import Anthropic from '@anthropic-ai/sdk';
import { describe, expect, it } from 'vitest';
import { redisUrl, userWithKey, type TestServer } from '../helpers/server.js';
import { type RelaySuite, relaySuite } from '../helpers/relay-suite.js';
import type { MockProvider } from '../mock-provider/server.js';
import { allLogs, client, rawRelay, sdkError, uniq, waitFor } from './relay-helpers.js';

const FIRST_BYTE_MS = 1500;
const PRICE = { input: 0.1, output: 0.2 };
const GO_DURATION = /^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$/;
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

const chatBody = (model: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model, messages: [{ role: 'user', content: 'hello there' }], max_tokens: 50, ...extra });

/** The block's gateway (in-memory limits, or Redis ones) and mock provider, serving the lim-* models. */
const limitsSuite = (redis: boolean, use: (suite: RelaySuite) => void, firstByteMs = FIRST_BYTE_MS) =>
  relaySuite(
    {
      redis,
      env: { MOLE_UPSTREAM_FIRST_BYTE_TIMEOUT_MS: String(firstByteMs), MOLE_HOLD_LEASE_MS: '3000' },
    },
    {
      apiKey: 'limits-cred',
      prices: Object.fromEntries(
        ['lim-a', 'lim-b', 'lim-slow', 'lim-hang', 'lim-stream'].map((m) => [m, PRICE]),
      ),
    },
    use,
  );

const chat = (s: TestServer, key: string, model = 'lim-a', extra: Record<string, unknown> = {}) =>
  rawRelay(s, '/chat/completions', { key, body: chatBody(model, extra) });

/** max_concurrency: of `n` parallel requests to a slow upstream, exactly `limit` run at once. */
async function burstAgainstConcurrency(s: TestServer, mock: MockProvider, limit: number, n: number) {
  const { key, secret } = await userWithKey(s, { key: { max_concurrency: limit } });
  // The admitted requests are held upstream until every request has been refused or has
  // reached the upstream: a delay instead could run out on a loaded machine before the last
  // request arrives, freeing a slot for it.
  let open = () => {};
  mock.setScenario('lim-slow', { holdUntil: new Promise<void>((r) => (open = r)) });
  const upstreamCount = () =>
    mock.requests.filter((r) => (r.body as { model?: string })?.model === 'lim-slow').length;
  const before = upstreamCount();
  try {
    let refusedSoFar = 0;
    const pending = Array.from({ length: n }, () =>
      chat(s, secret, 'lim-slow').then((a) => {
        if (a.status === 429) refusedSoFar++;
        return a;
      }),
    );
    await waitFor(
      async () => refusedSoFar + upstreamCount() - before >= n,
      30_000,
      'every request refused or upstream',
    );
    open();
    const answers = await Promise.all(pending);
    const ok = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 429);
    expect(ok.length).toBe(limit);
    expect(refused.length).toBe(n - limit);
    for (const r of refused) {
      expect(r.json.error.code).toBe('concurrency_limit_exceeded');
      expect(r.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(r.json.error.message).toContain('this API key');
    }
    expect(upstreamCount() - before).toBe(limit);
  } finally {
    mock.clearScenarios();
  }
  // Every slot came back: the key can run `limit` again.
  const k = await rawRelay(s, '/key', { key: secret, method: 'GET' });
  expect(k.json.limits.max_concurrency).toMatchObject({
    limit,
    remaining: limit,
    resets_at: null,
    scope: 'key',
  });
  return key;
}

describe('limits through the relay (in memory)', () => {
  let s: TestServer;
  let mock: MockProvider;
  limitsSuite(false, (started) => {
    ({ s, mock } = started);
  });

  it('rpm: a burst gets exactly rpm answers; the window slides on the clock, without a boundary burst', async () => {
    const { key, secret } = await userWithKey(s, { key: { rpm: 4 } });
    // The clock stands still while the burst is judged: its retry-after reads a whole minute
    // however long a loaded machine takes over the twelve requests.
    const thaw = s.clock.freeze();
    const burst = await Promise.all(Array.from({ length: 12 }, () => chat(s, secret))).finally(thaw);
    expect(burst.filter((a) => a.status === 200).length).toBe(4);
    const refused = burst.find((a) => a.status === 429)!;
    expect(refused.json.error.code).toBe('rate_limit_exceeded');
    expect(refused.json.error.message).toMatch(/4 requests per minute reached for this API key/);
    expect(Number(refused.headers.get('retry-after'))).toBe(60);
    expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    // Half a minute on: the next minute may have begun, but the window still holds all four.
    s.clock.advance(30_000);
    expect((await chat(s, secret)).status).toBe(429);
    s.clock.advance(31_500);
    const again = await Promise.all(Array.from({ length: 6 }, () => chat(s, secret)));
    expect(again.filter((a) => a.status === 200).length).toBe(4);
    // Refusals are logged with their code and cost 0.
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows.filter((r) => r.error_code === 'rate_limit_exceeded').length).toBe(8 + 1 + 2);
    expect(rows.filter((r) => r.error_code === 'rate_limit_exceeded').every((r) => r.cost === 0)).toBe(true);
  });

  it('the account limit counts all its keys together', async () => {
    const { user, secret } = await userWithKey(s, { key: { rpm: 100 } });
    expect((await s.api('PATCH', `/api/users/${user.id}`, { rpm: 3 })).body.rpm).toBe(3);
    const second = await s.api('POST', '/api/keys', { name: 'second', user_id: user.id });
    const secrets = [secret, second.body.key as string];
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => chat(s, secrets[i % 2]!)));
    expect(answers.filter((a) => a.status === 200).length).toBe(3);
    const refused = answers.find((a) => a.status === 429)!;
    expect(refused.json.error.message).toContain('this account');
    // The headers report the tightest limit: the account's.
    expect(refused.headers.get('x-ratelimit-limit-requests')).toBe('3');
  });

  it('tpm admits on the estimate (prompt + max_tokens) and keeps the real usage after settle', async () => {
    const { key, secret } = await userWithKey(s, { key: { tpm: 300 } });
    mock.setScenario('lim-b', { completionTokens: 5 });
    try {
      const first = await chat(s, secret, 'lim-b', { max_tokens: 100 });
      expect(first.status).toBe(200);
      const estimate = 300 - Number(first.headers.get('x-ratelimit-remaining-tokens'));
      const [row] = await allLogs(s, { key_id: key.id });
      const used = row!.prompt_tokens + row!.completion_tokens;
      expect(row!.completion_tokens).toBe(5);
      expect(estimate).toBe(row!.prompt_tokens + 100);
      // Corrected at settle: only the real usage stays in the window.
      const k = await rawRelay(s, '/key', { key: secret, method: 'GET' });
      expect(k.json.limits.tpm).toMatchObject({ limit: 300, remaining: 300 - used, scope: 'key' });
      expect(Date.parse(k.json.limits.tpm.resets_at)).toBeGreaterThan(s.clock.now());
      // Two more fit on their estimates only because the first was corrected.
      expect((await chat(s, secret, 'lim-b', { max_tokens: 100 })).status).toBe(200);
      expect((await chat(s, secret, 'lim-b', { max_tokens: 100 })).status).toBe(200);
      // One token more than what is left (300 − 3 × used) is refused.
      const refused = await chat(s, secret, 'lim-b', { max_tokens: 300 - 3 * used - row!.prompt_tokens + 1 });
      expect(refused.status).toBe(429);
      expect(refused.json.error.code).toBe('rate_limit_exceeded');
      expect(refused.json.error.message).toContain('tokens per minute');
      // A request larger than the limit itself: waiting will not help.
      const huge = await chat(s, secret, 'lim-b', { max_tokens: 1000 });
      expect(huge.status).toBe(429);
      expect(huge.headers.get('x-should-retry')).toBe('false');
    } finally {
      mock.clearScenarios();
    }
  });

  it('a slot is given back after an upstream timeout', async () => {
    const { secret } = await userWithKey(s, { key: { max_concurrency: 1 } });
    mock.setScenario('lim-hang', { hangMs: 10_000 });
    try {
      const timedOut = await chat(s, secret, 'lim-hang');
      expect(timedOut.status).toBe(504);
      expect(s.services.limiter.heldSlots()).toBe(0);
    } finally {
      mock.clearScenarios();
    }
    expect((await chat(s, secret)).status).toBe(200);
  });

  it('a slot is given back when the client disconnects mid-stream', async () => {
    const { secret } = await userWithKey(s, { key: { max_concurrency: 1 } });
    mock.setScenario('lim-stream', { chunkDelayMs: 300, completionTokens: 30 });
    try {
      const ac = new AbortController();
      const res = await fetch(`${s.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: chatBody('lim-stream', { stream: true }),
        signal: ac.signal,
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-ratelimit-limit-requests')).toBeNull(); // no rpm on this key
      const reader = res.body!.getReader();
      await reader.read();
      // While it runs, the only slot is taken.
      const busy = await chat(s, secret);
      expect(busy.status).toBe(429);
      expect(busy.json.error.code).toBe('concurrency_limit_exceeded');
      ac.abort();
      await waitFor(async () => s.services.limiter.heldSlots() === 0, 10_000, 'the slot to come back');
    } finally {
      mock.clearScenarios();
    }
    expect((await chat(s, secret)).status).toBe(200);
  });

  it('every answer of a limited key carries the headers: plain, stream, refusals, free answers', async () => {
    const { secret } = await userWithKey(s, { key: { rpm: 10, tpm: 100_000, models: ['lim-*'] } });
    const plain = await chat(s, secret);
    expect(plain.status).toBe(200);
    const h = plain.headers;
    expect([h.get('x-ratelimit-limit-requests'), h.get('x-ratelimit-remaining-requests')]).toEqual([
      '10',
      '9',
    ]);
    expect(h.get('x-ratelimit-reset-requests')).toMatch(GO_DURATION);
    expect(h.get('x-ratelimit-limit-tokens')).toBe('100000');
    expect(Number(h.get('x-ratelimit-remaining-tokens'))).toBeLessThan(100_000);
    expect(h.get('x-ratelimit-reset-tokens')).toMatch(GO_DURATION);
    expect(h.get('anthropic-ratelimit-requests-limit')).toBeNull();

    const stream = await chat(s, secret, 'lim-stream', { stream: true });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('x-ratelimit-remaining-requests')).toBe('8');

    // Refused before the limits (a model outside the key's list): still reported, nothing counted.
    const notAllowed = await chat(s, secret, 'other-model');
    expect(notAllowed.status).toBe(403);
    expect(notAllowed.headers.get('x-ratelimit-remaining-requests')).toBe('8');
    const models = await rawRelay(s, '/models', { key: secret, method: 'GET' });
    expect(models.headers.get('x-ratelimit-limit-requests')).toBe('10');

    // The SDK sees them too.
    const { response } = await client(s, secret)
      .chat.completions.create({ model: 'lim-a', messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('7');

    // A key without limits gets none.
    const free = await userWithKey(s);
    expect((await chat(s, free.secret)).headers.get('x-ratelimit-limit-requests')).toBeNull();
  });

  it('/v1/messages answers carry anthropic-ratelimit-* (RFC 3339 resets), read by @anthropic-ai/sdk', async () => {
    const { secret } = await userWithKey(s, { key: { rpm: 2, tpm: 50_000 } });
    const sdk = new Anthropic({ baseURL: s.url, apiKey: secret, maxRetries: 0, timeout: 20_000 });
    const { response } = await sdk.messages
      .create({ model: 'lim-a', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] })
      .withResponse();
    const h = response.headers;
    expect(h.get('anthropic-ratelimit-requests-limit')).toBe('2');
    expect(h.get('anthropic-ratelimit-requests-remaining')).toBe('1');
    expect(h.get('anthropic-ratelimit-requests-reset')).toMatch(RFC3339);
    expect(Date.parse(h.get('anthropic-ratelimit-requests-reset')!)).toBeGreaterThan(s.clock.now());
    expect(h.get('anthropic-ratelimit-tokens-limit')).toBe('50000');
    expect(h.get('anthropic-ratelimit-tokens-reset')).toMatch(RFC3339);
    expect(h.get('x-ratelimit-limit-requests')).toBe('2');

    const stream = sdk.messages.stream({
      model: 'lim-a',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'hi' }],
    });
    const { response: sr } = await stream.withResponse();
    await stream.finalMessage();
    expect(sr.headers.get('anthropic-ratelimit-requests-remaining')).toBe('0');

    try {
      await sdk.messages.create({
        model: 'lim-a',
        max_tokens: 50,
        messages: [{ role: 'user', content: 'hi' }],
      });
      throw new Error('expected a refusal');
    } catch (err) {
      expect(err).toBeInstanceOf(Anthropic.RateLimitError);
      const e = err as InstanceType<typeof Anthropic.RateLimitError>;
      expect(e.status).toBe(429);
      expect(e.headers?.get('retry-after')).toMatch(/^\d+$/);
      expect(e.headers?.get('anthropic-ratelimit-requests-remaining')).toBe('0');
      expect((e.error as { error: { code: string } }).error.code).toBe('rate_limit_exceeded');
    }
  });

  it('GET /v1/key shows each limit in force with limit, remaining and resets_at', async () => {
    const { user, secret } = await userWithKey(s, { key: { rpm: 5, max_concurrency: 2 } });
    await s.api('PATCH', `/api/users/${user.id}`, { tpm: 9000 });
    const none = await rawRelay(s, '/key', { key: secret, method: 'GET' });
    expect(none.json.limits).toEqual({
      rpm: { limit: 5, remaining: 5, resets_at: null, scope: 'key' },
      tpm: { limit: 9000, remaining: 9000, resets_at: null, scope: 'account' },
      max_concurrency: { limit: 2, remaining: 2, resets_at: null, scope: 'key' },
    });
    expect(none.json).toMatchObject({ rpm: 5, max_concurrency: 2, tpm: null });
    expect((await chat(s, secret)).status).toBe(200);
    const after = await rawRelay(s, '/key', { key: secret, method: 'GET' });
    expect(after.json.limits.rpm.remaining).toBe(4);
    const resets = Date.parse(after.json.limits.rpm.resets_at);
    expect(resets - s.clock.now()).toBeGreaterThan(59_000);
    expect(resets - s.clock.now()).toBeLessThanOrEqual(61_000);
    const unlimited = await userWithKey(s);
    expect((await rawRelay(s, '/key', { key: unlimited.secret, method: 'GET' })).json.limits).toEqual({});
  });

  it('a group default applies to keys without their own limit, and says so', async () => {
    const group = uniq('lim-g');
    expect((await s.api('PUT', `/api/groups/${group}`, { rpm: 2 })).status).toBe(200);
    const { secret } = await userWithKey(s, { group });
    const out = await Promise.all(Array.from({ length: 6 }, () => chat(s, secret)));
    expect(out.filter((a) => a.status === 200).length).toBe(2);
    const refused = out.find((a) => a.status === 429)!;
    expect(refused.json.error.message).toContain("its group's default");
    const k = await rawRelay(s, '/key', { key: secret, method: 'GET' });
    expect(k.json.limits.rpm).toMatchObject({ limit: 2, remaining: 0, scope: 'group' });
  });

  it('group models: the group uses only those, in the relay and in the models lists', async () => {
    const group = uniq('lim-m');
    const g = await s.api('PUT', `/api/groups/${group}`, { models: ['lim-a'] });
    expect(g.body).toMatchObject({ name: group, multiplier: 1, models: ['lim-a'] });
    const { secret, user } = await userWithKey(s, { group });
    expect((await chat(s, secret, 'lim-a')).status).toBe(200);
    const refused = await chat(s, secret, 'lim-b');
    expect(refused.status).toBe(404);
    expect(refused.json.error.code).toBe('model_not_found');
    const list = await client(s, secret).models.list();
    expect(list.data.map((m) => m.id)).toEqual(['lim-a']);
    const admin = await s.api('GET', `/api/models?group=${group}`);
    expect(admin.body.data.map((m: { id: string }) => m.id)).toEqual(['lim-a']);
    // Lifting the restriction (null) lets the group use every model again.
    await s.api('PUT', `/api/groups/${group}`, { models: null });
    expect((await chat(s, secret, 'lim-b')).status).toBe(200);
    expect(user.group).toBe(group);
  });

  it('refusals that pass with time carry retry-after; the SDK error says which limit', async () => {
    const { secret } = await userWithKey(s, { key: { rpm: 1 } });
    const c = client(s, secret);
    await c.chat.completions.create({ model: 'lim-a', messages: [{ role: 'user', content: 'hi' }] });
    const err = await sdkError(
      c.chat.completions.create({ model: 'lim-a', messages: [{ role: 'user', content: 'hi' }] }),
    );
    expect([err.status, err.code, err.type]).toEqual([429, 'rate_limit_exceeded', 'rate_limit_error']);
    expect(Number(err.headers?.get('retry-after-ms'))).toBeGreaterThan(59_000);
    expect(err.headers?.get('x-should-retry')).toBeNull();
  });
});

describe.skipIf(!redisUrl())('limits through the relay (Redis)', () => {
  let s: TestServer;
  limitsSuite(true, (started) => {
    ({ s } = started);
  });

  it('rpm and tpm, with the headers', async () => {
    const { secret } = await userWithKey(s, { key: { rpm: 3, tpm: 100_000 } });
    const out = await Promise.all(Array.from({ length: 9 }, () => chat(s, secret)));
    expect(out.filter((a) => a.status === 200).length).toBe(3);
    expect(out.every((a) => a.headers.get('x-ratelimit-limit-tokens') === '100000')).toBe(true);
    s.clock.advance(61_000);
    expect((await chat(s, secret)).status).toBe(200);
  });
});

// The held requests must outlast however long a loaded machine takes to answer the other 47:
// with the suites' 1.5 s first-byte timeout they timed out (504), freeing their slots to three
// more (seen at load 9–12). Each backend's burst gets a gateway whose timeout is the wait's.
describe.each([
  ['in memory', false],
  ['Redis', true],
] as const)('max_concurrency through the relay (%s)', (_name, redis) => {
  let s: TestServer;
  let mock: MockProvider;
  if (redis && !redisUrl()) return;
  limitsSuite(
    redis,
    (started) => {
      ({ s, mock } = started);
    },
    60_000,
  );

  it('max_concurrency 3: of 50 parallel requests to a held upstream exactly 3 run', async () => {
    await burstAgainstConcurrency(s, mock, 3, 50);
  });
});
