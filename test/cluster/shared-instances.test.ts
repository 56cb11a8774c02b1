// Two gateways on one PostgreSQL database and one Redis: caches, rate limits and quota
// counters are shared, so limits hold across instances.
import { describe, expect, it, vi } from 'vitest';
import { createRedis } from '../../src/shared/redis.js';
import { countChatPrompt } from '../../src/relay/tokens.js';
import { costNano } from '../../src/billing/money.js';
import { clusterReady, pairForSuite } from './helpers.js';
import { redisUrl, startTestServer, userWithKey, type TestServer } from '../helpers/server.js';
import { addPricedChannel } from '../relay/relay-helpers.js';

const messages = [{ role: 'user', content: 'dig a tunnel' }];
const MAX_TOKENS = 12; // the built-in mock answers 12 tokens, so actual cost = worst case
const PRICE = {
  inputNanoPerM: 150_000_000,
  outputNanoPerM: 600_000_000,
  cachedInputNanoPerM: null,
  cacheWriteNanoPerM: null,
  cacheWrite1hNanoPerM: null,
  webSearchNanoPerK: null,
  priorityPpm: null,
};
const worst = costNano(
  { promptTokens: countChatPrompt(messages), cachedTokens: 0, completionTokens: MAX_TOKENS },
  PRICE,
  1_000_000,
);

const chat = (s: TestServer, secret: string) =>
  fetch(s.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mole-mini', messages, max_tokens: MAX_TOKENS }),
  });

describe.skipIf(!clusterReady('shared-instance suite'))('two instances sharing PostgreSQL + Redis', () => {
  const { a, b } = pairForSuite({ prices: { 'mole-mini': { input: 0.15, output: 0.6 } } });

  it('a key quota that covers 3 requests admits at most 3 of 30 spread over both instances', async () => {
    const { key, secret } = await userWithKey(a, {
      balance: 100,
      key: { quota: (3 * worst + Math.floor(worst / 2)) / 1e9 },
    });
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => chat(i % 2 ? a : b, secret)));
    const codes = await Promise.all(
      answers.map(async (r) =>
        r.status === 200 ? 'ok' : ((await r.json()) as { error: { code: string } }).error.code,
      ),
    );
    expect(codes.filter((c) => c === 'ok').length).toBe(3);
    expect(codes.filter((c) => c === 'insufficient_quota').length).toBe(27);
    await a.services.flush();
    await b.services.flush();
    const k = await a.api('GET', `/api/keys/${key.id}`);
    expect(Math.round(k.body.used * 1e9)).toBe(3 * worst);
    expect(k.body.used).toBeLessThanOrEqual(k.body.quota);
  });

  it('an account balance that covers 3 requests admits at most 3, across keys and instances', async () => {
    const { user, secret } = await userWithKey(a, { balance: (3 * worst + 1) / 1e9 });
    const second = await a.api('POST', '/api/keys', { name: 'second', user_id: user.id });
    const secrets = [secret, second.body.key as string];
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => chat(i % 2 ? a : b, secrets[i % 2]!)),
    );
    expect(answers.filter((r) => r.status === 200).length).toBe(3);
    await a.services.flush();
    await b.services.flush();
    const u = await a.api('GET', `/api/users/${user.id}`);
    expect(Math.round(u.body.balance * 1e9)).toBe(1);
  });

  it('disabling a key on one instance refuses it on the other at once', async () => {
    const { key, secret } = await userWithKey(a);
    expect((await chat(b, secret)).status).toBe(200); // b has it cached now
    expect((await a.api('PATCH', `/api/keys/${key.id}`, { status: 'disabled' })).status).toBe(200);
    let code = '';
    for (let i = 0; i < 50; i++) {
      const r = await chat(b, secret);
      code = r.status === 200 ? 'ok' : ((await r.json()) as { error: { code: string } }).error.code;
      if (code === 'key_disabled') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(code).toBe('key_disabled');
  });

  it('GET /v1/key on either instance shows the spend made on both', async () => {
    const { secret } = await userWithKey(a, { balance: 1 });
    expect((await chat(b, secret)).status).toBe(200); // b holds the key's counters from here
    for (let i = 0; i < 3; i++) expect((await chat(a, secret)).status).toBe(200);
    await a.services.flush();
    await b.services.flush();
    for (const s of [a, b]) {
      const self = (await (
        await fetch(`${s.url}/v1/key`, { headers: { authorization: `Bearer ${secret}` } })
      ).json()) as { used: number; account_balance: number };
      expect(Math.round(self.used * 1e9)).toBe(4 * worst);
      expect(Math.round(self.account_balance * 1e9)).toBe(1e9 - 4 * worst);
    }
  });

  it('a requests-per-minute limit is counted across instances', async () => {
    const { secret } = await userWithKey(a, { key: { rpm: 4 } });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await chat(i % 2 ? a : b, secret)).status);
    expect(statuses.filter((s) => s === 200).length).toBe(4);
    const limited = await chat(a, secret);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe('rate_limit_exceeded');
  });

  it('a top-up on one instance is spendable on the other', async () => {
    const { user, secret } = await userWithKey(a, { balance: 0 });
    const refused = await chat(b, secret);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('x-should-retry')).toBe('false');
    expect((await a.api('POST', `/api/users/${user.id}/topup`, { amount: 1 })).status).toBe(200);
    expect((await chat(b, secret)).status).toBe(200);
  });
});

describe.skipIf(!redisUrl())('separate databases sharing one Redis', () => {
  it('hear only their own database’s announcements', async () => {
    const one = await startTestServer({ backend: 'sqlite', redis: true });
    const two = await startTestServer({ backend: 'sqlite', redis: true });
    const heard: string[] = [];
    two.services.bus.on((m) => heard.push(m.kind === 'group' ? m.name : m.kind));
    try {
      expect(one.services.bus.channel).not.toBe(two.services.bus.channel);
      // Redis passes on what it is given in order: `two` hears one's change before the marker
      // published after it, if it hears it at all.
      expect((await one.api('PUT', '/api/groups/one-only', { multiplier: 2 })).status).toBe(200);
      const marker = createRedis(redisUrl()!);
      await marker.connect();
      await marker.publish(
        two.services.bus.channel,
        JSON.stringify({ origin: 'test', msg: { kind: 'group', name: 'marker' } }),
      );
      marker.destroy();
      await vi.waitFor(() => expect(heard).toContain('marker'), { timeout: 3000, interval: 10 });
      expect(heard).toEqual(['marker']);
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('keep separate counters, though their key and user ids coincide', async () => {
    const one = await startTestServer({ backend: 'sqlite', redis: true });
    const two = await startTestServer({ backend: 'sqlite', redis: true });
    try {
      for (const s of [one, two])
        await addPricedChannel(s, { type: 'mock' }, { 'mole-mini': { input: 0.15, output: 0.6 } });
      const a = await userWithKey(one, { key: { quota: worst / 1e9 } });
      const b = await userWithKey(two, { key: { quota: worst / 1e9 } });
      expect(a.key.id).toBe(b.key.id); // both databases start their ids at 1
      expect((await chat(one, a.secret)).status).toBe(200);
      expect((await chat(two, b.secret)).status).toBe(200);
      expect((await chat(one, a.secret)).status).toBe(429);
    } finally {
      await one.close();
      await two.close();
    }
  });
});
