// OpenAI's priority processing (`service_tier: "priority"`), which the upstream bills above its
// standard price, with the official openai SDK against the mock: refused for a model whose price
// has no priority multiplier; priced, billed at the tier the answer says it was served at (a
// downgraded answer at the standard price, a project that defaults to priority at priority),
// plain and streamed, chat and Responses, and held for at admission.
import type OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { backends, type TestServer, userWithKey } from '../helpers/server.js';
import { gatewayWithChannels } from '../helpers/gateway-channels.js';
import type { MockProvider } from '../mock-provider/server.js';
import { allLogs, client, type LogRow, nanoOf, rawRelay } from '../relay/relay-helpers.js';

const UP_KEY = 'sk-upstream-tier-0001';
const PRICE = { input: 2, output: 8 };
/** nano-USD per token at PRICE (2 and 8 USD per 1M). */
const IN_NANO = 2_000n;
const OUT_NANO = 8_000n;

/** A row's cost at PRICE, its tokens `tier` times the standard price (ceil to the nano-USD). */
const costOf = (row: LogRow, tierPpm = 1_000_000n) =>
  ((BigInt(row.prompt_tokens) * IN_NANO + BigInt(row.completion_tokens) * OUT_NANO) * tierPpm + 999_999n) /
  1_000_000n;

