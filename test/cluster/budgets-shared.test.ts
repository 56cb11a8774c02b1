// Two gateways on one PostgreSQL database and one Redis: a periodic budget is one shared
// counter, so a burst spread over both instances never spends past it, and each instance
// sees the other's spend.
import { beforeEach, describe, expect, it } from 'vitest';
import { clusterReady, freezePair, pairForSuite } from './helpers.js';
import { type TestServer, userWithKey } from '../helpers/server.js';

const enabled = clusterReady('shared budgets suite');

// Output at 1 USD per 1M tokens, input free, max_tokens 5 (the mock answers 5): 5000 nano-USD each.
const COST = 5_000;
const usd = (nano: number) => nano / 1e9;

const chat = async (s: TestServer, secret: string) => {
  const r = await fetch(`${s.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mole-mini', messages: [{ role: 'user', content: 'dig' }], max_tokens: 5 }),
  });
  const body = (await r.json()) as { error?: { code: string } };
  return r.status === 200 ? 'ok' : (body.error?.code ?? String(r.status));
};

describe.skipIf(!enabled)('budgets on two instances sharing PostgreSQL + Redis', () => {
  const { a, b } = pairForSuite({ prices: { 'mole-mini': { input: 0, output: 1 } } });
  // A burst must fall in one budget period: a UTC day or month starting during it would start
  // the spend afresh (and admit past the budget).
  beforeEach(() => freezePair(a, b));

  it('a key budget covering 6 requests admits exactly 6 of 40 spread over both instances', async () => {
    const { key, secret } = await userWithKey(a, {
      key: { budget: { amount: usd(6 * COST), period: 'daily' } },
    });
    const codes = await Promise.all(Array.from({ length: 40 }, (_, i) => chat(i % 2 ? a : b, secret)));
    expect(codes.filter((c) => c === 'ok')).toHaveLength(6);
    expect(codes.filter((c) => c === 'budget_exceeded')).toHaveLength(34);
    await a.services.flush();
    await b.services.flush();
    const k = await b.api('GET', `/api/keys/${key.id}`);
    expect(k.body.used).toBe(usd(6 * COST));
    expect(k.body.budget_usage).toMatchObject({ spent: usd(6 * COST), remaining: 0 });
  });

  it('an account budget is shared by its keys on both instances', async () => {
    const { user, secret } = await userWithKey(a);
    await a.api('PATCH', `/api/users/${user.id}`, {
      budget: { amount: usd(4 * COST + 1), period: 'monthly' },
    });
    const second = await a.api('POST', '/api/keys', { name: 'second', user_id: user.id });
    const secrets = [secret, second.body.key as string];
    const codes = await Promise.all(
      Array.from({ length: 30 }, (_, i) => chat(i % 2 ? a : b, secrets[(i >> 1) % 2]!)),
    );
    expect(codes.filter((c) => c === 'ok')).toHaveLength(4);
    expect(codes.filter((c) => c === 'budget_exceeded')).toHaveLength(26);
  });
});
