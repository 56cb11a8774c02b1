// Redis goes out of reach after the upstream has answered, while the request is settled: the
// caller still gets the answer, its cost is charged (log row, key spend, balance) and not
// lost, and Redis's shared counters take the charge exactly once when it answers again, as
// the admission of the next requests shows. Three ways to lose the settlement: Redis gone
// before it is sent, its answer lost after Redis ran it, and the script lost on its way.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countChatPrompt } from '../../src/relay/tokens.js';
import { redisUrl, startTestServer, type TestServer, userWithKey } from '../helpers/server.js';
import { tcpProxy } from '../helpers/tcp-proxy.js';
import { type MockProvider, startMockProvider } from '../mock-provider/server.js';
import { addPricedChannel, allLogs, keyJson, nanoOf, rawRelay, uniq, waitFor } from './relay-helpers.js';

const PRICE = { input: 1, output: 2 }; // USD per 1M tokens: 1,000 and 2,000 nano-USD a token
const MESSAGES = [{ role: 'user', content: 'hi' }];
const MAX_TOKENS = 8;
/** One request's hold, nano-USD: its prompt and all its output. */
const WORST = countChatPrompt(MESSAGES) * 1_000 + MAX_TOKENS * 2_000;

type Loss = 'offline' | 'answer lost' | 'script lost';