describe.each(backends())('priority processing (%s)', (backend) => {
  let s: TestServer;
  let mock: MockProvider;

  gatewayWithChannels(
    { backend },
    {
      apiKey: UP_KEY,
      channels: [{ type: 'openai', models: ['gpt-tier', 'gpt-unpriced-tier'], responses: true }],
      prices: { 'gpt-tier': { ...PRICE, priority_multiplier: 1.75 }, 'gpt-unpriced-tier': PRICE },
    },
    (g) => {
      ({ s, mock } = g);
    },
  );

  const ask = (
    openai: OpenAI,
    model: string,
    extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {},
  ) =>
    openai.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Quickly, please.' }],
      max_tokens: 12,
      ...extra,
    });

  async function rows(keyId: number, count: number): Promise<LogRow[]> {
    const got = await allLogs(s, { key_id: keyId });
    expect(got).toHaveLength(count);
    return got;
  }

  it('a model whose price has no priority multiplier refuses priority, naming service_tier', async () => {
    const { secret, key } = await userWithKey(s, { balance: 5 });
    const before = mock.requests.length;
    const r = await rawRelay(s, '/chat/completions', {
      key: secret,
      body: JSON.stringify({
        model: 'gpt-unpriced-tier',
        messages: [{ role: 'user', content: 'hi' }],
        service_tier: 'priority',
      }),
    });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ code: 'invalid_request', param: 'service_tier' });
    expect(r.json.error.message).toMatch(/priority/);
    expect(mock.requests.length).toBe(before);
    for (const spelt of ['PRIORITY', ' Priority ']) {
      const again = await rawRelay(s, '/chat/completions', {
        key: secret,
        body: JSON.stringify({
          model: 'gpt-unpriced-tier',
          messages: [{ role: 'user', content: 'hi' }],
          service_tier: spelt,
        }),
      });
      expect([again.status, again.json.error.param]).toEqual([400, 'service_tier']);
    }
    expect(mock.requests.length).toBe(before);
    // Any other tier goes as asked, billed at the price.
    await ask(client(s, secret), 'gpt-unpriced-tier', { service_tier: 'flex' });
    const [row] = await rows(key.id, 4);
    expect(row).toMatchObject({ status: 200, service_tier: 'flex' });
    expect(nanoOf(row!.cost)).toBe(costOf(row!));
  });

  it('chat at priority is billed at the multiplier, plain and streamed; the standard tier at the price', async () => {
    const { secret, key } = await userWithKey(s, { balance: 5 });
    const openai = client(s, secret);
    const plain = await ask(openai, 'gpt-tier', { service_tier: 'priority' });
    expect(plain.service_tier).toBe('priority');
    const stream = await openai.chat.completions.create({
      model: 'gpt-tier',
      messages: [{ role: 'user', content: 'Quickly, streamed.' }],
      max_tokens: 12,
      service_tier: 'priority',
      stream: true,
    });
    for await (const _ of stream) {
      /* read to the end */
    }
    await ask(openai, 'gpt-tier');
    const [standard, streamed, first] = await rows(key.id, 3);
    for (const row of [first!, streamed!]) {
      expect(row).toMatchObject({ service_tier: 'priority', estimated: false });
      expect(nanoOf(row.cost)).toBe(costOf(row, 1_750_000n));
    }
    expect(streamed!.stream).toBe(true);
    expect(standard).toMatchObject({ service_tier: 'default' });
    expect(nanoOf(standard!.cost)).toBe(costOf(standard!));
  });

  it('billed at the tier the answer says: a downgraded one at the price, a priority default at priority', async () => {
    const { secret, key } = await userWithKey(s, { balance: 5 });
    const openai = client(s, secret);
    try {
      mock.setScenario('gpt-tier', { serviceTier: 'default' });
      await ask(openai, 'gpt-tier', { service_tier: 'priority' });
      // The upstream project serves priority by default: an answer that says so, asked or not.
      mock.setScenario('gpt-tier', { serviceTier: 'priority' });
      await ask(openai, 'gpt-tier');
    } finally {
      mock.clearScenarios();
    }
    const [byDefault, downgraded] = await rows(key.id, 2);
    expect(downgraded).toMatchObject({ service_tier: 'default' });
    expect(nanoOf(downgraded!.cost)).toBe(costOf(downgraded!));
    expect(byDefault).toMatchObject({ service_tier: 'priority' });
    expect(nanoOf(byDefault!.cost)).toBe(costOf(byDefault!, 1_750_000n));
  });

  it('Responses at priority, plain and streamed; a stream cut before its usage is billed at priority', async () => {
    const { secret, key } = await userWithKey(s, { balance: 5 });
    const openai = client(s, secret);
    const r = await openai.responses.create({ model: 'gpt-tier', input: 'fast', service_tier: 'priority' });
    expect(r.service_tier).toBe('priority');
    await openai.responses
      .stream({ model: 'gpt-tier', input: 'fast, streamed', service_tier: 'priority' })
      .finalResponse();
    mock.setScenario('gpt-tier', { cutAfterChunks: 2 });
    try {
      await openai.responses
        .stream({ model: 'gpt-tier', input: 'fast, then cut', service_tier: 'priority' })
        .finalResponse()
        .catch(() => null);
    } finally {
      mock.clearScenarios();
    }
    const [cut, ...whole] = await rows(key.id, 3);
    for (const row of whole) {
      expect(row).toMatchObject({ protocol: 'responses', service_tier: 'priority', estimated: false });
      expect(nanoOf(row.cost)).toBe(costOf(row, 1_750_000n));
    }
    expect(cut).toMatchObject({ estimated: true, service_tier: 'priority' });
    expect(nanoOf(cut!.cost)).toBe(costOf(cut!, 1_750_000n));
  });

  it('a priority default the stream already said is billed so when the client leaves or usage never comes', async () => {
    const { secret, key } = await userWithKey(s, { balance: 5 });
    const openai = client(s, secret);
    mock.setScenario('gpt-tier', { serviceTier: 'priority', chunkDelayMs: 20, completionTokens: 40 });
    try {
      // Chat and Responses, each read a few chunks in and then dropped.
      const chat = await openai.chat.completions.create({
        model: 'gpt-tier',
        messages: [{ role: 'user', content: 'Long, then I leave.' }],
        max_tokens: 60,
        stream: true,
      });
      let n = 0;
      for await (const _ of chat) if (++n === 5) break;
      const resp = openai.responses.stream({
        model: 'gpt-tier',
        input: 'Long, then I leave.',
        max_output_tokens: 60,
      });
      n = 0;
      for await (const e of resp) if (e.type === 'response.output_text.delta' && ++n === 5) break;
      // Usage never comes: plain and streamed.
      mock.setScenario('gpt-tier', { serviceTier: 'priority', omitUsage: true });
      await ask(openai, 'gpt-tier');
      const st = await openai.chat.completions.create({
        model: 'gpt-tier',
        messages: [{ role: 'user', content: 'No usage, streamed.' }],
        max_tokens: 12,
        stream: true,
      });
      for await (const _ of st) {
        /* read to the end */
      }
    } finally {
      mock.clearScenarios();
    }
    await expect.poll(async () => (await allLogs(s, { key_id: key.id })).length).toBe(4);
    for (const row of await rows(key.id, 4)) {
      expect(row, `${row.protocol} ${row.status}`).toMatchObject({
        estimated: true,
        service_tier: 'priority',
      });
      expect(nanoOf(row.cost)).toBe(costOf(row, 1_750_000n));
    }
  });

  it('admission holds a model priced for priority at the multiplier, asked or not', async () => {
    const body = (tier?: string) =>
      JSON.stringify({
        model: 'gpt-tier',
        messages: [{ role: 'user', content: 'hold me' }],
        max_tokens: 100,
        ...(tier ? { service_tier: tier } : {}),
      });
    // Room for 100 output tokens at the standard price (and the prompt), not at 1.75×.
    const quota = (100 * 8_000 * 1.3) / 1e9;
    const { secret } = await userWithKey(s, { key: { quota } });
    for (const tier of ['priority', undefined]) {
      const r = await rawRelay(s, '/chat/completions', { key: secret, body: body(tier) });
      expect([r.status, r.json.error?.code]).toEqual([429, 'insufficient_quota']);
    }
    // The same room admits it on a model without a multiplier.
    const standard = await rawRelay(s, '/chat/completions', {
      key: secret,
      body: body().replace('gpt-tier', 'gpt-unpriced-tier'),
    });
    expect(standard.status, JSON.stringify(standard.json)).toBe(200);
  });

  it('the price API takes a multiplier of 1 or more, with at most 6 decimals', async () => {
    for (const bad of [0.5, 1.2345678, 101])
      expect((await s.api('PUT', '/api/prices/gpt-x', { ...PRICE, priority_multiplier: bad })).status).toBe(
        422,
      );
    const ok = await s.api('PUT', '/api/prices/gpt-x', { ...PRICE, priority_multiplier: 2.5 });
    expect(ok.body).toMatchObject({ priority_multiplier: 2.5 });
    const cleared = await s.api('PUT', '/api/prices/gpt-x', PRICE);
    expect(cleared.body).toMatchObject({ priority_multiplier: null });
  });
});
