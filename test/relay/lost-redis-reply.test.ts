// A Redis reply lost on the way back: the connection is cut after Redis ran a request's
// admission script (its worst case held against the key's quota) and before the answer
// arrived. The request is answered 503 and charged nothing; the hold it may have left in
// Redis must not keep counting once Redis is reachable again, or the key would be refused
// for money it still has until the gateway restarts.
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/process.js';
import { tcpProxy } from '../helpers/tcp-proxy.js';
import { redisUrl, startTestServer, userWithKey } from '../helpers/server.js';
import { countChatPrompt } from '../../src/relay/tokens.js';
import { addPricedChannel, rawRelay, uniq } from './relay-helpers.js';

const PRICE = { input: 1, output: 2 }; // USD per 1M tokens
const MESSAGES = [{ role: 'user', content: 'hi' }];
const MAX_TOKENS = 8;
/** One request's worst case, USD: its prompt and all its output at the price. */
const WORST = (countChatPrompt(MESSAGES) * PRICE.input + MAX_TOKENS * PRICE.output) / 1e6;

describe.skipIf(!redisUrl())('a Redis reply lost after admission ran', () => {
  it.each([
    ['only the quota (the ledger script alone)', {}],
    [
      'limits and a budget too (the composed admission script)',
      { rpm: 1000, budget: { amount: 1, period: 'daily' } },
    ],
  ])('with %s: the lost hold stops counting once Redis is back', async (_, extra) => {
    const proxy = await tcpProxy(new URL(redisUrl()!));
    const s = await startTestServer({ env: { REDIS_URL: proxy.url() } });
    try {
      const model = uniq('lost-reply');
      await addPricedChannel(s, { type: 'mock' }, { [model]: PRICE });
      // Room for two worst cases and a half: after one answer (it costs less than its worst
      // case), a held worst case leaves no room for another.
      const { secret } = await userWithKey(s, { balance: 10, key: { quota: WORST * 2.5, ...extra } });
      const ask = () =>
        rawRelay(s, '/chat/completions', {
          key: secret,
          body: JSON.stringify({ model, messages: MESSAGES, max_tokens: MAX_TOKENS }),
        });

      // The key's counters are in Redis now (a first use only seeds them).
      expect((await ask()).status).toBe(200);

      // Redis runs the admission script; its answer never comes back, then the link is cut.
      proxy.dropReplies();
      const lost = ask();
      await new Promise((r) => setTimeout(r, 300));
      await proxy.stop();
      expect((await lost).status).toBe(503);
      await proxy.start();

      // Served again once Redis is back: the quota still holds one worst case.
      let status = 0;
      await waitFor(
        async () => {
          status = (await ask()).status;
          return status !== 503;
        },
        15_000,
        'served again',
      );
      expect(status).toBe(200);
    } finally {
      await s.close();
      await proxy.stop();
    }
  });
});
