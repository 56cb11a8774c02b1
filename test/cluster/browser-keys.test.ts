// Ephemeral keys and the kill switch on two gateways sharing PostgreSQL + Redis: a key minted
// on one works on the other; its parent disabled, rotated or deleted on one, or the key revoked,
// kills it on both at once; max_cost holds across both.
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { clusterReady, pairForSuite } from './helpers.js';
import { type TestServer, userWithKey } from '../helpers/server.js';

const enabled = clusterReady('browser-keys cluster suite');

const model = 'mole-browser';
const get = (s: TestServer, secret: string) =>
  fetch(s.url + '/v1/key', { headers: { authorization: `Bearer ${secret}` } });
const mint = async (s: TestServer, parent: string, body: Record<string, unknown> = {}) => {
  const r = await fetch(s.url + '/v1/keys/ephemeral', {
    method: 'POST',
    headers: { authorization: `Bearer ${parent}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(r.status).toBe(201);
  return (await r.json()) as { key: string; id: number };
};
/** Polls until `secret` is refused on `s` (the announcement travels over Redis). */
async function refusedOn(s: TestServer, secret: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const r = await get(s, secret);
    if (r.status !== 200) return r.status;
    await new Promise((res) => setTimeout(res, 10));
  }
  return 200;
}

describe.skipIf(!enabled)('browser keys on two instances sharing PostgreSQL + Redis', () => {
  const { a, b } = pairForSuite({ prices: { [model]: { input: 0, output: 1000 } } });

  it('minted on one, used on both; the parent disabled, rotated or deleted kills it everywhere', async () => {
    const parent = await userWithKey(a);
    for (const change of ['disable', 'rotate', 'delete'] as const) {
      const e = await mint(a, parent.secret);
      // Warm both caches.
      expect((await get(a, e.key)).status).toBe(200);
      expect((await get(b, e.key)).status).toBe(200);
      let current = parent.secret;
      if (change === 'disable') await a.api('PATCH', `/api/keys/${parent.key.id}`, { status: 'disabled' });
      if (change === 'rotate')
        current = (await a.api('POST', `/api/keys/${parent.key.id}/rotate`, {})).body.key;
      if (change === 'delete') await a.api('DELETE', `/api/keys/${parent.key.id}`);
      expect(await refusedOn(a, e.key), change).toBe(401);
      expect(await refusedOn(b, e.key), change).toBe(401);
      if (change === 'disable') await a.api('PATCH', `/api/keys/${parent.key.id}`, { status: 'active' });
      parent.secret = current;
    }
  });

  it('the kill switch on one instance is effective on the other at once', async () => {
    const parent = await userWithKey(a);
    const e = await mint(b, parent.secret);
    expect((await get(a, e.key)).status).toBe(200);
    expect((await get(a, parent.secret)).status).toBe(200);
    expect(
      (
        await fetch(b.url + '/v1/key/revoke', {
          method: 'POST',
          headers: { authorization: `Bearer ${e.key}` },
        })
      ).status,
    ).toBe(200);
    expect(await refusedOn(a, e.key)).toBe(401);
    expect((await get(a, parent.secret)).status).toBe(200);
    const r = await fetch(b.url + '/v1/key/revoke', {
      method: 'POST',
      headers: { authorization: `Bearer ${parent.secret}` },
    });
    expect(r.status).toBe(200);
    expect(await refusedOn(a, parent.secret)).toBe(401);
  });

  it('max_cost holds across both instances', async () => {
    const parent = await userWithKey(a, { balance: 10 });
    const e = await mint(a, parent.secret, { max_cost: 0.035 });
    const clients = [a, b].map((s) => new OpenAI({ baseURL: s.url + '/v1', apiKey: e.key, maxRetries: 0 }));
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        clients[i % 2]!.chat.completions.create({
          model,
          messages: [{ role: 'user', content: 'hi' }],
          max_tokens: 10,
        }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    await a.services.flush();
    await b.services.flush();
    const k = await a.api('GET', `/api/keys/${parent.key.id}`);
    expect(Math.round(k.body.used * 1e9)).toBe(30_000_000);
  });
});