describe.skipIf(!redisUrl())('settling while Redis is out of reach', () => {
  let mock: MockProvider;
  beforeAll(async () => {
    mock = await startMockProvider();
  });
  afterAll(async () => {
    await mock?.close();
  });

  async function scenario(key: Record<string, unknown>) {
    const proxy = await tcpProxy(new URL(redisUrl()!));
    const s = await startTestServer({ env: { REDIS_URL: proxy.url(), MOLE_REDIS_TIMEOUT_MS: '300' } });
    const model = uniq('settle-lost');
    await addPricedChannel(s, { type: 'openai', base_url: mock.url, api_key: 'x' }, { [model]: PRICE });
    // Two output tokens: a request costs less than it holds.
    mock.setScenario(model, { completionTokens: 2 });
    const made = await userWithKey(s, { balance: 10, key });
    const keyId = made.key.id as number;
    const ask = () =>
      rawRelay(s, '/chat/completions', {
        key: made.secret,
        body: JSON.stringify({ model, messages: MESSAGES, max_tokens: MAX_TOKENS }),
        signal: AbortSignal.timeout(10_000),
      });
    const upstreamCalls = () =>
      mock.requests.filter((r) => (r.body as { model?: string })?.model === model).length;
    return { proxy, s, model, keyId, ask, upstreamCalls };
  }

  const pendingWrites = async (s: TestServer) => {
    const text = await (await fetch(`${s.url}/metrics`)).text();
    return Number(/^mole_redis_pending_writes (\d+)/m.exec(text)?.[1]);
  };

  it.each<[Loss, Record<string, unknown>]>([
    ['offline', {}],
    ['answer lost', {}],
    ['script lost', {}],
    ['offline', { rpm: 1000, budget: { amount: 1, period: 'daily' } }],
    ['answer lost', { rpm: 1000, budget: { amount: 1, period: 'daily' } }],
    ['script lost', { rpm: 1000, budget: { amount: 1, period: 'daily' } }],
  ])('%s, key %j: answered, charged once in the database and once in Redis', async (loss, key) => {
    const t = await scenario({ quota: 1, ...key });
    try {
      const first = await t.ask();
      expect(first.status, first.text).toBe(200);
      await t.s.services.flush();
      const cost = nanoOf((await allLogs(t.s, { key_id: t.keyId }))[0]!.cost);
      expect(cost).toBeGreaterThan(0n);
      expect(cost).toBeLessThan(BigInt(WORST));

      // The second request reaches the upstream; Redis goes before its answer comes back.
      let open = () => {};
      const gate = new Promise<void>((r) => (open = r));
      mock.setScenario(t.model, { completionTokens: 2, holdUntil: gate });
      const calls = t.upstreamCalls();
      const pending = t.ask();
      await waitFor(async () => t.upstreamCalls() > calls, 10_000, 'the request upstream');
      if (loss === 'offline') {
        await t.proxy.stop();
        await waitFor(
          async () => (await fetch(`${t.s.url}/readyz`)).status === 503,
          10_000,
          'Redis seen gone',
        );
      } else if (loss === 'answer lost') t.proxy.dropReplies();
      else t.proxy.dropRequests();
      mock.setScenario(t.model, { completionTokens: 2 });
      open();
      const second = await pending;
      expect(second.status, second.text).toBe(200);
      await t.s.services.flush();
      const rows = await allLogs(t.s, { key_id: t.keyId });
      expect(rows.map((r) => nanoOf(r.cost))).toEqual([cost, cost]);

      // Redis back (a cut link reconnects): the kept settlement is judged and written once.
      await t.proxy.stop();
      await t.proxy.start();
      await waitFor(async () => (await pendingWrites(t.s)) === 0, 15_000, 'the kept settlement written');
      // A quota with room for one more hold and half a cost: the third request fits and the
      // fourth does not, only when Redis counts the second exactly once.
      const quota = 2n * cost + BigInt(WORST) + cost / 2n;
      const patched = await t.s.api('PATCH', `/api/keys/${t.keyId}`, { quota: Number(quota) / 1e9 });
      expect(patched.status, JSON.stringify(patched.body)).toBe(200);
      const third = await t.ask();
      expect(third.status, third.text).toBe(200);
      const fourth = await t.ask();
      expect(fourth.status, fourth.text).toBe(429);
      expect(fourth.json.error.code).toBe('insufficient_quota');
      expect(nanoOf((await keyJson(t.s, t.keyId)).used)).toBe(3n * cost);
    } finally {
      mock.clearScenarios();
      await t.s.close();
      await t.proxy.stop();
    }
  });
  it.each<[string, Record<string, unknown>]>([
    ['the ledger script', {}],
    ['the composed script', { rpm: 1000, budget: { amount: 1, period: 'daily' } }],
  ])('a hold given back while Redis is away (%s) is given back there once it answers', async (_, key) => {
    const t = await scenario({ quota: 1, ...key });
    try {
      // The first use seeds the counters. Then room for one hold and a half: while one is held,
      // another cannot be.
      const seeded = await t.ask();
      expect(seeded.status, seeded.text).toBe(200);
      await t.s.services.flush();
      const quota = nanoOf((await keyJson(t.s, t.keyId)).used) + BigInt(WORST + WORST / 2);
      expect((await t.s.api('PATCH', `/api/keys/${t.keyId}`, { quota: Number(quota) / 1e9 })).status).toBe(
        200,
      );

      // The upstream fails once Redis is gone: the request holds nothing any more, and its hold
      // must go from Redis too.
      let open = () => {};
      const gate = new Promise<void>((r) => (open = r));
      mock.setScenario(t.model, { status: 500, holdUntil: gate });
      const calls = t.upstreamCalls();
      const pending = t.ask();
      await waitFor(async () => t.upstreamCalls() > calls, 10_000, 'the request upstream');
      await t.proxy.stop();
      // Once the gateway knows Redis is gone, the release is refused unsent: the hold stays in
      // Redis, in the instance's current generation, which is not retired.
      await waitFor(async () => (await fetch(`${t.s.url}/readyz`)).status === 503, 10_000, 'Redis seen gone');
      open();
      expect((await pending).status).toBe(502);
      mock.setScenario(t.model, { completionTokens: 2 });
      await t.proxy.start();
      await waitFor(async () => (await pendingWrites(t.s)) === 0, 15_000, 'the kept release written');
      const after = await t.ask();
      expect(after.status, after.text).toBe(200);
    } finally {
      mock.clearScenarios();
      await t.s.close();
      await t.proxy.stop();
    }
  });
});
