import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { countTokens } from 'gpt-tokenizer';
import {
  DEFAULT_COMPLETION_TOKENS,
  countChatPromptTokens,
  expectedChatCompletion,
  expectedTextCompletion,
  startMockProvider,
  type MockProvider,
} from './server.js';

type ChatChunk = OpenAI.Chat.Completions.ChatCompletionChunk;

const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
  { role: 'system', content: 'You are a helpful mole.' },
  { role: 'user', content: 'Tell me about tunnels.' },
];

let mock: MockProvider;
let client: OpenAI;

beforeAll(async () => {
  mock = await startMockProvider();
  client = new OpenAI({ baseURL: mock.url, apiKey: 'x', maxRetries: 0, timeout: 10_000 });
});
afterAll(async () => {
  await mock.close();
});
beforeEach(() => {
  mock.reset();
});

async function collect(stream: AsyncIterable<ChatChunk>, into: ChatChunk[] = []): Promise<ChatChunk[]> {
  for await (const c of stream) into.push(c);
  return into;
}

/** A chat stream of `messages` (gpt-4o unless `params` says otherwise) with include_usage set. */
const usageStream = (params: Partial<OpenAI.Chat.Completions.ChatCompletionCreateParamsStreaming> = {}) =>
  client.chat.completions.create({
    model: 'gpt-4o',
    messages,
    stream: true,
    stream_options: { include_usage: true },
    ...params,
  });

const contentOf = (chunks: ChatChunk[]) => chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
const contentChunks = (chunks: ChatChunk[]) =>
  chunks.filter((c) => (c.choices[0]?.delta.content ?? '') !== '');

