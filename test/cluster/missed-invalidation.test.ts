// Cache invalidation that Redis could not carry: a key disabled on one instance while the
// other, or the instance making the change, had lost its Redis connection. Pub/sub keeps
// nothing for a subscriber that is away, and a publish made while the link is down fails;
// either way the other instance's cached key must not outlive the outage, or a leaked key
// switched off during a Redis blip would keep working there for good.
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/process.js';
import { tcpProxy } from '../helpers/tcp-proxy.js';
import { redisUrl, startTestServer, type TestServer, userWithKey } from '../helpers/server.js';
import { addPricedChannel, uniq } from '../relay/relay-helpers.js';
import { clusterReady } from './helpers.js';

const enabled = clusterReady('missed invalidation suite');

const chat = async (s: TestServer, secret: string, model: string) => {
  const r = await fetch(s.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'dig' }], max_tokens: 4 }),
  });
  const body = (await r.json()) as { error?: { code: string } };
  return { status: r.status, code: body.error?.code ?? null };
};

/** `a` changes the key; `b` has it cached. One of them reaches Redis through `proxy`. */
async function scenario(proxied: 'changer' | 'cacher') {
  const proxy = await tcpProxy(new URL(redisUrl()!));
  const a = await startTestServer({
    backend: 'postgres',
    ...(proxied === 'changer' ? { env: { REDIS_URL: proxy.url() } } : { redis: true }),
  });
  const b = await startTestServer({
    shareWith: a,
    ...(proxied === 'cacher' ? { env: { REDIS_URL: proxy.url() } } : { redis: true }),
  });
  const model = uniq('inv-model');
  await addPricedChannel(a, { type: 'mock' }, { [model]: { input: 1, output: 2 } });
  await waitFor(
    async () => (await chat(b, 'sk-none', model)).code !== 'model_not_found',
    5000,
    'b serves the model',
  );
  const { key, secret } = await userWithKey(a);
  // Cached on b: a read that overlapped the announcements of the key's creation is not kept,
  // so ask until an answer comes from b's cache.
  await waitFor(
    async () => {
      const hits = b.services.verifier.stats.hits;
      expect(await chat(b, secret, model)).toEqual({ status: 200, code: null });
      return b.services.verifier.stats.hits > hits;
    },
    5000,
    'the key cached on b',
  );
  return {
    b,
    model,
    secret,
    /** Cuts the proxied instance off from Redis, disables the key on `a`, and reconnects. */
    async disableDuringOutage() {
      await proxy.stop();
      expect((await a.api('PATCH', `/api/keys/${key.id}`, { status: 'disabled' })).status).toBe(200);
      await proxy.start();
    },
    async close() {
      await b.close();
      await a.close();
      await proxy.stop();
    },
  };
}

describe.skipIf(!enabled)('invalidations missed while Redis was out of reach', () => {
  it('the cacher was away when the key was disabled: once back, it refuses the key', async () => {
    const t = await scenario('cacher');
    try {
      await t.disableDuringOutage();
      // While b has no Redis it answers 503; the first answer after that must be the refusal.
      let last = { status: 503, code: 'service_unavailable' as string | null };
      await waitFor(
        async () => {
          last = await chat(t.b, t.secret, t.model);
          return last.status !== 503;
        },
        15_000,
        'b serving again',
      );
      expect(last).toEqual({ status: 401, code: 'key_disabled' });
    } finally {
      await t.close();
    }
  });

  it('the changer could not announce the change: once it reaches Redis again, the other refuses the key', async () => {
    const t = await scenario('changer');
    try {
      await t.disableDuringOutage();
      await waitFor(
        async () => (await chat(t.b, t.secret, t.model)).code === 'key_disabled',
        15_000,
        'b refusing the disabled key',
      );
      // And it stays refused.
      expect(await chat(t.b, t.secret, t.model)).toEqual({ status: 401, code: 'key_disabled' });
    } finally {
      await t.close();
    }
  });
});
