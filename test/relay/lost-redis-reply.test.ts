// A Redis answer that never comes: the connection is cut after Redis ran a request's
// admission script (its worst case held against the key's quota) and before the answer
// arrived, or Redis stops answering without closing it (stalled, or a link that drops
// packets). The request is answered 503 and charged nothing, without waiting longer than
// MOLE_REDIS_TIMEOUT_MS; the hold it left in Redis must not keep counting once Redis answers
// again, or the key would be refused for money it still has until a restart.
import { describe, expect, it } from 'vitest';
import { databaseId } from '../../src/accounts/master-key.js';
import { waitFor } from '../helpers/process.js';
import { holdsOn, redisPrefixOf } from '../helpers/redis-holds.js';
import { redisUrl, startTestServer, userWithKey } from '../helpers/server.js';
import { tcpProxy } from '../helpers/tcp-proxy.js';
import { addPricedChannel, rawRelay, uniq } from './relay-helpers.js';

const PRICE = { input: 1, output: 2 }; // USD per 1M tokens
const MESSAGES = [{ role: 'user', content: 'hi' }];
const MAX_TOKENS = 8;

/**
 * A gateway reaching Redis through a proxy, and a key with a quota, already used once (so its
 * counters are in Redis: a first use only seeds them). The quota has room for a request's hold
 * on its first try (an upper bound of its worst case, BOUND_HEADROOM times over), so the
 * request that loses its answer does hold something. Whether that hold still counts is read in
 * Redis itself, past the proxy, the way the scripts count it: a hold field counts while its
 * instance's liveness key exists.
 */
async function scenario(key: Record<string, unknown>) {
  const proxy = await tcpProxy(new URL(redisUrl()!));
  const s = await startTestServer({ env: { REDIS_URL: proxy.url(), MOLE_REDIS_TIMEOUT_MS: '300' } });
  const model = uniq('lost-reply');
  await addPricedChannel(s, { type: 'mock' }, { [model]: PRICE });
  const { secret, key: made } = await userWithKey(s, { balance: 10, key: { quota: 1, ...key } });
  const prefix = redisPrefixOf(await databaseId(s.services.storage.db));
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
    /** The key's holds in Redis (nano-USD): those that count, and every hold field. */
    holds: () => holdsOn(redisUrl()!, prefix, 'k', made.id),
    /** The first answer once Redis answers again (not 503). */
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
      // Redis ran the script: its hold is there, its answer lost. (The field stays until a
      // script next reads the counter, also once the gateway, timed out, dropped its lease.)
      await waitFor(async () => (await t.holds()).all > 0, 5_000, 'the hold in Redis');
      await t.proxy.stop();
      expect((await lost).status).toBe(503);
      await t.proxy.start();
      expect(await t.servedAgain()).toBe(200);
      // The lost hold's liveness key went before any script once Redis was back.
      expect((await t.holds()).live).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('Redis stops answering: 503 after MOLE_REDIS_TIMEOUT_MS, and the unanswered hold stops counting', async () => {
    const t = await scenario({});
    try {
      t.proxy.dropReplies();
      const stalling = t.ask();
      await waitFor(async () => (await t.holds()).all > 0, 5_000, 'the hold in Redis');
      const stalled = await stalling;
      expect(stalled.status, stalled.text).toBe(503);
      expect(stalled.json.error.code).toBe('service_unavailable');
      expect(stalled.headers.get('retry-after')).toMatch(/^\d+$/);
      // The stalled link is cut and the client reconnects.
      await t.proxy.stop();
      await t.proxy.start();
      expect(await t.servedAgain()).toBe(200);
      expect((await t.holds()).live).toBe(0);
    } finally {
      await t.close();
    }
  });
});
