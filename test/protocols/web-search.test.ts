// The provider's own web search, billed per search: Anthropic's `web_search` server tool
// (@anthropic-ai/sdk), OpenAI Responses' hosted `web_search` (openai) and Gemini's Google Search
// grounding (@google/genai), each passed through to a channel of its protocol on the mock. The
// log row counts the searches and its cost holds them at the price per 1,000 (10 USD unset);
// a stream cut after its searches still bills them; admission holds for the searches a request
// allows, so a quota with room for its tokens alone refuses it.
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import { describe, expect, it } from 'vitest';
import { backends, type TestServer, userWithKey } from '../helpers/server.js';
import { gatewayWithChannels } from '../helpers/gateway-channels.js';
import { DEFAULT_COMPLETION_TOKENS, type MockProvider } from '../mock-provider/server.js';
import { allLogs, client, type LogRow, nanoOf, rawRelay } from '../relay/relay-helpers.js';

const UP_KEY = 'sk-upstream-search-0001';
const PRICE = { input: 3, output: 15 };
const PRICES = { 'claude-search': PRICE, 'gpt-search': PRICE, 'gemini-search': PRICE };
/** nano-USD per token at PRICE (3 and 15 USD per 1M). */
const IN_NANO = 3_000n;
const OUT_NANO = 15_000n;

/** A row's cost at PRICE: its tokens, and each search at `perSearchNano`. */
const costOf = (row: LogRow, perSearchNano: bigint) =>
  BigInt(row.prompt_tokens) * IN_NANO +
  BigInt(row.completion_tokens) * OUT_NANO +
  BigInt(row.web_searches) * perSearchNano;

/** 10 USD per 1,000 searches, the price of a model that sets none. */
const DEFAULT_PER_SEARCH = 10_000_000n;

const searchTool = { type: 'web_search_20250305', name: 'web_search' } as const;

