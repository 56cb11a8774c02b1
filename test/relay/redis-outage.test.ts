// Redis going away under a gateway that shares its counters there (REDIS_URL): a relay request
// that needs Redis to be admitted gets the documented 503 at once (not a 500, not a wait for
// Redis to return), nothing is charged or held, the refusal is logged, and requests are served
// again once Redis is back, without a restart.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/process.js';
import { tcpProxy } from '../helpers/tcp-proxy.js';
import { redisUrl, startTestServer, userWithKey } from '../helpers/server.js';
import { addPricedChannel, rawRelay, uniq } from './relay-helpers.js';

describe.skipIf(!redisUrl())('relay while Redis is away', () => {
  it('answers 503 service_unavailable, charges nothing, logs it, and serves again once Redis is back', async () => {
    const proxy = await tcpProxy(new URL(redisUrl()!));
    const s = await startTestServer({ env: { REDIS_URL: proxy.url() } });
    try {
      const model = uniq('outage-model');
      await addPricedChannel(s, { type: 'mock' }, { [model]: { input: 1, output: 2 } });
      const { secret, user } = await userWithKey(s, { balance: 10 });
      const userId = user.id as number;
      const ask = () =>
        rawRelay(s, '/chat/completions', {
          key: secret,
          body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }),
        });
      expect((await ask()).status).toBe(200);
      const balanceBefore = (await s.api('GET', `/api/users/${userId}`)).body.balance;

      await proxy.stop();
      for (let i = 0; i < 3; i++) {
        const r = await ask();
        expect(r.status, JSON.stringify(r.json)).toBe(503);
        expect(r.json.error.code).toBe('service_unavailable');
        expect(r.json.error.type).toBe('server_error');
        // Where Redis lives is the operator's business, not the caller's.
        expect(JSON.stringify(r.json)).not.toContain('127.0.0.1');
        expect(r.headers.get('retry-after')).toMatch(/^\d+$/);
      }
      // Every protocol answers in its own error shape (here Anthropic Messages).
      const messages = await rawRelay(s, '/messages', {
        key: secret,
        headers: { 'anthropic-version': '2023-06-01' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }),
      });
      expect(messages.status, messages.text).toBe(503);
      expect(messages.json.type).toBe('error');
      await s.services.flush();
      const logs = await s.api('GET', '/api/logs?limit=10');
      const refused = logs.body.data.filter((l: { status: number }) => l.status === 503);
      expect(refused.length).toBe(4);
      for (const l of refused) {
        expect(l.error_code).toBe('service_unavailable');
        expect(l.cost_usd ?? l.cost).toBe(0);
      }

      await proxy.start();
      await waitFor(async () => (await ask()).status === 200, 15_000, 'served again once Redis is back');
      // Only the answers served were charged.
      const after = (await s.api('GET', `/api/users/${userId}`)).body.balance;
      expect(after).toBeLessThan(balanceBefore);
    } finally {
      await s.close();
      await proxy.stop();
    }
  });
});

describe('a gateway whose Redis takes the connection and never answers', () => {
  it('does not start: a clear error within MOLE_REDIS_TIMEOUT_MS, not a silent hang', async () => {
    // A port that accepts connections and says nothing (a firewall, a proxy whose Redis is gone).
    const held = new Set<net.Socket>();
    const silent = net.createServer((sock) => {
      held.add(sock);
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      await expect(
        startTestServer({ env: { REDIS_URL: `redis://127.0.0.1:${port}`, MOLE_REDIS_TIMEOUT_MS: '300' } }),
      ).rejects.toThrow(/Redis did not answer within 300 ms/);
    } finally {
      for (const sock of held) sock.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});