describe('chat completions', () => {
  it('answers a plain request with deterministic text and exact usage', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(r.object).toBe('chat.completion');
    expect(r.id).toMatch(/^chatcmpl-/);
    expect(r.model).toBe('gpt-4o-mini');
    const choice = r.choices[0]!;
    expect(choice.message.role).toBe('assistant');
    expect(choice.finish_reason).toBe('stop');
    const text = choice.message.content!;
    expect(text).toBe(expectedChatCompletion(messages));
    expect(countTokens(text)).toBe(DEFAULT_COMPLETION_TOKENS);
    expect(r.usage).toMatchObject({
      prompt_tokens: countChatPromptTokens(messages),
      completion_tokens: DEFAULT_COMPLETION_TOKENS,
      total_tokens: countChatPromptTokens(messages) + DEFAULT_COMPLETION_TOKENS,
      prompt_tokens_details: { cached_tokens: 0 },
    });
    // Same prompt → same answer.
    const again = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(again.choices[0]!.message.content).toBe(text);
    // Recorded requests.
    expect(mock.requests).toHaveLength(2);
    const rec = mock.requests[0]!;
    expect(rec.method).toBe('POST');
    expect(rec.path).toBe('/v1/chat/completions');
    expect(rec.headers.authorization).toBe('Bearer x');
    expect(rec.headers['content-type']).toContain('application/json');
    expect(rec.body).toMatchObject({ model: 'gpt-4o-mini', messages });
  });

  it('computes prompt_tokens with the documented rule', () => {
    const tok = (s: string) => countTokens(s);
    const expected =
      3 +
      (3 + tok('system') + tok('You are a helpful mole.')) +
      (3 + tok('user') + tok('Tell me about tunnels.'));
    expect(countChatPromptTokens(messages)).toBe(expected);
    const withName = [
      {
        role: 'user',
        name: 'digger',
        content: [
          { type: 'text', text: 'a' },
          { type: 'text', text: 'b' },
        ],
      },
    ];
    expect(countChatPromptTokens(withName)).toBe(3 + 3 + tok('user') + tok('ab') + 1 + tok('digger'));
  });

  it('every generated piece is one token, for many prompts and lengths', async () => {
    for (let i = 0; i < 40; i++) {
      const msgs = [{ role: 'user' as const, content: `prompt number ${i} ${'x'.repeat(i)}` }];
      const text = expectedChatCompletion(msgs, 50 + i);
      expect(countTokens(text)).toBe(50 + i);
    }
    mock.setScenario('*', { completionTokens: 200 });
    const r = await client.chat.completions.create({ model: 'm', messages });
    expect(r.usage!.completion_tokens).toBe(200);
    expect(countTokens(r.choices[0]!.message.content!)).toBe(200);
  });

  it('respects max_tokens and max_completion_tokens (finish_reason length)', async () => {
    const a = await client.chat.completions.create({ model: 'gpt-4o', messages, max_tokens: 5 });
    expect(a.usage!.completion_tokens).toBe(5);
    expect(countTokens(a.choices[0]!.message.content!)).toBe(5);
    expect(a.choices[0]!.finish_reason).toBe('length');
    const b = await client.chat.completions.create({
      model: 'gpt-4o',
      messages,
      max_completion_tokens: 3,
      max_tokens: 7,
    });
    expect(b.usage!.completion_tokens).toBe(3);
    expect(b.choices[0]!.message.content).toBe(expectedChatCompletion(messages, 3));
    const c = await client.chat.completions.create({ model: 'gpt-4o', messages, max_tokens: 1000 });
    expect(c.usage!.completion_tokens).toBe(DEFAULT_COMPLETION_TOKENS);
    expect(c.choices[0]!.finish_reason).toBe('stop');
  });

  it('supports n > 1', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-4o', messages, n: 3, max_tokens: 4 });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(r.usage!.completion_tokens).toBe(12);
    expect(r.choices[1]!.message.content).toBe(expectedChatCompletion(messages, 4, 1));
  });

  it('streams like OpenAI without usage unless include_usage is set', async () => {
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true });
    const chunks = await collect(stream);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const content = contentChunks(chunks);
    expect(content).toHaveLength(DEFAULT_COMPLETION_TOKENS);
    for (const c of content) expect(countTokens(c.choices[0]!.delta.content!)).toBe(1);
    expect(contentOf(chunks)).toBe(expectedChatCompletion(messages));
    const last = chunks[chunks.length - 1]!;
    expect(last.choices[0]!.finish_reason).toBe('stop');
    expect(last.choices[0]!.delta).toEqual({});
    expect(chunks.some((c) => c.usage)).toBe(false);
    expect(chunks.every((c) => !('usage' in c))).toBe(true);
  });

  it('streams a final usage chunk when stream_options.include_usage is true', async () => {
    const stream = await usageStream({ model: 'gpt-4o-mini', max_tokens: 6 });
    const chunks = await collect(stream);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({
      prompt_tokens: countChatPromptTokens(messages),
      completion_tokens: 6,
      total_tokens: countChatPromptTokens(messages) + 6,
      prompt_tokens_details: { cached_tokens: 0 },
    });
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();
    expect(chunks[chunks.length - 2]!.choices[0]!.finish_reason).toBe('length');
    expect(contentChunks(chunks)).toHaveLength(6);
  });

  it('obfuscation pads every chunk with a last random member, unless include_obfuscation is false', async () => {
    mock.setScenario('*', { obfuscation: true });
    const datas = async (streamOptions: object) => {
      const res = await fetch(`${mock.url}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', messages, stream: true, stream_options: streamOptions }),
      });
      const frames = (await res.text()).split('\n\n').filter((e) => e && e !== 'data: [DONE]');
      return frames.map((e) => e.slice('data: '.length));
    };
    const padded = await datas({ include_usage: true });
    // role, 16 tokens, finish, usage
    expect(padded).toHaveLength(DEFAULT_COMPLETION_TOKENS + 3);
    for (const data of padded) expect(data).toMatch(/,"obfuscation":"[A-Za-z0-9]{1,16}"\}$/);
    expect(new Set(padded.map((d) => JSON.parse(d).obfuscation)).size).toBeGreaterThan(1);
    const text = (ds: string[]) => ds.map((d) => JSON.parse(d).choices[0]?.delta.content ?? '').join('');
    expect(text(padded)).toBe(expectedChatCompletion(messages));
    const unpadded = await datas({ include_usage: true, include_obfuscation: false });
    expect(unpadded.some((d) => d.includes('obfuscation'))).toBe(false);
    expect(text(unpadded)).toBe(text(padded));
  });

  it('writes the exact SSE framing and ends with [DONE]', async () => {
    const res = await fetch(`${mock.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages, stream: true, max_tokens: 2 }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await res.text();
    const events = text.split('\n\n');
    expect(events.pop()).toBe('');
    expect(events[events.length - 1]).toBe('data: [DONE]');
    // role + 2 content + finish + [DONE]
    expect(events).toHaveLength(5);
    for (const e of events.slice(0, -1)) {
      expect(e.startsWith('data: {')).toBe(true);
      JSON.parse(e.slice(6));
    }
  });
});