describe.each(backends())('web searches billed per search (%s)', (backend) => {
  let s: TestServer;
  let mock: MockProvider;

  gatewayWithChannels(
    { backend },
    {
      apiKey: UP_KEY,
      channels: [
        { type: 'anthropic', models: ['claude-search'] },
        { type: 'openai', models: ['gpt-search'], responses: true },
        { type: 'gemini', models: ['gemini-search'] },
      ],
      prices: PRICES,
    },
    (g) => {
      ({ s, mock } = g);
    },
  );

  const anthropic = (key: string) =>
    new Anthropic({ baseURL: s.url, apiKey: key, maxRetries: 0, timeout: 20_000 });

  async function onlyRow(keyId: number, count = 1): Promise<LogRow> {
    const rows = await allLogs(s, { key_id: keyId });
    expect(rows).toHaveLength(count);
    return rows[0]!;
  }

  /** The newest of the key's `count` rows matches `fields` and costs its tokens and searches. */
  async function billedRow(
    keyId: number,
    count: number,
    fields: Partial<LogRow>,
    perSearch = DEFAULT_PER_SEARCH,
  ) {
    const row = await onlyRow(keyId, count);
    expect(row).toMatchObject(fields);
    expect(nanoOf(row.cost)).toBe(costOf(row, perSearch));
  }

  it('Anthropic: the searches usage reports are on the log row and in its cost, plain and streamed', async () => {
    const { secret, key } = await userWithKey(s, { balance: 5 });
    mock.setScenario('claude-search', { webSearches: 2 });
    try {
      const body = {
        model: 'claude-search',
        max_tokens: 40,
        tools: [searchTool],
        messages: [{ role: 'user' as const, content: 'What happened today?' }],
      };
      const m = await anthropic(secret).messages.create(body);
      expect(m.usage.server_tool_use).toMatchObject({ web_search_requests: 2 });
      expect(m.content.filter((b) => b.type === 'server_tool_use')).toHaveLength(2);
      const row = await onlyRow(key.id);
      expect(row).toMatchObject({
        web_searches: 2,
        completion_tokens: DEFAULT_COMPLETION_TOKENS,
        estimated: false,
      });
      expect(nanoOf(row.cost)).toBe(costOf(row, DEFAULT_PER_SEARCH));

      // A price of its own per 1,000 searches.
      const put = await s.api('PUT', '/api/prices/claude-search', { ...PRICE, web_search_per_1k: 25 });
      expect(put.body).toMatchObject({ web_search_per_1k: 25 });
      const st = await anthropic(secret).messages.stream(body).finalMessage();
      expect(st.usage.server_tool_use).toMatchObject({ web_search_requests: 2 });
      await billedRow(key.id, 2, { stream: true, web_searches: 2 }, 25_000_000n);
    } finally {
      mock.clearScenarios();
      await s.api('PUT', '/api/prices/claude-search', PRICE);
    }
  });

  /** A stream of `model` cut after `searches` searches (`stream` reads it): estimated, the searches billed. */
  async function expectCutBillsSearches(
    model: string,
    searches: number,
    cutAfterChunks: number,
    stream: (secret: string) => Promise<unknown>,
    run = searches,
  ) {
    const { secret, key } = await userWithKey(s, { balance: 5 });
    mock.setScenario(model, { webSearches: run, cutAfterChunks });
    try {
      await stream(secret).catch(() => null);
      await billedRow(key.id, 1, { estimated: true, web_searches: searches });
    } finally {
      mock.clearScenarios();
    }
  }

  it('Anthropic: a stream cut after its searches still bills them', async () => {
    await expectCutBillsSearches('claude-search', 3, 8, (secret) =>
      anthropic(secret)
        .messages.stream({
          model: 'claude-search',
          max_tokens: 40,
          tools: [searchTool],
          messages: [{ role: 'user', content: 'Search, then be cut off.' }],
        })
        .finalMessage(),
    );
  });

  it('searches an answer shows are billed when its usage leaves them out or never comes', async () => {
    const { secret, key } = await userWithKey(s, { balance: 5 });
    const ai = new GoogleGenAI({ apiKey: secret, httpOptions: { baseUrl: s.url } });
    const asks: (() => Promise<unknown>)[] = [
      () =>
        anthropic(secret).messages.create({
          model: 'claude-search',
          max_tokens: 40,
          tools: [searchTool],
          messages: [{ role: 'user', content: 'Search without usage.' }],
        }),
      () =>
        anthropic(secret)
          .messages.stream({
            model: 'claude-search',
            max_tokens: 40,
            tools: [searchTool],
            messages: [{ role: 'user', content: 'Search without usage, streamed.' }],
          })
          .finalMessage(),
      () =>
        client(s, secret).responses.create({
          model: 'gpt-search',
          input: 'x',
          tools: [{ type: 'web_search' }],
        }),
      () =>
        client(s, secret)
          .responses.stream({ model: 'gpt-search', input: 'y', tools: [{ type: 'web_search' }] })
          .finalResponse(),
      () =>
        ai.models.generateContent({
          model: 'gemini-search',
          contents: 'z',
          config: { tools: [{ googleSearch: {} }] },
        }),
    ];
    for (const model of Object.keys(PRICES)) mock.setScenario(model, { webSearches: 3, omitUsage: true });
    try {
      for (const ask of asks) await ask().catch(() => null);
    } finally {
      mock.clearScenarios();
    }
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows).toHaveLength(asks.length);
    for (const row of rows) {
      expect(row, row.protocol).toMatchObject({ status: 200, estimated: true, web_searches: 3 });
      expect(nanoOf(row.cost)).toBe(costOf(row, DEFAULT_PER_SEARCH));
    }
  });

  it('a grounded Gemini stream cut before it names its queries is billed one search', async () => {
    await expectCutBillsSearches(
      'gemini-search',
      1,
      2,
      async (secret) => {
        const ai = new GoogleGenAI({ apiKey: secret, httpOptions: { baseUrl: s.url } });
        for await (const _ of await ai.models.generateContentStream({
          model: 'gemini-search',
          contents: 'Ground me, then be cut off.',
          config: { tools: [{ googleSearch: {} }] },
        })) {
          /* read until the cut */
        }
      },
      4,
    );
  });

  it('a chat search model bills one search an answer; off its own protocol nothing runs', async () => {
    const { secret, key } = await userWithKey(s, { balance: 5 });
    const body = {
      messages: [{ role: 'user' as const, content: 'Search the web, chat style.' }],
      max_tokens: 16,
      web_search_options: {},
    };
    await client(s, secret).chat.completions.create({ model: 'gpt-search', ...body });
    await billedRow(key.id, 1, { web_searches: 1 });
    // Translated to a Gemini channel: the option has no counterpart there, no search runs.
    await client(s, secret).chat.completions.create({ model: 'gemini-search', ...body });
    await billedRow(key.id, 2, { web_searches: 0 });
  });

  it('admission holds for the searches a request allows: max_uses, else an assumed ten', async () => {
    const body = (maxUses?: number) => ({
      model: 'claude-search',
      max_tokens: 20,
      tools: [{ ...searchTool, ...(maxUses === undefined ? {} : { max_uses: maxUses }) }],
      messages: [{ role: 'user' as const, content: 'Look it up.' }],
    });
    const { secret: counter } = await userWithKey(s);
    const prompt = (await anthropic(counter).messages.countTokens(body(2))).input_tokens;
    const tokensWorst = BigInt(prompt) * IN_NANO + 20n * OUT_NANO;
    // Room for the tokens and two searches: more than max_uses 2 needs, less than ten.
    const quota = Number(tokensWorst + 2n * DEFAULT_PER_SEARCH) / 1e9;
    const { secret, key } = await userWithKey(s, { key: { quota } });
    const unbounded = await rawRelay(s, '/messages', {
      body: JSON.stringify(body()),
      headers: { 'x-api-key': secret },
    });
    expect([unbounded.status, unbounded.json.error.type]).toEqual([429, 'rate_limit_error']);
    const bounded = await rawRelay(s, '/messages', {
      body: JSON.stringify(body(2)),
      headers: { 'x-api-key': secret },
    });
    expect(bounded.status, JSON.stringify(bounded.json)).toBe(200);
    expect(bounded.json.usage.server_tool_use).toMatchObject({ web_search_requests: 1 });
    const row = (await allLogs(s, { key_id: key.id })).find((r) => r.status === 200)!;
    expect(row.web_searches).toBe(1);
  });

  it('Responses: each web_search_call is billed, plain and streamed; max_tool_calls bounds them', async () => {
    const { secret, key } = await userWithKey(s, { balance: 5 });
    const openai = client(s, secret);
    mock.setScenario('gpt-search', { webSearches: 3 });
    try {
      const r = await openai.responses.create({
        model: 'gpt-search',
        input: 'What is new?',
        tools: [{ type: 'web_search' }],
      });
      expect(r.output.filter((i) => i.type === 'web_search_call')).toHaveLength(3);
      await billedRow(key.id, 1, { protocol: 'responses', web_searches: 3, estimated: false });

      const stream = openai.responses.stream({
        model: 'gpt-search',
        input: 'What is new, streamed?',
        tools: [{ type: 'web_search' }],
        max_tool_calls: 2,
      });
      const done = await stream.finalResponse();
      expect(done.output.filter((i) => i.type === 'web_search_call')).toHaveLength(2);
      await billedRow(key.id, 2, { stream: true, web_searches: 2 });
    } finally {
      mock.clearScenarios();
    }
  });

  it('Responses: a stream cut after its searches, before the usage, still bills them', async () => {
    await expectCutBillsSearches('gpt-search', 2, 3, (secret) =>
      client(s, secret)
        .responses.stream({ model: 'gpt-search', input: 'Cut me off.', tools: [{ type: 'web_search' }] })
        .finalResponse(),
    );
  });

  it('Gemini: the queries grounding ran are billed, plain and streamed', async () => {
    const { secret, key } = await userWithKey(s, { balance: 5 });
    const ai = new GoogleGenAI({ apiKey: secret, httpOptions: { baseUrl: s.url } });
    mock.setScenario('gemini-search', { webSearches: 2 });
    try {
      const config = { tools: [{ googleSearch: {} }] };
      const r = await ai.models.generateContent({ model: 'gemini-search', contents: 'News?', config });
      expect(r.candidates?.[0]?.groundingMetadata?.webSearchQueries).toHaveLength(2);
      await billedRow(key.id, 1, { protocol: 'gemini', web_searches: 2 });

      for await (const _ of await ai.models.generateContentStream({
        model: 'gemini-search',
        contents: 'News, streamed?',
        config,
      })) {
        /* read to the end */
      }
      await billedRow(key.id, 2, { stream: true, web_searches: 2 });
    } finally {
      mock.clearScenarios();
    }
  });

  it('an answer without searches has none on its row; the price field is checked', async () => {
    const { secret, key } = await userWithKey(s, { balance: 5 });
    await anthropic(secret).messages.create({
      model: 'claude-search',
      max_tokens: 20,
      messages: [{ role: 'user', content: 'No tools here.' }],
    });
    const row = await onlyRow(key.id);
    expect(row.web_searches).toBe(0);
    expect(nanoOf(row.cost)).toBe(costOf(row, 0n));
    const bad = await s.api('PUT', '/api/prices/claude-search', { ...PRICE, web_search_per_1k: -1 });
    expect([bad.status, bad.body.error.code]).toEqual([422, 'validation_error']);
    const prices = await s.api('GET', '/api/prices');
    const listed = (prices.body.data as { model: string; web_search_per_1k: number | null }[]).find(
      (p) => p.model === 'claude-search',
    );
    expect(listed).toMatchObject({ web_search_per_1k: null });
  });
});
