// A Redis answer that never comes: the connection is cut after Redis ran a request's
// admission script (its worst case held against the key's quota) and before the answer
// arrived, or Redis stops answering without closing it (stalled, or a link that drops
// packets). The request is answered 503 and charged nothing, without waiting longer than
// MOLE_REDIS_TIMEOUT_MS; the hold it may have left in Redis must not keep counting once Redis
// answers again, or the key would be refused for money it still has until a restart.
import { describe, expect, it } from 'vitest';
import { countChatPrompt } from '../../src/relay/tokens.js';
import { waitFor } from '../helpers/process.js';
import { redisUrl, startTestServer, userWithKey } from '../helpers/server.js';
import { tcpProxy } from '../helpers/tcp-proxy.js';
import { addPricedChannel, rawRelay, uniq } from './relay-helpers.js';

const PRICE = { input: 1, output: 2 }; // USD per 1M tokens
const MESSAGES = [{ role: 'user', content: 'hi' }];
const MAX_TOKENS = 8;
/** One request's worst case, USD: its prompt and all its output at the price. */
const WORST = (countChatPrompt(MESSAGES) * PRICE.input + MAX_TOKENS * PRICE.output) / 1e6;

/**
 * A gateway reaching Redis through a proxy, and a key whose quota has room for two worst
 * cases and a half, already used once (so its counters are in Redis: a first use only seeds
 * them). After that answer a held worst case leaves no room for another.
 */
async function scenario(key: Record<string, unknown>) {
  const proxy = await tcpProxy(new URL(redisUrl()!));
  const s = await startTestServer({ env: { REDIS_URL: proxy.url(), MOLE_REDIS_TIMEOUT_MS: '300' } });
  const model = uniq('lost-reply');
  await addPricedChannel(s, { type: 'mock' }, { [model]: PRICE });
  const { secret } = await userWithKey(s, { balance: 10, key: { quota: WORST * 2.5, ...key } });
  // A hang fails the test here, through the abort, rather than through its own timeout.
  const ask = () =>
    rawRelay(s, '/chat/completions', {
      key: secret,
      body: JSON.stringify({ model, messages: MESSAGES, max_tokens: MAX_TOKENS }),
      signal: AbortSignal.timeout(10_000),
    });
  expect((await ask()).status).toBe(200);
  return {
    proxy,
    ask,
    /** The first answer once Redis answers again: 200 when the lost hold no longer counts. */
    async servedAgain(): Promise<number> {
      let status = 0;
      await waitFor(
        async () => {
          status = (await ask()).status;
          return status !== 503;
        },
        15_000,
        'served again',
      );
      return status;
    },
    async close() {
      await s.close();
      await proxy.stop();
    },
  };
}

describe.skipIf(!redisUrl())('a Redis answer that never comes', () => {
  it.each([
    ['only the quota (the ledger script alone)', {}],
    [
      'limits and a budget too (the composed admission script)',
      { rpm: 1000, budget: { amount: 1, period: 'daily' } },
    ],
  ])('cut after Redis ran it, with %s: 503, and the lost hold stops counting', async (_, key) => {
    const t = await scenario(key);
    try {
      t.proxy.dropReplies();
      const lost = t.ask();
      await new Promise((r) => setTimeout(r, 100));
      await t.proxy.stop();
      expect((await lost).status).toBe(503);
      await t.proxy.start();
      expect(await t.servedAgain()).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('Redis stops answering: 503 after MOLE_REDIS_TIMEOUT_MS, and the unanswered hold stops counting', async () => {
    const t = await scenario({});
    try {
      t.proxy.dropReplies();
      const stalled = await t.ask();
      expect(stalled.status, stalled.text).toBe(503);
      expect(stalled.json.error.code).toBe('service_unavailable');
      expect(stalled.headers.get('retry-after')).toMatch(/^\d+$/);
      // The stalled link is cut and the client reconnects.
      await t.proxy.stop();
      await t.proxy.start();
      expect(await t.servedAgain()).toBe(200);
    } finally {
      await t.close();
    }
  });
});
