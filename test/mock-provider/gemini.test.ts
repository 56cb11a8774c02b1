// The mock provider's Gemini routes, read by @google/genai pointed straight at the mock.
import {
  ApiError,
  FunctionCallingConfigMode,
  type GenerateContentResponse,
  GoogleGenAI,
  Type,
} from '@google/genai';
import { countTokens } from 'gpt-tokenizer';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  GEMINI_MEDIA_TOKENS,
  countGeminiPromptTokens,
  expectedGeminiText,
  geminiToolArgs,
  googleJson,
} from './gemini.js';
import { DEFAULT_COMPLETION_TOKENS, type MockProvider, startMockProvider } from './server.js';
import { WEATHER_ARGS, WEATHER_SCHEMA } from './weather.js';

const KEY = 'AIzaMockKey0123456789';
let mock: MockProvider;
let origin: string;
let ai: GoogleGenAI;

beforeAll(async () => {
  mock = await startMockProvider({ apiKey: KEY });
  origin = mock.url.replace(/\/v1$/, '');
  ai = new GoogleGenAI({ apiKey: KEY, httpOptions: { baseUrl: origin } });
});
afterAll(() => mock.close());
beforeEach(() => mock.reset());

type Body = Record<string, unknown>;
/** Google's error body. */
interface GoogleError {
  error: { code: number; message: string; status: string };
}
const lastBody = () => mock.requests[mock.requests.length - 1]!.body as Body;

async function collect(stream: AsyncGenerator<GenerateContentResponse>) {
  const chunks: GenerateContentResponse[] = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

async function failure(p: Promise<unknown>): Promise<ApiError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ApiError);
  return e as ApiError;
}

const WEATHER = {
  name: 'get_weather',
  description: 'Weather for a city',
  parametersJsonSchema: WEATHER_SCHEMA,
};