describe('legacy completions', () => {
  it('answers non-stream and stream (usage only with include_usage)', async () => {
    const r = await client.completions.create({
      model: 'gpt-3.5-turbo-instruct',
      prompt: 'Once upon a time',
      max_tokens: 7,
    });
    expect(r.object).toBe('text_completion');
    expect(r.choices[0]!.text).toBe(expectedTextCompletion('Once upon a time', 7));
    expect(r.usage).toMatchObject({
      prompt_tokens: countTokens('Once upon a time'),
      completion_tokens: 7,
      total_tokens: countTokens('Once upon a time') + 7,
    });

    const plain = await client.completions.create({
      model: 'gpt-3.5-turbo-instruct',
      prompt: 'Once upon a time',
      max_tokens: 7,
      stream: true,
    });
    const plainChunks: OpenAI.Completions.Completion[] = [];
    for await (const c of plain) plainChunks.push(c);
    expect(plainChunks.some((c) => c.usage)).toBe(false);
    expect(plainChunks.map((c) => c.choices[0]?.text ?? '').join('')).toBe(r.choices[0]!.text);

    const s = await client.completions.create({
      model: 'gpt-3.5-turbo-instruct',
      prompt: 'Once upon a time',
      max_tokens: 7,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Completions.Completion[] = [];
    for await (const c of s) chunks.push(c);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices).toEqual([]);
    expect(last.usage!.completion_tokens).toBe(7);
    expect(chunks.filter((c) => (c.choices[0]?.text ?? '') !== '')).toHaveLength(7);
    expect(chunks[chunks.length - 2]!.choices[0]!.finish_reason).toBe('length');
  });

  it('defaults max_tokens to 16 and accepts prompt arrays and token arrays', async () => {
    mock.setScenario('*', { completionTokens: 40 });
    const r = await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: ['a b', 'c'] });
    expect(r.choices).toHaveLength(2);
    expect(r.usage!.completion_tokens).toBe(32);
    expect(r.usage!.prompt_tokens).toBe(countTokens('a b') + countTokens('c'));
    const t = await client.completions.create({
      model: 'gpt-3.5-turbo-instruct',
      prompt: [1, 2, 3, 4],
      max_tokens: 2,
    });
    expect(t.usage!.prompt_tokens).toBe(4);
  });
});

