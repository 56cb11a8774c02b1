// Redis that stops answering without closing the connection (stalled, or a link that drops
// packets): a relay request must not wait for it forever. It gets 503 service_unavailable once
// MOLE_REDIS_TIMEOUT_MS has passed without an answer, is charged nothing, and whatever its
// unanswered admission script held stops counting once Redis answers again.
import { describe, expect, it } from 'vitest';
import { countChatPrompt } from '../../src/relay/tokens.js';
import { waitFor } from '../helpers/process.js';
import { redisUrl, startTestServer, userWithKey } from '../helpers/server.js';
import { tcpProxy } from '../helpers/tcp-proxy.js';
import { addPricedChannel, rawRelay, uniq } from './relay-helpers.js';

const PRICE = { input: 1, output: 2 };
const MESSAGES = [{ role: 'user', content: 'hi' }];
const WORST = (countChatPrompt(MESSAGES) * PRICE.input + 8 * PRICE.output) / 1e6;

describe.skipIf(!redisUrl())('relay while Redis does not answer', () => {
  it('answers 503 after the Redis timeout instead of waiting, and the unanswered hold does not stay', async () => {
    const proxy = await tcpProxy(new URL(redisUrl()!));
    const s = await startTestServer({ env: { REDIS_URL: proxy.url(), MOLE_REDIS_TIMEOUT_MS: '300' } });
    try {
      const model = uniq('stall');
      await addPricedChannel(s, { type: 'mock' }, { [model]: PRICE });
      const { secret } = await userWithKey(s, { balance: 10, key: { quota: WORST * 2.5 } });
      // A hang fails the test here, through the abort, rather than through its own timeout.
      const ask = () =>
        rawRelay(s, '/chat/completions', {
          key: secret,
          body: JSON.stringify({ model, messages: MESSAGES, max_tokens: 8 }),
          signal: AbortSignal.timeout(10_000),
        });
      expect((await ask()).status).toBe(200);

      proxy.dropReplies();
      const stalled = await ask();
      expect(stalled.status, stalled.text).toBe(503);
      expect(stalled.json.error.code).toBe('service_unavailable');
      expect(stalled.headers.get('retry-after')).toMatch(/^\d+$/);

      // Redis answers again (the stalled link is cut and the client reconnects).
      await proxy.stop();
      await proxy.start();
      let status = 0;
      await waitFor(
        async () => {
          status = (await ask()).status;
          return status !== 503;
        },
        15_000,
        'served again',
      );
      // One answer charged, room for one more worst case: the stalled hold is gone.
      expect(status).toBe(200);
    } finally {
      await s.close();
      await proxy.stop();
    }
  });
});