describe('gemini mock: generateContent', () => {
  it('answers deterministic text with exact usage, as the SDK reads it', async () => {
    const r = await ai.models.generateContent({
      model: 'gemini-2.5-flash',
      contents: 'Tell me about tunnels.',
      config: { systemInstruction: 'You are a helpful mole.' },
    });
    const body = lastBody();
    expect(r.text).toBe(expectedGeminiText(body));
    expect(countTokens(r.text!)).toBe(DEFAULT_COMPLETION_TOKENS);
    expect(r.candidates?.[0]?.finishReason).toBe('STOP');
    expect(r.modelVersion).toBe('gemini-2.5-flash');
    expect(r.responseId).toBeTruthy();
    const prompt = countTokens('You are a helpful mole.') + countTokens('Tell me about tunnels.');
    expect(countGeminiPromptTokens(body)).toBe(prompt);
    expect(r.usageMetadata).toEqual({
      promptTokenCount: prompt,
      candidatesTokenCount: DEFAULT_COMPLETION_TOKENS,
      totalTokenCount: prompt + DEFAULT_COMPLETION_TOKENS,
      promptTokensDetails: [{ modality: 'TEXT', tokenCount: prompt }],
    });
    const rec = mock.requests[0]!;
    expect(rec.path).toBe('/v1beta/models/gemini-2.5-flash:generateContent');
    expect(rec.headers['x-goog-api-key']).toBe(KEY);
    // Google pretty-prints plain JSON answers.
    const raw = await fetch(`${origin}/v1beta/models/gemini-2.5-flash:generateContent?key=${KEY}`, {
      method: 'POST',
      body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
    });
    expect(raw.headers.get('content-type')).toBe('application/json; charset=UTF-8');
    expect(await raw.text()).toMatch(/^\{\n {2}"candidates": \[/);
  });

  it('caps at maxOutputTokens with MAX_TOKENS; reports cache and thinking tokens', async () => {
    mock.setScenario('gemini-2.5-pro', { cachedTokens: 3, reasoningTokens: 40, completionTokens: 30 });
    const r = await ai.models.generateContent({
      model: 'gemini-2.5-pro',
      contents: 'Count the moles in the garden, please.',
      config: { maxOutputTokens: 5 },
    });
    expect(countTokens(r.text!)).toBe(5);
    expect(r.candidates?.[0]?.finishReason).toBe('MAX_TOKENS');
    const prompt = countTokens('Count the moles in the garden, please.');
    expect(r.usageMetadata).toMatchObject({
      promptTokenCount: prompt,
      cachedContentTokenCount: 3,
      candidatesTokenCount: 5,
      thoughtsTokenCount: 40,
      totalTokenCount: prompt + 5 + 40,
      cacheTokensDetails: [{ modality: 'TEXT', tokenCount: 3 }],
    });
  });

  it('counts media parts, function calls, responses and tools in the prompt', () => {
    const body = {
      systemInstruction: { parts: [{ text: 'sys' }] },
      contents: [
        { role: 'user', parts: [{ text: 'look' }, { inlineData: { mimeType: 'image/png', data: 'AA==' } }] },
        { role: 'model', parts: [{ functionCall: { name: 'f', args: { a: 1 } } }] },
        { role: 'user', parts: [{ functionResponse: { name: 'f', response: { output: 'ok' } } }] },
      ],
      tools: [{ functionDeclarations: [{ name: 'f' }] }],
    };
    const tok = (s: string) => countTokens(s);
    expect(countGeminiPromptTokens(body)).toBe(
      tok('sys') +
        tok('look') +
        GEMINI_MEDIA_TOKENS +
        tok('f') +
        tok('{"a":1}') +
        tok('f') +
        tok('{"output":"ok"}') +
        tok(JSON.stringify(body.tools)),
    );
  });
});

describe('gemini mock: streamGenerateContent', () => {
  it('streams one token per frame, then a last frame with the reason and usage', async () => {
    const chunks = await collect(
      await ai.models.generateContentStream({
        model: 'gemini-2.5-flash',
        contents: 'Tell me about tunnels.',
      }),
    );
    const body = lastBody();
    expect(mock.requests[0]!.path).toBe('/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse');
    expect(chunks).toHaveLength(DEFAULT_COMPLETION_TOKENS + 1);
    expect(chunks.map((c) => c.text ?? '').join('')).toBe(expectedGeminiText(body));
    for (const c of chunks.slice(0, -1)) {
      expect(countTokens(c.text!)).toBe(1);
      expect(c.candidates?.[0]?.finishReason).toBeUndefined();
    }
    const last = chunks[chunks.length - 1]!;
    expect(last.candidates?.[0]?.finishReason).toBe('STOP');
    const prompt = countTokens('Tell me about tunnels.');
    expect(last.usageMetadata).toMatchObject({
      promptTokenCount: prompt,
      candidatesTokenCount: DEFAULT_COMPLETION_TOKENS,
      totalTokenCount: prompt + DEFAULT_COMPLETION_TOKENS,
    });
    // A chat session records the turn: every frame is a valid response.
    const chat = ai.chats.create({ model: 'gemini-2.5-flash' });
    await collect(await chat.sendMessageStream({ message: 'hello' }));
    expect(chat.getHistory(true)).toHaveLength(DEFAULT_COMPLETION_TOKENS + 2);
  });

  it("writes Google's frames: CRLF ends, spaces after ':', no terminator", async () => {
    const res = await fetch(`${origin}/v1/models/gemini-2.0-flash:streamGenerateContent?alt=sse`, {
      method: 'POST',
      headers: { 'x-goog-api-key': KEY },
      body: JSON.stringify({
        contents: [{ parts: [{ text: 'hi' }] }],
        generationConfig: { maxOutputTokens: 2 },
      }),
    });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const text = await res.text();
    const frames = text.split('\r\n\r\n');
    expect(frames.pop()).toBe('');
    expect(frames).toHaveLength(3);
    expect(frames[0]).toMatch(
      /^data: \{"candidates": \[\{"content": \{"parts": \[\{"text": "[^"]+"\}\],"role": "model"\},"index": 0\}\],"usageMetadata": \{"promptTokenCount": 1,/,
    );
    expect(frames[2]).toContain('"finishReason": "MAX_TOKENS"');
    expect(googleJson({ a: [1, { b: 'x' }], c: null })).toBe('{"a": [1,{"b": "x"}],"c": null}');
  });

  it('honours cuts, garbage, mid-stream errors, error bodies and omitted usage', async () => {
    const stream = () => ai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'hi' });
    mock.setScenario('*', { cutAfterChunks: 3, times: 1 });
    const cut: GenerateContentResponse[] = [];
    await expect(
      (async () => {
        for await (const c of await stream()) cut.push(c);
      })(),
    ).rejects.toThrow();
    expect(cut).toHaveLength(3);
    expect(cut.every((c) => c.candidates?.[0]?.finishReason === undefined)).toBe(true);

    mock.setScenario('*', { garbageAfterChunks: 2, times: 1 });
    await expect(collect(await stream())).rejects.toThrow(/exception parsing stream chunk|JSON/);

    mock.setScenario('*', { midStreamError: 4, times: 1 });
    const before: GenerateContentResponse[] = [];
    const err = await failure(
      (async () => {
        for await (const c of await stream()) before.push(c);
      })(),
    );
    expect(before).toHaveLength(4);
    expect(err.status).toBe(500);
    expect(err.message).toContain('INTERNAL');

    mock.setScenario('*', { errorInBody: true, times: 1 });
    expect((await failure(collect(await stream()))).status).toBe(500);
    mock.setScenario('*', { errorInBody: true, times: 1 });
    const plain = await fetch(`${origin}/v1beta/models/x:generateContent`, {
      method: 'POST',
      headers: { 'x-goog-api-key': KEY },
      body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
    });
    expect(plain.status).toBe(200);
    expect(await plain.json()).toMatchObject({ error: { code: 500, status: 'INTERNAL' } });

    mock.setScenario('*', { omitUsage: true, times: 1 });
    const quiet = await collect(await stream());
    expect(quiet.every((c) => c.usageMetadata === undefined)).toBe(true);
  });
});

describe('gemini mock: timing scenarios', () => {
  const post = (stream: boolean, signal?: AbortSignal) =>
    fetch(
      `${origin}/v1beta/models/gemini-2.5-flash:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`,
      {
        method: 'POST',
        headers: { 'x-goog-api-key': KEY },
        body: JSON.stringify({
          contents: [{ parts: [{ text: 'hi' }] }],
          generationConfig: { maxOutputTokens: 3 },
        }),
        signal,
      },
    );

  it('firstByteDelayMs delays the answer; chunkDelayMs spaces the frames', async () => {
    mock.setScenario('*', { firstByteDelayMs: 150, times: 1 });
    let t = Date.now();
    expect((await post(false)).status).toBe(200);
    expect(Date.now() - t).toBeGreaterThanOrEqual(140);
    mock.setScenario('*', { chunkDelayMs: 60, times: 1 });
    t = Date.now();
    const text = await (await post(true)).text();
    expect(text.split('\r\n\r\n')).toHaveLength(5);
    expect(Date.now() - t).toBeGreaterThanOrEqual(3 * 55);
  });

  it('hangMs sends nothing, then drops the connection; with a cut, after the chunks', async () => {
    mock.setScenario('*', { hangMs: 100, times: 1 });
    await expect(post(false)).rejects.toThrow();
    mock.setScenario('*', { cutAfterChunks: 2, hangMs: 100, times: 1 });
    const t = Date.now();
    const res = await post(true);
    const reader = res.body!.getReader();
    let got = '';
    await expect(
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          got += Buffer.from(value).toString();
        }
      })(),
    ).rejects.toThrow();
    expect(Date.now() - t).toBeGreaterThanOrEqual(90);
    expect(got.split('\r\n\r\n').filter(Boolean)).toHaveLength(2);
  });
});

describe('gemini mock: tool use', () => {
  it('calls the first function with its required arguments, finishReason STOP', async () => {
    const config = { tools: [{ functionDeclarations: [WEATHER, { name: 'get_time' }] }] };
    const r = await ai.models.generateContent({
      model: 'gemini-2.5-flash',
      contents: 'Weather in Paris?',
      config,
    });
    expect(r.functionCalls).toEqual([{ name: 'get_weather', args: WEATHER_ARGS }]);
    expect(r.candidates?.[0]?.finishReason).toBe('STOP');
    expect(r.usageMetadata?.candidatesTokenCount).toBe(
      countTokens('get_weather') + countTokens(JSON.stringify(r.functionCalls![0]!.args)),
    );
    // The function's result: the model answers text.
    const second = await ai.models.generateContent({
      model: 'gemini-2.5-flash',
      contents: [
        { role: 'user', parts: [{ text: 'Weather in Paris?' }] },
        { role: 'model', parts: [{ functionCall: r.functionCalls![0]! }] },
        {
          role: 'user',
          parts: [{ functionResponse: { name: 'get_weather', response: { output: 'sunny' } } }],
        },
      ],
      config,
    });
    expect(second.functionCalls).toBeUndefined();
    expect(second.text).toBe(expectedGeminiText(lastBody()));
  });

  it('honours NONE, ANY with allowed names, and OpenAPI-style parameters; streams a call whole', async () => {
    const decls = [
      WEATHER,
      {
        name: 'get_time',
        parameters: { type: Type.OBJECT, properties: { zone: { type: Type.STRING } }, required: ['zone'] },
      },
    ];
    const none = await ai.models.generateContent({
      model: 'm',
      contents: 'hi',
      config: {
        tools: [{ functionDeclarations: decls }],
        toolConfig: { functionCallingConfig: { mode: FunctionCallingConfigMode.NONE } },
      },
    });
    expect(none.functionCalls).toBeUndefined();
    expect(none.text).toBeTruthy();
    const forced = {
      tools: [{ functionDeclarations: decls }],
      toolConfig: {
        functionCallingConfig: { mode: FunctionCallingConfigMode.ANY, allowedFunctionNames: ['get_time'] },
      },
    };
    const any = await ai.models.generateContent({ model: 'm', contents: 'hi', config: forced });
    expect(any.functionCalls).toEqual([{ name: 'get_time', args: { zone: 'mole' } }]);
    const chunks = await collect(
      await ai.models.generateContentStream({ model: 'm', contents: 'hi', config: forced }),
    );
    expect(chunks).toHaveLength(1);
    expect(chunks[0]!.functionCalls).toEqual([{ name: 'get_time', args: { zone: 'mole' } }]);
    expect(chunks[0]!.candidates?.[0]?.finishReason).toBe('STOP');
    expect(chunks[0]!.usageMetadata?.promptTokenCount).toBeGreaterThan(0);
    expect(
      geminiToolArgs({ type: 'OBJECT', properties: { n: { type: 'NUMBER' } }, required: ['n', 'x'] }),
    ).toEqual({
      n: 1,
      x: {},
    });
  });
});

describe('gemini mock: errors and credentials', () => {
  it("answers scenarios with Google's error body, retry-after on 429", async () => {
    mock.setScenario('gemini-2.5-flash', { status: 429, times: 1 });
    const e = await failure(ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hi' }));
    expect(e.status).toBe(429);
    const body = JSON.parse(e.message);
    expect(body.error).toMatchObject({ code: 429, status: 'RESOURCE_EXHAUSTED' });
    expect(body.error.details[1]).toEqual({
      '@type': 'type.googleapis.com/google.rpc.RetryInfo',
      retryDelay: '1s',
    });
    mock.setScenario('*', { status: 503, errorMessage: 'busy burrow', headers: { 'x-extra': '1' } });
    const res = await fetch(`${origin}/v1beta/models/a:generateContent`, {
      method: 'POST',
      headers: { 'x-goog-api-key': KEY },
      body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('x-extra')).toBe('1');
    expect(await res.text()).toBe(
      JSON.stringify({ error: { code: 503, message: 'busy burrow', status: 'UNAVAILABLE' } }, null, 2),
    );
    mock.clearScenarios();
    mock.setScenario('*', { status: 429, times: 1 });
    const limited = await fetch(`${origin}/v1beta/models/a:streamGenerateContent?alt=sse`, {
      method: 'POST',
      headers: { 'x-goog-api-key': KEY },
      body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
    });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('1');
  });

  it('checks the key in x-goog-api-key or ?key=, as Google does', async () => {
    const wrong = new GoogleGenAI({ apiKey: 'AIzaWrong', httpOptions: { baseUrl: origin } });
    const e = await failure(wrong.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hi' }));
    expect(e.status).toBe(400);
    expect(JSON.parse(e.message).error).toMatchObject({
      code: 400,
      message: 'API key not valid. Please pass a valid API key.',
      status: 'INVALID_ARGUMENT',
      details: [{ reason: 'API_KEY_INVALID' }],
    });
    const post = (q: string, headers: Record<string, string> = {}) =>
      fetch(`${origin}/v1beta/models/gemini-2.5-flash:generateContent${q}`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] }),
      });
    const missing = await post('');
    expect(missing.status).toBe(403);
    expect(((await missing.json()) as GoogleError).error.status).toBe('PERMISSION_DENIED');
    expect((await post(`?key=${KEY}`)).status).toBe(200);
    expect((await post('?key=nope')).status).toBe(400);
    expect((await post('', { 'x-goog-api-key': KEY })).status).toBe(200);
  });

  it('refuses bad bodies and unknown fields the way Google does', async () => {
    const post = (body: string) =>
      fetch(`${origin}/v1beta/models/gemini-2.5-flash:generateContent`, {
        method: 'POST',
        headers: { 'x-goog-api-key': KEY },
        body,
      });
    const cases: [string, RegExp][] = [
      ['{', /Invalid JSON payload/],
      ['{}', /contents is not specified/],
      ['{"contents":[{"role":"bot","parts":[{"text":"x"}]}]}', /valid role/],
      ['{"contents":[{"parts":[]}]}', /must not be empty/],
      [
        '{"contents":[{"parts":[{"text":"x"}]}],"frobnicate":1}',
        /Unknown name "frobnicate": Cannot find field/,
      ],
      [
        '{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"maxOutputTokens":"x"}}',
        /max_output_tokens/,
      ],
    ];
    for (const [body, msg] of cases) {
      const r = await post(body);
      expect(r.status, body).toBe(400);
      const j = (await r.json()) as GoogleError;
      expect(j.error.status).toBe('INVALID_ARGUMENT');
      expect(j.error.message).toMatch(msg);
    }
    // snake_case names are Google's too.
    const snake = await post(
      '{"system_instruction":{"parts":[{"text":"x"}]},"contents":[{"parts":[{"text":"y"}]}],"generation_config":{"max_output_tokens":2}}',
    );
    expect(snake.status).toBe(200);
    expect(
      ((await snake.json()) as { usageMetadata: { candidatesTokenCount: number } }).usageMetadata
        .candidatesTokenCount,
    ).toBe(2);
    // The SDK's extraBody reaches the mock, which refuses it.
    const extra = new GoogleGenAI({
      apiKey: KEY,
      httpOptions: { baseUrl: origin, extraBody: { moleExtra: 1 } },
    });
    const e = await failure(extra.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hi' }));
    expect(e.status).toBe(400);
    expect(lastBody()).toMatchObject({ moleExtra: 1 });
  });
});

describe('gemini mock: countTokens and models', () => {
  it('counts tokens and lists models through the SDK', async () => {
    const r = await ai.models.countTokens({ model: 'gemini-2.5-flash', contents: 'Tell me about tunnels.' });
    expect(r.totalTokens).toBe(countTokens('Tell me about tunnels.'));
    const names: string[] = [];
    for await (const m of await ai.models.list()) names.push(m.name!);
    expect(names).toContain('models/gemini-2.5-flash');
    const one = await ai.models.get({ model: 'gemini-2.5-pro' });
    expect(one.supportedActions).toContain('generateContent');
    expect((await failure(ai.models.get({ model: 'nope' }))).status).toBe(404);
    // GET /v1/models stays OpenAI's without a Google credential.
    const openai = await fetch(`${origin}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(((await openai.json()) as { object: string }).object).toBe('list');
    const google = await fetch(`${origin}/v1/models?key=${KEY}`);
    expect(((await google.json()) as { models: unknown[] }).models).toHaveLength(4);
  });
});