describe('embeddings', () => {
  it('returns floats and base64 (SDK default) that decode to the same float32 vector', async () => {
    const asFloat = await client.embeddings.create({
      model: 'text-embedding-3-small',
      input: 'moles dig',
      encoding_format: 'float',
    });
    expect(asFloat.object).toBe('list');
    const vec = asFloat.data[0]!.embedding;
    expect(Array.isArray(vec)).toBe(true);
    expect(vec).toHaveLength(1536);
    const norm = Math.sqrt(vec.reduce((a, v) => a + v * v, 0));
    expect(norm).toBeCloseTo(1, 4);
    expect(asFloat.usage).toEqual({
      prompt_tokens: countTokens('moles dig'),
      total_tokens: countTokens('moles dig'),
    });

    const viaSdkDefault = await client.embeddings.create({
      model: 'text-embedding-3-small',
      input: 'moles dig',
    });
    expect(mock.requests[1]!.body).toMatchObject({ encoding_format: 'base64' });
    const decoded = Array.from(viaSdkDefault.data[0]!.embedding);
    expect(decoded).toEqual(vec);

    // Raw base64 is little-endian float32.
    const raw = await client.embeddings.create({
      model: 'text-embedding-3-small',
      input: 'moles dig',
      encoding_format: 'base64',
    });
    const b64 = raw.data[0]!.embedding as unknown as string;
    expect(typeof b64).toBe('string');
    const buf = Buffer.from(b64, 'base64');
    expect(buf.length).toBe(1536 * 4);
    expect(buf.readFloatLE(4)).toBe(vec[1]);
  });

  it('handles batches, token arrays and dimensions', async () => {
    const r = await client.embeddings.create({
      model: 'text-embedding-3-large',
      input: ['a', 'b', 'a'],
      encoding_format: 'float',
    });
    expect(r.data.map((d) => d.index)).toEqual([0, 1, 2]);
    expect(r.data[0]!.embedding).toHaveLength(3072);
    expect(r.data[0]!.embedding).toEqual(r.data[2]!.embedding);
    expect(r.data[0]!.embedding).not.toEqual(r.data[1]!.embedding);
    const t = await client.embeddings.create({
      model: 'text-embedding-3-small',
      input: [
        [1, 2, 3],
        [4, 5],
      ],
      dimensions: 8,
    });
    expect(t.data).toHaveLength(2);
    expect(t.data[1]!.embedding).toHaveLength(8);
    expect(t.usage.prompt_tokens).toBe(5);
    await expect(
      client.embeddings.create({ model: 'text-embedding-3-small', input: '' }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });
});

describe('models', () => {
  it('lists and retrieves models', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids).toContain('gpt-4o-mini');
    expect(ids).toContain('text-embedding-3-small');
    const m = await client.models.retrieve('gpt-4o');
    expect(m).toMatchObject({ id: 'gpt-4o', object: 'model' });
    await expect(client.models.retrieve('nope')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});

describe('validation', () => {
  const post = (path: string, body: string) =>
    fetch(`${mock.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

  it('rejects bad JSON, missing model, missing/empty messages with OpenAI-shaped 400s', async () => {
    const bad = await post('/chat/completions', '{"model": ');
    expect(bad.status).toBe(400);
    const badBody = (await bad.json()) as { error: Record<string, unknown> };
    expect(Object.keys(badBody.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    expect(badBody.error.type).toBe('invalid_request_error');
    expect(String(badBody.error.message)).toContain('could not parse the JSON body');

    const noModel = await post('/chat/completions', JSON.stringify({ messages }));
    expect(noModel.status).toBe(400);
    expect(((await noModel.json()) as { error: { message: string } }).error.message).toBe(
      'you must provide a model parameter',
    );

    const noMessages = await post('/chat/completions', JSON.stringify({ model: 'gpt-4o' }));
    expect(noMessages.status).toBe(400);
    expect(await noMessages.json()).toEqual({
      error: {
        message: "Missing required parameter: 'messages'.",
        type: 'invalid_request_error',
        param: 'messages',
        code: 'missing_required_parameter',
      },
    });

    const err = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('messages');

    const badRole = await post(
      '/chat/completions',
      JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'wizard', content: 'x' }] }),
    );
    expect(badRole.status).toBe(400);

    const soWithoutStream = await post(
      '/chat/completions',
      JSON.stringify({ model: 'gpt-4o', messages, stream_options: { include_usage: true } }),
    );
    expect(soWithoutStream.status).toBe(400);

    const zeroMax = await post(
      '/chat/completions',
      JSON.stringify({ model: 'gpt-4o', messages, max_tokens: 0 }),
    );
    expect(zeroMax.status).toBe(400);
    expect(((await zeroMax.json()) as { error: { code: string } }).error.code).toBe(
      'integer_below_min_value',
    );

    const unknown = await post('/nope', '{}');
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { message: string } }).error.message).toBe(
      'Invalid URL (POST /v1/nope)',
    );

    // Invalid requests are recorded too.
    expect(mock.requests.length).toBeGreaterThanOrEqual(8);
    expect(mock.requests[0]!.body).toBeUndefined();
    expect(mock.requests[0]!.rawBody).toBe('{"model": ');
  });

  it('requires the configured API key', async () => {
    const secured = await startMockProvider({ apiKey: 'sk-upstream-secret' });
    try {
      const wrong = new OpenAI({ baseURL: secured.url, apiKey: 'sk-wrong-key-123456', maxRetries: 0 });
      const err = await wrong.chat.completions.create({ model: 'gpt-4o', messages }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
      expect((err as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe('invalid_api_key');
      const missing = await fetch(`${secured.url}/models`);
      expect(missing.status).toBe(401);
      const right = new OpenAI({ baseURL: secured.url, apiKey: 'sk-upstream-secret', maxRetries: 0 });
      const ok = await right.chat.completions.create({ model: 'gpt-4o', messages });
      expect(ok.choices[0]!.message.content).toBe(expectedChatCompletion(messages));
    } finally {
      await secured.close();
    }
  });
});

describe('scenarios', () => {
  it('429 with retry-after and an OpenAI error body', async () => {
    mock.setScenario('gpt-4o', { status: 429 });
    const err = await client.chat.completions.create({ model: 'gpt-4o', messages }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.status).toBe(429);
    expect(e.headers.get('retry-after')).toBe('1');
    expect(e.code).toBe('rate_limit_exceeded');
    expect(e.type).toBe('requests');
    // Only that model is affected.
    const other = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(other.choices).toHaveLength(1);
  });

  it('times: N applies to the next N requests only (SDK retry then succeeds)', async () => {
    mock.setScenario('*', { status: 503, times: 2, headers: { 'retry-after-ms': '5' } });
    const retrying = new OpenAI({ baseURL: mock.url, apiKey: 'x', maxRetries: 2 });
    const r = await retrying.chat.completions.create({ model: 'gpt-4o', messages });
    expect(r.choices[0]!.message.content).toBe(expectedChatCompletion(messages));
    expect(mock.requests).toHaveLength(3);
    // Scenario exhausted: back to normal.
    await client.chat.completions.create({ model: 'gpt-4o', messages });
  });

  it('500, 401 and error overrides', async () => {
    mock.setScenario('*', { status: 500, times: 1 });
    await expect(client.chat.completions.create({ model: 'gpt-4o', messages })).rejects.toBeInstanceOf(
      OpenAI.InternalServerError,
    );
    mock.setScenario('*', { status: 401, times: 1 });
    await expect(
      client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }),
    ).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    mock.setScenario('*', {
      status: 400,
      times: 1,
      errorMessage: 'context_length_exceeded!',
      errorCode: 'context_length_exceeded',
    });
    const err = await client.completions
      .create({ model: 'gpt-3.5-turbo-instruct', prompt: 'x' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('context_length_exceeded');
    expect((err as Error).message).toContain('context_length_exceeded!');
  });

  it('model-specific scenarios win over the "*" default; clearScenarios resets', async () => {
    mock.setScenario('*', { completionTokens: 2 });
    mock.setScenario('special', { completionTokens: 5 });
    const a = await client.chat.completions.create({ model: 'special', messages });
    const b = await client.chat.completions.create({ model: 'anything', messages });
    expect(a.usage!.completion_tokens).toBe(5);
    expect(b.usage!.completion_tokens).toBe(2);
    mock.clearScenarios();
    const c = await client.chat.completions.create({ model: 'special', messages });
    expect(c.usage!.completion_tokens).toBe(DEFAULT_COMPLETION_TOKENS);
  });

  it('cutAfterChunks destroys the socket mid-stream: the SDK errors after N content chunks', async () => {
    mock.setScenario('*', { cutAfterChunks: 4 });
    const stream = await usageStream();
    const got: ChatChunk[] = [];
    await expect(collect(stream, got)).rejects.toThrow();
    expect(contentChunks(got)).toHaveLength(4);
    expect(got.some((c) => c.choices[0]?.finish_reason)).toBe(false);
    expect(got.some((c) => c.usage)).toBe(false);
    expect(countTokens(contentOf(got))).toBe(4);
    // The server is still healthy afterwards.
    mock.clearScenarios();
    const ok = await client.chat.completions.create({ model: 'gpt-4o', messages });
    expect(ok.choices).toHaveLength(1);
  });

  it('cutAfterChunks + hangMs stalls before cutting; chunkDelayMs spaces chunks', async () => {
    mock.setScenario('*', { cutAfterChunks: 2, hangMs: 50, chunkDelayMs: 5 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o', messages, stream: true });
    const got: ChatChunk[] = [];
    const t0 = Date.now();
    await expect(collect(stream, got)).rejects.toThrow();
    expect(contentChunks(got)).toHaveLength(2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(40);
  });

  it('garbageAfterChunks emits a non-JSON data line that makes the SDK throw', async () => {
    mock.setScenario('*', { garbageAfterChunks: 3 });
    const quiet = new OpenAI({ baseURL: mock.url, apiKey: 'x', maxRetries: 0, logLevel: 'off' });
    const stream = await quiet.chat.completions.create({ model: 'gpt-4o', messages, stream: true });
    const got: ChatChunk[] = [];
    await expect(collect(stream, got)).rejects.toBeInstanceOf(SyntaxError);
    expect(contentChunks(got)).toHaveLength(3);
    // On the wire the stream continues to a normal [DONE] after the garbage line.
    const res = await fetch(`${mock.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o', messages, stream: true }),
    });
    const text = await res.text();
    expect(text).toContain('\n\ndata: {broken\n\n');
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  });

  it('firstByteDelayMs trips a client timeout, and succeeds with a longer one', async () => {
    mock.setScenario('*', { firstByteDelayMs: 400 });
    const impatient = new OpenAI({ baseURL: mock.url, apiKey: 'x', maxRetries: 0, timeout: 100 });
    await expect(impatient.chat.completions.create({ model: 'gpt-4o', messages })).rejects.toBeInstanceOf(
      OpenAI.APIConnectionTimeoutError,
    );
    const t0 = Date.now();
    const r = await client.chat.completions.create({ model: 'gpt-4o', messages });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(r.choices).toHaveLength(1);
  });

  it('holdUntil sends nothing until the gate opens, then answers', async () => {
    let open = () => {};
    mock.setScenario('*', {
      holdUntil: new Promise<void>((r) => {
        open = r;
      }),
    });
    let answered = false;
    const pending = client.chat.completions.create({ model: 'gpt-4o', messages }).then((r) => {
      answered = true;
      return r;
    });
    while (mock.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    expect(answered).toBe(false);
    open();
    expect((await pending).choices[0]!.message.content).toBe(expectedChatCompletion(messages));
  });

  it('hangMs sends nothing, then drops the connection', async () => {
    mock.setScenario('*', { hangMs: 50 });
    const err = await client.chat.completions.create({ model: 'gpt-4o', messages }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIConnectionError);
  });

  it('completionTokens, cachedTokens and omitUsage', async () => {
    mock.setScenario('*', { completionTokens: 9, cachedTokens: 4 });
    const r = await client.chat.completions.create({ model: 'gpt-4o', messages });
    expect(r.usage!.completion_tokens).toBe(9);
    expect(r.usage!.prompt_tokens_details!.cached_tokens).toBe(4);
    const chunks = await collect(await usageStream());
    expect(chunks[chunks.length - 1]!.usage!.prompt_tokens_details!.cached_tokens).toBe(4);

    mock.setScenario('*', { omitUsage: true });
    const noUsage = await client.chat.completions.create({ model: 'gpt-4o', messages });
    expect(noUsage.usage).toBeUndefined();
    expect(countTokens(noUsage.choices[0]!.message.content!)).toBe(DEFAULT_COMPLETION_TOKENS);
    const c2 = await collect(await usageStream());
    expect(c2.some((c) => c.usage)).toBe(false);
    expect(contentChunks(c2)).toHaveLength(DEFAULT_COMPLETION_TOKENS);
  });
});

describe('lifecycle', () => {
  it('close() destroys open sockets and cancels hanging requests', async () => {
    const m = await startMockProvider();
    m.setScenario('*', { hangMs: 60_000 });
    const c = new OpenAI({ baseURL: m.url, apiKey: 'x', maxRetries: 0, timeout: 30_000 });
    const pending = c.chat.completions.create({ model: 'gpt-4o', messages }).catch((e: unknown) => e);
    while (m.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    const t0 = Date.now();
    await m.close();
    expect(await pending).toBeInstanceOf(OpenAI.APIConnectionError);
    expect(Date.now() - t0).toBeLessThan(5_000);
    await m.close(); // idempotent
  });

  it('cli.ts prints its URL and exits cleanly on SIGTERM', async () => {
    const cli = fileURLToPath(new URL('./cli.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', cli, '--port', '0'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const rl = createInterface({ input: child.stdout! });
        rl.once('line', resolve);
        child.once('exit', (code) => reject(new Error(`cli exited early with ${code}`)));
      });
      const m = /^mock provider listening on (http:\/\/127\.0\.0\.1:\d+\/v1)$/.exec(line);
      expect(m).not.toBeNull();
      const res = await fetch(`${m![1]}/models`);
      expect(res.status).toBe(200);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
