// The mock provider speaks Anthropic Messages as @anthropic-ai/sdk parses it: the official
// SDK is pointed straight at the mock.
import Anthropic from '@anthropic-ai/sdk';
import { countTokens } from 'gpt-tokenizer';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { countAnthropicPromptTokens, expectedAnthropicText } from './anthropic.js';
import { DEFAULT_COMPLETION_TOKENS, type MockProvider, startMockProvider } from './server.js';
import { WEATHER_ARGS, WEATHER_SCHEMA } from './weather.js';

const KEY = 'sk-ant-mock-key';
let mock: MockProvider;
let origin: string;
let client: Anthropic;

const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'Tell me about tunnels.' }];
const weather: Anthropic.Tool = {
  name: 'get_weather',
  description: 'Weather for a city',
  input_schema: WEATHER_SCHEMA,
};

beforeAll(async () => {
  mock = await startMockProvider({ apiKey: KEY });
  origin = mock.url.replace(/\/v1$/, '');
  client = new Anthropic({ baseURL: origin, apiKey: KEY, maxRetries: 0, timeout: 10_000 });
});
afterAll(async () => {
  await mock.close();
});
beforeEach(() => {
  mock.reset();
});

const post = (path: string, body: unknown, headers: Record<string, string> = { 'x-api-key': KEY }) =>
  fetch(origin + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...headers },
    body: JSON.stringify(body),
  });

