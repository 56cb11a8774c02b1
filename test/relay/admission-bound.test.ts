// Long prompts are admitted on a cheap upper bound (UTF-8 bytes ≥ tokens) and tokenized only
// when that bound would be refused: a key whose quota covers the exact worst case but not the
// bound's is still served, and one that cannot afford the exact worst case is still refused,
// with the same message as before. Estimates (no usage from upstream) use the exact count.
import { describe, expect, it } from 'vitest';
import { backends, userWithKey, type TestServer } from '../helpers/server.js';
import { relaySuite } from '../helpers/relay-suite.js';
import type { MockProvider } from '../mock-provider/server.js';
import { chatPromptBound, countChatPrompt } from '../../src/relay/tokens.js';
import { allLogs, client, expectedCostNano, sdkError } from './relay-helpers.js';

const PRICE = { input: 2, output: 8 };
const MAX_TOKENS = 5;
// ~1.3k tokens of CJK: about three UTF-8 bytes per token, so the bound is ~3× the count.
const messages = [
  { role: 'user' as const, content: '我们的网关把请求转发给上游模型，并记录每一次调用的用量。'.repeat(60) },
];

describe.each(backends())('admission on the prompt bound [%s]', (backend) => {
  let s: TestServer;
  let mock: MockProvider;
  relaySuite({ backend }, { apiKey: 'bound-upstream', prices: { bound: PRICE } }, (started) => {
    ({ s, mock } = started);
  });

  const exact = () => expectedCostNano({ prompt: countChatPrompt(messages), completion: MAX_TOKENS }, PRICE);
  const bound = () => expectedCostNano({ prompt: chatPromptBound(messages), completion: MAX_TOKENS }, PRICE);

  it('a quota between the exact worst case and the bound’s is served; below the exact one is refused', async () => {
    expect(bound()).toBeGreaterThan(2n * exact());
    const quota = exact() + (bound() - exact()) / 2n;
    const { secret } = await userWithKey(s, { balance: 100, key: { quota: Number(quota) / 1e9 } });
    const ok = await client(s, secret).chat.completions.create({
      model: 'bound',
      messages,
      max_tokens: MAX_TOKENS,
    });
    expect(ok.usage?.prompt_tokens).toBe(countChatPrompt(messages));

    const tight = await userWithKey(s, { balance: 100, key: { quota: Number(exact() - 1n) / 1e9 } });
    const err = await sdkError(
      client(s, tight.secret).chat.completions.create({ model: 'bound', messages, max_tokens: MAX_TOKENS }),
    );
    expect(err.status).toBe(429);
    expect(err.code).toBe('insufficient_quota');
    expect(err.message).toContain(`up to ${Number(exact()) / 1e9} USD`);
  });

  it('an estimate (no usage reported) counts the prompt exactly, not the bound', async () => {
    mock.setScenario('bound', { omitUsage: true });
    try {
      const { secret, key } = await userWithKey(s, { balance: 100 });
      await client(s, secret).chat.completions.create({ model: 'bound', messages, max_tokens: MAX_TOKENS });
      const rows = await allLogs(s, { key_id: key.id });
      expect(rows).toHaveLength(1);
      expect(rows[0]!.estimated).toBe(true);
      expect(rows[0]!.prompt_tokens).toBe(countChatPrompt(messages));
    } finally {
      mock.setScenario('bound', {});
    }
  });
});
