// A key with one concurrency slot used one request after another, over two instances: each
// request is answered only once its slot is free again in Redis, so the next one, sent the
// moment the answer arrives and admitted by the other instance, is never refused for a slot
// the finished request still held. Instance `a` reaches Redis over a slow link (every command
// 40 ms late), which would let the other instance see the slot still taken if `a` gave it
// back after answering.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { tcpProxy } from '../helpers/tcp-proxy.js';
import { redisUrl, startTestServer, type TestServer, userWithKey } from '../helpers/server.js';
import { startMockProvider, type MockProvider } from '../mock-provider/server.js';
import { addPricedChannel } from '../relay/relay-helpers.js';
import { clusterReady } from './helpers.js';

const enabled = clusterReady('slot release order suite');
const PRICE = { input: 0.1, output: 0.2 };
const MODELS = ['ro-ok', 'ro-refused', 'ro-down'];

describe.skipIf(!enabled)('a concurrency slot is free before the answer arrives (two instances)', () => {
  let mock: MockProvider;
  let proxy: Awaited<ReturnType<typeof tcpProxy>>;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    mock = await startMockProvider({ apiKey: 'order-cred' });
    proxy = await tcpProxy(new URL(redisUrl()!), { delayMs: 40 });
    a = await startTestServer({ backend: 'postgres', env: { REDIS_URL: proxy.url() } });
    b = await startTestServer({ shareWith: a, redis: true });
    await addPricedChannel(
      a,
      { type: 'openai', base_url: mock.url, api_key: 'order-cred' },
      Object.fromEntries(MODELS.map((m) => [m, PRICE])),
    );
    // The upstream refuses one model's requests as bad (passed on) and fails another's (502).
    mock.setScenario('ro-refused', { status: 400 });
    mock.setScenario('ro-down', { status: 500 });
    await vi.waitFor(() => expect(MODELS.every((m) => b.services.channels.serves('default', m))).toBe(true), {
      timeout: 3000,
      interval: 20,
    });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await proxy?.stop();
    await mock?.close();
  });

  const chat = (s: TestServer, secret: string, model: string, stream = false) =>
    fetch(s.url + '/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'dig' }], max_tokens: 8 }),
    });
  /** The request's status once its whole answer has been read. */
  const status = async (r: Promise<Response>) => {
    const res = await r;
    await res.arrayBuffer();
    return res.status;
  };

  it.each([
    ['an answer', 'ro-ok', false, 200],
    ['a streamed answer', 'ro-ok', true, 200],
    ['an upstream refusal passed on', 'ro-refused', false, 400],
    ['every upstream failing', 'ro-down', false, 502],
  ] as const)(
    'after %s on the slow instance, the other admits the next request at once',
    async (_, model, stream, expected) => {
      const { secret } = await userWithKey(a, { key: { max_concurrency: 1 } });
      for (let i = 0; i < 3; i++) {
        expect(await status(chat(a, secret, model, stream))).toBe(expected);
        expect(await status(chat(b, secret, 'ro-ok'))).toBe(200);
      }
    },
  );
});