describe('anthropic messages (mock provider, official SDK)', () => {
  it('answers a plain request with deterministic text and exact usage', async () => {
    const m = await client.messages.create({
      model: 'claude-mole-4',
      max_tokens: 100,
      system: 'You are a mole.',
      messages,
    });
    expect(m.type).toBe('message');
    expect(m.id).toMatch(/^msg_/);
    expect(m.role).toBe('assistant');
    expect(m.model).toBe('claude-mole-4');
    expect(m.stop_reason).toBe('end_turn');
    expect(m.stop_sequence).toBeNull();
    const block = m.content[0]!;
    expect(block.type).toBe('text');
    const text = (block as Anthropic.TextBlock).text;
    expect(text).toBe(expectedAnthropicText(messages));
    expect(countTokens(text)).toBe(DEFAULT_COMPLETION_TOKENS);
    const prompt = countAnthropicPromptTokens({ system: 'You are a mole.', messages });
    expect(m.usage).toMatchObject({
      input_tokens: prompt,
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: 0,
      output_tokens: DEFAULT_COMPLETION_TOKENS,
    });
    const rec = mock.requests[0]!;
    expect(rec.path).toBe('/v1/messages');
    // This SDK sends its key as a Bearer token and its own anthropic-version.
    expect(rec.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(rec.headers['anthropic-version']).toMatch(/^\d{4}-\d\d-\d\d$/);
  });

  it('streams named events the SDK accumulates into the same message', async () => {
    const stream = client.messages.stream({ model: 'claude-mole-haiku', max_tokens: 100, messages });
    const deltas: string[] = [];
    stream.on('text', (t) => deltas.push(t));
    const m = await stream.finalMessage();
    expect(deltas).toHaveLength(DEFAULT_COMPLETION_TOKENS);
    expect(deltas.join('')).toBe(expectedAnthropicText(messages));
    expect((m.content[0] as Anthropic.TextBlock).text).toBe(expectedAnthropicText(messages));
    expect(m.stop_reason).toBe('end_turn');
    expect(m.usage.output_tokens).toBe(DEFAULT_COMPLETION_TOKENS);
    expect(m.usage.input_tokens).toBe(countAnthropicPromptTokens({ messages }));
  });

  it('writes every event with its event: name, pings included, in Anthropic order', async () => {
    const res = await post('/v1/messages?beta=true', {
      model: 'claude-mole-haiku',
      max_tokens: 3,
      messages,
      stream: true,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('request-id')).toMatch(/^req_/);
    const text = await res.text();
    const names = [...text.matchAll(/^event: (\S+)$/gm)].map((x) => x[1]);
    expect(names).toEqual([
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(text).toContain('"stop_reason":"max_tokens"');
  });

  it('caps at max_tokens and stops at a stop sequence', async () => {
    const capped = await client.messages.create({ model: 'claude-x', max_tokens: 4, messages });
    expect(capped.stop_reason).toBe('max_tokens');
    expect(capped.usage.output_tokens).toBe(4);
    const full = expectedAnthropicText(messages);
    const third = full.split(' ')[3]!; // the 4th piece, e.g. " dig" → "dig"
    const stopped = await client.messages.create({
      model: 'claude-x',
      max_tokens: 100,
      messages,
      stop_sequences: [` ${third}`],
    });
    expect(stopped.stop_reason).toBe('stop_sequence');
    expect(stopped.stop_sequence).toBe(` ${third}`);
    const t = (stopped.content[0] as Anthropic.TextBlock).text;
    expect(full.startsWith(t)).toBe(true);
    expect(t).not.toContain(` ${third}`);
  });

  it('calls the first declared tool with its required arguments, and answers text after the result', async () => {
    const m = await client.messages.create({
      model: 'claude-mole-4',
      max_tokens: 200,
      tools: [weather, { ...weather, name: 'other' }],
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
    });
    expect(m.stop_reason).toBe('tool_use');
    const call = m.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock;
    expect(call.id).toMatch(/^toolu_/);
    expect(call.name).toBe('get_weather');
    expect(call.input).toEqual(WEATHER_ARGS);
    expect(m.usage.output_tokens).toBe(countTokens('get_weather') + countTokens(JSON.stringify(call.input)));

    const forced = await client.messages.create({
      model: 'claude-mole-4',
      max_tokens: 200,
      tools: [weather, { ...weather, name: 'other' }],
      tool_choice: { type: 'tool', name: 'other' },
      messages: [{ role: 'user', content: 'Weather?' }],
    });
    expect((forced.content[0] as Anthropic.ToolUseBlock).name).toBe('other');

    const none = await client.messages.create({
      model: 'claude-mole-4',
      max_tokens: 200,
      tools: [weather],
      tool_choice: { type: 'none' },
      messages: [{ role: 'user', content: 'Weather?' }],
    });
    expect(none.stop_reason).toBe('end_turn');

    const round: Anthropic.MessageParam[] = [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: m.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'sunny, 21 C' }] },
    ];
    const after = await client.messages.create({
      model: 'claude-mole-4',
      max_tokens: 200,
      tools: [weather],
      messages: round,
    });
    expect(after.stop_reason).toBe('end_turn');
    expect((after.content[0] as Anthropic.TextBlock).text).toBe(expectedAnthropicText(round));
  });

  it('streams a tool call as input_json_delta the SDK parses', async () => {
    const stream = client.messages.stream({
      model: 'claude-mole-4',
      max_tokens: 200,
      tools: [weather],
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
    });
    const partial: string[] = [];
    stream.on('inputJson', (delta) => partial.push(delta));
    const m = await stream.finalMessage();
    expect(m.stop_reason).toBe('tool_use');
    const call = m.content[0] as Anthropic.ToolUseBlock;
    expect(call.input).toEqual(WEATHER_ARGS);
    expect(partial.join('')).toBe(JSON.stringify(call.input));
  });

  it('reports cache reads and writes beside uncached input', async () => {
    mock.setScenario('claude-cache', { cachedTokens: 5, cacheWriteTokens: 3 });
    const prompt = countAnthropicPromptTokens({ messages });
    const m = await client.messages.create({ model: 'claude-cache', max_tokens: 50, messages });
    expect(m.usage).toMatchObject({
      input_tokens: prompt - 8,
      cache_read_input_tokens: 5,
      cache_creation_input_tokens: 3,
    });
    const s = await client.messages
      .stream({ model: 'claude-cache', max_tokens: 50, messages })
      .finalMessage();
    expect(s.usage).toMatchObject({
      input_tokens: prompt - 8,
      cache_read_input_tokens: 5,
      cache_creation_input_tokens: 3,
      output_tokens: DEFAULT_COMPLETION_TOKENS,
    });
  });

  it('thinks first when asked (thinking block, thinking tokens inside output_tokens)', async () => {
    mock.setScenario('claude-think', { reasoningTokens: 6 });
    const m = await client.messages.create({ model: 'claude-think', max_tokens: 100, messages });
    expect(m.content.map((b) => b.type)).toEqual(['thinking', 'text']);
    expect(m.usage.output_tokens).toBe(6 + DEFAULT_COMPLETION_TOKENS);
    expect(m.usage.output_tokens_details?.thinking_tokens).toBe(6);
    const s = client.messages.stream({ model: 'claude-think', max_tokens: 100, messages });
    const thoughts: string[] = [];
    s.on('thinking', (d) => thoughts.push(d));
    const fm = await s.finalMessage();
    expect(thoughts).toHaveLength(6);
    expect((fm.content[0] as Anthropic.ThinkingBlock).thinking).toBe(thoughts.join(''));
    expect((fm.content[0] as Anthropic.ThinkingBlock).signature).not.toBe('');
  });

  it('writes JSON with spaces when asked, which the SDK reads alike', async () => {
    mock.setScenario('*', { spacedJson: true });
    const res = await post('/v1/messages', { model: 'claude-x', max_tokens: 5, messages, stream: true });
    expect(await res.text()).toContain('data: {"type": "message_start", "message": {"id": "msg_');
    const m = await client.messages.stream({ model: 'claude-x', max_tokens: 5, messages }).finalMessage();
    expect(m.usage.output_tokens).toBe(5);
  });

  it('counts tokens', async () => {
    const r = await client.messages.countTokens({ model: 'claude-x', messages, tools: [weather] });
    expect(r.input_tokens).toBe(countAnthropicPromptTokens({ messages, tools: [weather] }));
  });

  it('accepts x-api-key and Bearer credentials and refuses missing or wrong keys with Anthropic 401s', async () => {
    const bearer = new Anthropic({ baseURL: origin, apiKey: null, authToken: KEY, maxRetries: 0 });
    const m = await bearer.messages.create({ model: 'claude-x', max_tokens: 5, messages });
    expect(m.usage.output_tokens).toBe(5);
    const viaHeader = await post('/v1/messages', { model: 'claude-x', max_tokens: 5, messages });
    expect(viaHeader.status).toBe(200);

    const wrong = new Anthropic({ baseURL: origin, apiKey: 'sk-ant-wrong', maxRetries: 0 });
    const err = await wrong.messages.create({ model: 'claude-x', max_tokens: 5, messages }).catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
    expect(err.status).toBe(401);
    expect(err.error).toMatchObject({
      type: 'error',
      error: { type: 'authentication_error', message: 'invalid x-api-key' },
    });
    expect(err.requestID).toMatch(/^req_/);

    const missing = await post('/v1/messages', { model: 'claude-x', max_tokens: 5, messages }, {});
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({
      type: 'error',
      error: { type: 'authentication_error', message: 'x-api-key header is required' },
    });
  });

  it('validates like Anthropic (max_tokens required, messages non-empty, roles)', async () => {
    const cases: [unknown, string][] = [
      [{ model: 'claude-x', messages }, 'max_tokens: Field required'],
      [{ model: 'claude-x', max_tokens: 5, messages: [] }, 'messages: at least one message is required'],
      [{ max_tokens: 5, messages }, 'model: Field required'],
      [
        { model: 'claude-x', max_tokens: 5, messages: [{ role: 'system', content: 'x' }] },
        "messages.0.role: Input should be 'user' or 'assistant'",
      ],
      [
        { model: 'claude-x', max_tokens: 5, messages, context_management: { edits: [] } },
        'context_management: Extra inputs are not permitted',
      ],
    ];
    for (const [body, message] of cases) {
      const res = await post('/v1/messages', body);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({
        type: 'error',
        error: { type: 'invalid_request_error', message },
      });
    }
    // A system message mid-conversation: only from API version 2026-10-21 (the SDK's).
    const sys = await post(
      '/v1/messages',
      { model: 'claude-x', max_tokens: 5, messages: [...messages, { role: 'system', content: 'Be brief.' }] },
      { 'x-api-key': KEY, 'anthropic-version': '2026-10-21' },
    );
    expect(sys.status).toBe(200);
    // Two user turns in a row are fine (Anthropic merges consecutive turns).
    const ok = await post('/v1/messages', {
      model: 'claude-x',
      max_tokens: 5,
      messages: [...messages, { role: 'user', content: 'more' }],
    });
    expect(ok.status).toBe(200);
    // With its beta header the beta field passes.
    const beta = await post(
      '/v1/messages',
      { model: 'claude-x', max_tokens: 5, messages, context_management: { edits: [] } },
      { 'x-api-key': KEY, 'anthropic-beta': 'context-management-2025-06-27' },
    );
    expect(beta.status).toBe(200);
    expect(mock.requests.at(-1)!.headers['anthropic-beta']).toBe('context-management-2025-06-27');
  });

  it('answers scenario statuses in Anthropic error shape (SDK error classes)', async () => {
    mock.setScenario('claude-busy', { status: 529, times: 1 });
    const e1 = await client.messages
      .create({ model: 'claude-busy', max_tokens: 5, messages })
      .catch((e) => e);
    expect(e1).toBeInstanceOf(Anthropic.APIError);
    expect(e1.status).toBe(529);
    expect(e1.type).toBe('overloaded_error');
    mock.setScenario('claude-busy', { status: 429, times: 1 });
    const e2 = await client.messages
      .create({ model: 'claude-busy', max_tokens: 5, messages })
      .catch((e) => e);
    expect(e2).toBeInstanceOf(Anthropic.RateLimitError);
    expect(e2.headers.get('retry-after')).toBe('1');
    expect(e2.headers.get('anthropic-ratelimit-requests-reset')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    mock.setScenario('claude-busy', {
      status: 400,
      errorMessage: 'prompt is too long: 300000 tokens > 200000 maximum',
    });
    const e3 = await client.messages
      .create({ model: 'claude-busy', max_tokens: 5, messages })
      .catch((e) => e);
    expect(e3).toBeInstanceOf(Anthropic.BadRequestError);
    expect(e3.error.error.message).toBe('prompt is too long: 300000 tokens > 200000 maximum');
  });

  it('reports an error in a 200 body, and an error event mid-stream', async () => {
    mock.setScenario('claude-odd', { errorInBody: true, times: 1 });
    const res = await post('/v1/messages', { model: 'claude-odd', max_tokens: 5, messages });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });

    mock.setScenario('claude-odd', { midStreamError: 2 });
    const s = client.messages.stream({ model: 'claude-odd', max_tokens: 50, messages });
    const seen: string[] = [];
    s.on('text', (t) => seen.push(t));
    const err = await s.finalMessage().catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect(err.type).toBe('overloaded_error');
    expect(seen).toHaveLength(2);
  });

  it('cuts a stream after N chunks and garbles one when asked', async () => {
    mock.setScenario('claude-cut', { cutAfterChunks: 3, times: 1 });
    const cut = client.messages.stream({ model: 'claude-cut', max_tokens: 50, messages });
    const seen: string[] = [];
    cut.on('text', (t) => seen.push(t));
    await expect(cut.finalMessage()).rejects.toThrow();
    expect(seen).toHaveLength(3);

    mock.setScenario('claude-cut', { garbageAfterChunks: 1, times: 1 });
    const res = await post('/v1/messages', { model: 'claude-cut', max_tokens: 3, messages, stream: true });
    const text = await res.text();
    expect(text).toContain('data: {broken\n\n');
    expect(text).toContain('event: message_stop');
  });
});
