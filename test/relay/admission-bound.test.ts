// Long prompts are admitted on a cheap upper bound (UTF-8 bytes ≥ tokens) and tokenized only
// when that bound would be refused: a key whose quota covers the exact worst case but not the
// bound's is still served, and one that cannot afford the exact worst case is still refused,
// with the same message as before. Estimates (no usage from upstream) use the exact count.
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import { describe, expect, it } from 'vitest';
import { backends, userWithKey, type TestServer } from '../helpers/server.js';
import { relaySuite } from '../helpers/relay-suite.js';
import type { MockProvider } from '../mock-provider/server.js';
import type { Protocol } from '../../src/relay/canonical.js';
import { codec } from '../../src/relay/protocols/index.js';
import type { IngressRequest, RouteInfo } from '../../src/relay/protocols/types.js';
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

// The same rule for the other ingress protocols, each through its own official SDK (here to an
// OpenAI channel: the translation path). Their prompts used to be tokenized whole on every
// request, ~1.5 µs a token on the event loop (an agent's 100 KB context: ~28 ms).
type Ask = (s: TestServer, secret: string) => Promise<unknown>;
const TEXT = messages[0]!.content;
const INGRESS: Array<{ protocol: Protocol; body: Record<string, unknown>; route?: object; ask: Ask }> = [
  {
    protocol: 'anthropic',
    body: { model: 'bound', max_tokens: MAX_TOKENS, messages },
    ask: (s, secret) =>
      new Anthropic({ baseURL: s.url, apiKey: secret, maxRetries: 0 }).messages.create({
        model: 'bound',
        max_tokens: MAX_TOKENS,
        messages,
      }),
  },
  {
    protocol: 'responses',
    body: { model: 'bound', input: TEXT, max_output_tokens: 16 },
    ask: (s, secret) =>
      client(s, secret).responses.create({ model: 'bound', input: TEXT, max_output_tokens: 16 }),
  },
  {
    protocol: 'gemini',
    body: {
      contents: [{ role: 'user', parts: [{ text: TEXT }] }],
      generationConfig: { maxOutputTokens: MAX_TOKENS },
    },
    route: { pathModel: 'bound' },
    ask: (s, secret) =>
      new GoogleGenAI({ apiKey: secret, httpOptions: { baseUrl: s.url } }).models.generateContent({
        model: 'bound',
        contents: TEXT,
        config: { maxOutputTokens: MAX_TOKENS },
      }),
  },
];

describe.each(backends())('admission on the prompt bound, other protocols [%s]', (backend) => {
  let s: TestServer;
  let mock: MockProvider;
  relaySuite({ backend }, { apiKey: 'bound-upstream', prices: { bound: PRICE } }, (started) => {
    ({ s, mock } = started);
  });

  describe.each(INGRESS)('$protocol', ({ protocol, body, route, ask }) => {
    // The codec's own reading of the body the SDK sends: the bound, and the exact count.
    const parsed = () =>
      codec(protocol).parseRequest(body, { protocol, operation: 'generate', ...route } as RouteInfo, 100);
    // The worst case admission holds: the prompt and the request's own output cap.
    const worst = (r: IngressRequest, prompt: number) =>
      expectedCostNano({ prompt, completion: r.maxOutputTokens }, PRICE);

    it('holds the bound; a quota between the exact worst case and the bound’s is served, below it refused', async () => {
      const r = parsed();
      expect(r.exactPromptTokens).toBeDefined();
      const bound = worst(r, r.promptTokens);
      const exact = worst(r, r.exactPromptTokens!());
      expect(bound).toBeGreaterThan(2n * exact);

      const quota = exact + (bound - exact) / 2n;
      const { secret, key } = await userWithKey(s, { balance: 100, key: { quota: Number(quota) / 1e9 } });
      await ask(s, secret);
      expect((await allLogs(s, { key_id: key.id }))[0]!.status).toBe(200);

      const tight = await userWithKey(s, { balance: 100, key: { quota: Number(exact - 1n) / 1e9 } });
      const err = (await ask(s, tight.secret).then(
        () => null,
        (e: unknown) => e,
      )) as { status: number; message: string } | null;
      expect(err?.status).toBe(429);
      expect(err?.message).toContain(`up to ${Number(exact) / 1e9} USD`);
    });

    it('an estimate (no usage reported) counts the prompt exactly, not the bound', async () => {
      mock.setScenario('bound', { omitUsage: true });
      try {
        const { secret, key } = await userWithKey(s, { balance: 100 });
        await ask(s, secret);
        const rows = await allLogs(s, { key_id: key.id });
        expect(rows).toHaveLength(1);
        expect(rows[0]!.estimated).toBe(true);
        expect(rows[0]!.prompt_tokens).toBe(parsed().exactPromptTokens!());
      } finally {
        mock.setScenario('bound', {});
      }
    });
  });

  it('an Anthropic stream over a translation reports the exact local count in message_start', async () => {
    const { secret } = await userWithKey(s, { balance: 100 });
    const stream = new Anthropic({ baseURL: s.url, apiKey: secret, maxRetries: 0 }).messages.stream({
      model: 'bound',
      max_tokens: MAX_TOKENS,
      messages,
    });
    let start: number | undefined;
    for await (const e of stream) if (e.type === 'message_start') start = e.message.usage.input_tokens;
    expect(start).toBe(countChatPrompt(messages));
  });
});
