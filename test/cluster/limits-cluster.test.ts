// Two gateways on one PostgreSQL database and one Redis: rpm, tpm and concurrency slots are
// counted once for both, and the slots of an instance that dies expire with their lease.
import { describe, expect, it } from 'vitest';
import { NO_LIMITS } from '../../src/limits/policy.js';
import { countChatPrompt } from '../../src/relay/tokens.js';
import { userWithKey, type TestServer } from '../helpers/server.js';
import { suiteMock } from '../helpers/suite.js';
import { withUpstreamHeld } from '../relay/relay-helpers.js';
import { clusterReady, pairForSuite } from './helpers.js';

const enabled = clusterReady('limits cluster suite');

const LEASE_MS = 3000;
const PRICE = { input: 0.1, output: 0.2 };

const chat = (s: TestServer, secret: string, model = 'cl-fast') =>
  fetch(s.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'dig' }], max_tokens: 20 }),
  });
const code = async (r: Response) =>
  r.status === 200 ? 'ok' : ((await r.json()) as { error: { code: string } }).error.code;

describe.skipIf(!enabled)('limits shared by two instances (PostgreSQL + Redis)', () => {
  const mock = suiteMock({ apiKey: 'cluster-cred' });
  const { a, b } = pairForSuite(() => ({
    env: { MOLE_HOLD_LEASE_MS: String(LEASE_MS) },
    prices: { 'cl-fast': PRICE, 'cl-slow': PRICE },
    channel: { type: 'openai', base_url: mock.url, api_key: 'cluster-cred' },
  }));

  it('max_concurrency 3: of 50 parallel requests over both instances exactly 3 run', async () => {
    const { secret } = await userWithKey(a, { key: { max_concurrency: 3 } });
    try {
      const answers = await withUpstreamHeld(
        mock,
        'cl-slow',
        Array.from({ length: 50 }, (_, i) => () => chat(i % 2 ? a : b, secret, 'cl-slow')),
      );
      const codes = await Promise.all(answers.map(code));
      // Any other answer is named, so a failure under load says what it was.
      expect(codes.filter((c) => c !== 'ok' && c !== 'concurrency_limit_exceeded')).toEqual([]);
      expect(codes.filter((c) => c === 'ok').length).toBe(3);
      expect(codes.filter((c) => c === 'concurrency_limit_exceeded').length).toBe(47);
    } finally {
      mock.clearScenarios();
    }
    // All three slots came back, on whichever instance they were taken.
    const again = await Promise.all(Array.from({ length: 3 }, (_, i) => chat(i % 2 ? a : b, secret)));
    expect(again.map((r) => r.status)).toEqual([200, 200, 200]);
  });

  it('rpm and tpm are counted once for both instances', async () => {
    const { secret } = await userWithKey(a, { key: { rpm: 5 } });
    const answers = await Promise.all(Array.from({ length: 16 }, (_, i) => chat(i % 2 ? a : b, secret)));
    expect(answers.filter((r) => r.status === 200).length).toBe(5);
    const refused = answers.find((r) => r.status === 429)!;
    expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    // Tokens: each is admitted on its estimate (prompt + max_tokens); none ends during the burst.
    const estimate = countChatPrompt([{ role: 'user', content: 'dig' }]) + 20;
    const t = await userWithKey(a, { key: { tpm: 3 * estimate + 1 } });
    try {
      const tAnswers = await withUpstreamHeld(
        mock,
        'cl-slow',
        Array.from({ length: 10 }, (_, i) => () => chat(i % 2 ? a : b, t.secret, 'cl-slow')),
      );
      expect(tAnswers.filter((r) => r.status === 200).length).toBe(3);
    } finally {
      mock.clearScenarios();
    }
  });

  it("a killed instance's slots expire with their lease; the other instance takes them", async () => {
    const { key, user, secret } = await userWithKey(a, { key: { max_concurrency: 1 } });
    // Instance a takes the key's only slot and dies: no renewal, nothing given back.
    const taken = await a.services.limiter.admit(
      {
        keyId: key.id,
        userId: user.id,
        key: { ...NO_LIMITS, maxConcurrency: 1 },
        account: NO_LIMITS,
        keyGroup: null,
        accountGroup: null,
      },
      0,
    );
    expect(taken.ok).toBe(true);
    await a.services.limiter.close();
    const busy = await chat(b, secret);
    expect(await code(busy)).toBe('concurrency_limit_exceeded');
    // b's clock passes the lease: the slot is free again.
    b.clock.advance(LEASE_MS + 100);
    expect((await chat(b, secret)).status).toBe(200);
  });
});
