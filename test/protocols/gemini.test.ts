// Gemini through the real gateway, with @google/genai (and `openai` for the OpenAI-in pair),
// on SQLite and PostgreSQL, against the mock provider speaking Gemini and OpenAI:
// pass-through (Gemini in → Gemini channel), translation both ways (Gemini in → OpenAI
// channel, OpenAI chat in → Gemini channel), token counting, model lists, exact cost per log
// row, and the key rules answered in Google's error shape.
import { ApiError, type Content, type GenerateContentResponse, GoogleGenAI, Type } from '@google/genai';
import type OpenAI from 'openai';
import { beforeEach, describe, expect, it } from 'vitest';
import { countGeminiTokens } from '../../src/relay/protocols/gemini.js';
import { backends, type TestJsonObject, type TestServer, userWithKey } from '../helpers/server.js';
import { channelTo, gatewayWithChannels } from '../helpers/gateway-channels.js';
import { WEATHER_TOOL } from '../helpers/weather-tool.js';
import { countGeminiPromptTokens, expectedGeminiText } from '../mock-provider/gemini.js';
import {
  countChatPromptTokens,
  DEFAULT_COMPLETION_TOKENS,
  expectedChatCompletion,
  type MockProvider,
} from '../mock-provider/server.js';
import {
  addChannel,
  addPricedChannel,
  allLogs,
  client,
  expectedCostNano,
  type LogRow,
  nanoOf,
  type PriceUsd,
} from '../relay/relay-helpers.js';

const UPSTREAM_KEY = 'AIzaUpstreamChannelKey';
const PRICES: Record<string, PriceUsd & { cache_write?: number }> = {
  'gm-pass': { input: 0.3, output: 2.5, cached_input: 0.075, cache_write: 0.5 },
  'gm-oai': { input: 2.5, output: 10, cached_input: 1.25 },
  'oa-gem': { input: 1.25, output: 10, cached_input: 0.31 },
};

type Json = TestJsonObject;
type LogRowPlus = LogRow & { protocol?: string; reasoning_tokens?: number; cache_write_tokens?: number };

/** The model's turn that calls get_weather with `args`. */
const weatherCall = (args: Json): Content => ({
  role: 'model',
  parts: [{ functionCall: { name: 'get_weather', args } }],
});

/** A tool round in Gemini's terms: the question, the model's `call`, and the function's `output`. */
const weatherRound = (call: Content, output: string): Content[] => [
  { role: 'user', parts: [{ text: 'Weather in Paris?' }] },
  call,
  { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { output } } }] },
];

async function collect(stream: AsyncGenerator<GenerateContentResponse>) {
  const chunks: GenerateContentResponse[] = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

async function apiError(p: Promise<unknown>): Promise<{ status: number; body: Json }> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ApiError);
  const err = e as ApiError;
  // A stream error frame reads `got status: NAME. {json}`; an HTTP error is the JSON alone.
  return { status: err.status, body: JSON.parse(err.message.slice(err.message.indexOf('{'))) };
}

describe.each(backends())('Gemini protocol through the gateway (%s)', (backend) => {
  let s: TestServer;
  let mock: MockProvider;
  let origin: string;

  gatewayWithChannels(
    { backend },
    {
      apiKey: UPSTREAM_KEY,
      channels: [
        {
          type: 'gemini',
          models: ['gm-pass', 'oa-gem'],
          model_map: { 'gm-pass': 'gemini-2.5-flash', 'oa-gem': 'gemini-2.5-pro' },
        },
        { type: 'openai', models: ['gm-oai'], model_map: { 'gm-oai': 'gpt-4o' } },
      ],
      prices: PRICES,
    },
    (g) => {
      ({ s, mock, origin } = g);
    },
  );
  beforeEach(() => mock.reset());

  /** A fresh user and key, and a @google/genai client on the gateway. */
  async function fresh(key: Record<string, unknown> = {}, balance = 100) {
    const u = await userWithKey(s, { balance, key });
    const ai = new GoogleGenAI({ apiKey: u.secret, httpOptions: { baseUrl: s.url } });
    return { ...u, ai };
  }

  async function onlyLog(keyId: number): Promise<LogRowPlus> {
    const rows = await allLogs(s, { key_id: keyId });
    expect(rows).toHaveLength(1);
    return rows[0] as LogRowPlus;
  }

  function expectCost(
    row: LogRowPlus,
    model: string,
    u: { prompt: number; cached: number; completion: number },
  ) {
    expect(row).toMatchObject({
      prompt_tokens: u.prompt,
      cached_tokens: u.cached,
      completion_tokens: u.completion,
    });
    expect(nanoOf(row.cost)).toBe(expectedCostNano(u, PRICES[model]!));
  }

  const upstream = () => mock.requests[mock.requests.length - 1]!;

  // ── pass-through: Gemini in → Gemini channel ─────────────────────────────────────────────

  describe('pass-through (Gemini channel)', () => {
    it('plain: the mock answer as sent, mapped model in the URL, channel key, exact cost', async () => {
      const { ai, key } = await fresh();
      mock.setScenario('gemini-2.5-flash', { cachedTokens: 5, reasoningTokens: 30 });
      const r = await ai.models.generateContent({
        model: 'gm-pass',
        contents: 'Tell me about tunnels under the garden.',
        config: { systemInstruction: 'You are a helpful mole.', temperature: 0.3 },
      });
      const up = upstream();
      expect(up.path).toBe('/v1beta/models/gemini-2.5-flash:generateContent');
      expect(up.headers['x-goog-api-key']).toBe(UPSTREAM_KEY);
      // The client's body as sent, plus only the implied output cap.
      const body = up.body as Json;
      expect(body).toEqual({
        contents: [{ parts: [{ text: 'Tell me about tunnels under the garden.' }], role: 'user' }],
        systemInstruction: { parts: [{ text: 'You are a helpful mole.' }], role: 'user' },
        generationConfig: { temperature: 0.3, maxOutputTokens: expect.any(Number) },
      });
      expect(r.text).toBe(expectedGeminiText(body));
      const prompt = countGeminiPromptTokens(body);
      expect(r.usageMetadata).toMatchObject({
        promptTokenCount: prompt,
        cachedContentTokenCount: 5,
        candidatesTokenCount: DEFAULT_COMPLETION_TOKENS,
        thoughtsTokenCount: 30,
      });
      expect(r.modelVersion).toBe('gemini-2.5-flash');
      const row = await onlyLog(key.id);
      expect(row).toMatchObject({ protocol: 'gemini', model: 'gm-pass', upstream_model: 'gemini-2.5-flash' });
      expect(row.reasoning_tokens).toBe(30);
      expect(row.cache_write_tokens).toBe(0);
      expectCost(row, 'gm-pass', { prompt, cached: 5, completion: DEFAULT_COMPLETION_TOKENS + 30 });
    });

    it('stream: the SDK reads every frame, byte for byte as the mock wrote them; exact cost', async () => {
      const { ai, key, secret } = await fresh();
      const chunks = await collect(
        await ai.models.generateContentStream({ model: 'gm-pass', contents: 'Dig a stream for me.' }),
      );
      const body = upstream().body as Json;
      expect(upstream().path).toBe('/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse');
      expect(chunks).toHaveLength(DEFAULT_COMPLETION_TOKENS + 1);
      expect(chunks.map((c) => c.text ?? '').join('')).toBe(expectedGeminiText(body));
      const last = chunks[chunks.length - 1]!;
      expect(last.candidates?.[0]?.finishReason).toBe('STOP');
      const prompt = countGeminiPromptTokens(body);
      expect(last.usageMetadata).toMatchObject({
        promptTokenCount: prompt,
        candidatesTokenCount: DEFAULT_COMPLETION_TOKENS,
      });
      expectCost(await onlyLog(key.id), 'gm-pass', {
        prompt,
        cached: 0,
        completion: DEFAULT_COMPLETION_TOKENS,
      });

      // The frames are Google's own (CRLF ends, spaced JSON): nothing re-encoded them.
      const res = await fetch(`${s.url}/v1beta/models/gm-pass:streamGenerateContent?alt=sse&key=${secret}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          contents: [{ parts: [{ text: 'x' }] }],
          generationConfig: { maxOutputTokens: 2 },
        }),
      });
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text.split('\r\n\r\n')).toHaveLength(4);
      expect(text).toMatch(/^data: \{"candidates": \[\{"content": \{"parts": \[\{"text": /);
    });

    it('tool use round trip: functionCall, then the functionResponse answered with text', async () => {
      const { ai } = await fresh();
      const config = {
        tools: [
          {
            functionDeclarations: [
              {
                name: WEATHER_TOOL.name,
                description: WEATHER_TOOL.description,
                parametersJsonSchema: WEATHER_TOOL.parameters,
              },
            ],
          },
        ],
      };
      const first = await ai.models.generateContent({
        model: 'gm-pass',
        contents: 'Weather in Paris?',
        config,
      });
      expect(first.functionCalls).toEqual([{ name: 'get_weather', args: { city: 'mole', days: 1 } }]);
      expect(first.candidates?.[0]?.finishReason).toBe('STOP');
      const second = await ai.models.generateContent({
        model: 'gm-pass',
        contents: weatherRound(first.candidates![0]!.content!, 'sunny'),
        config,
      });
      expect(second.functionCalls).toBeUndefined();
      expect(second.text).toBe(expectedGeminiText(upstream().body as Json));
      // Streamed, the call arrives whole.
      const chunks = await collect(
        await ai.models.generateContentStream({ model: 'gm-pass', contents: 'Weather in Rome?', config }),
      );
      expect(chunks.flatMap((c) => c.functionCalls ?? [])).toEqual([
        { name: 'get_weather', args: { city: 'mole', days: 1 } },
      ]);
    });

    it('unknown fields reach the upstream verbatim; its 400 body reaches the client byte for byte', async () => {
      const { secret } = await fresh();
      // Unknown nested fields (and snake_case names) pass untouched.
      const body = {
        contents: [{ role: 'user', parts: [{ text: 'hi' }] }],
        safety_settings: [{ category: 'HARM_CATEGORY_HARASSMENT', threshold: 'BLOCK_NONE' }],
        generationConfig: {
          maxOutputTokens: 3,
          futureKnob: { depth: 7 },
          thinkingConfig: { thinkingBudget: 0 },
        },
      };
      const ok = await fetch(`${s.url}/v1beta/models/gm-pass:generateContent`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-goog-api-key': secret },
        body: JSON.stringify(body),
      });
      expect(ok.status).toBe(200);
      expect(upstream().rawBody).toBe(JSON.stringify(body));
      // An unknown top-level field: Google (and the mock) refuse it; the client gets that body.
      const bad = JSON.stringify({ ...body, frobnicate: true });
      const direct = await fetch(`${origin}/v1beta/models/gemini-2.5-flash:generateContent`, {
        method: 'POST',
        headers: { 'x-goog-api-key': UPSTREAM_KEY },
        body: bad,
      });
      const viaGateway = await fetch(`${s.url}/v1beta/models/gm-pass:generateContent`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-goog-api-key': secret },
        body: bad,
      });
      expect(viaGateway.status).toBe(400);
      const text = await viaGateway.text();
      expect(text).toBe(await direct.text());
      expect(JSON.parse(text).error).toMatchObject({ code: 400, status: 'INVALID_ARGUMENT' });
      expect(upstream().rawBody).toBe(bad);
    });

    it('the client’s bytes reach the channel: as sent with a cap of its own, the implied cap spliced in', async () => {
      const { secret } = await fresh();
      const send = (body: string) =>
        fetch(`${s.url}/v1beta/models/gm-pass:generateContent`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-goog-api-key': secret },
          body,
        });
      // Spacing and key order JSON.stringify would not keep.
      const contents = '"contents" : [ {"role":"user","parts":[{"text":"say \\"hi\\""}]} ]';
      const own = `{ ${contents},\n "generationConfig": { "maxOutputTokens": 5 } }`;
      expect((await send(own)).status).toBe(200);
      expect(upstream().rawBody).toBe(own);
      // No cap of its own: the one admission held goes into its config, the rest as sent.
      const capless = `{ ${contents},\n "generationConfig": { "temperature": 0 } }`;
      expect((await send(capless)).status).toBe(200);
      expect(upstream().rawBody).toBe(
        `{ ${contents},\n "generationConfig": { "temperature": 0 ,"maxOutputTokens":4096} }`,
      );
      // A repeated key never goes as sent: the upstream reads the values checked here.
      const twice = `{ ${contents}, "generationConfig": { "candidateCount": 4, "candidateCount": 1, "maxOutputTokens": 5 } }`;
      expect((await send(twice)).status).toBe(200);
      expect(upstream().rawBody).toBe(JSON.stringify(JSON.parse(twice)));
    });

    it('a mid-stream upstream error ends the stream with an error frame the SDK throws', async () => {
      const { ai, key } = await fresh();
      mock.setScenario('gemini-2.5-flash', { midStreamError: 3, chunkDelayMs: 20, times: 1 });
      const seen: string[] = [];
      const err = await apiError(
        (async () => {
          for await (const c of await ai.models.generateContentStream({ model: 'gm-pass', contents: 'hi' }))
            seen.push(c.text ?? '');
        })(),
      );
      expect(seen).toHaveLength(3);
      expect(err.status).toBe(502);
      expect(err.body.error).toMatchObject({
        code: 502,
        status: 'UNAVAILABLE',
        details: [{ reason: 'upstream_error' }],
      });
      const row = await onlyLog(key.id);
      expect(row.error_code).toBe('upstream_error');
      expect(row.completion_tokens).toBe(3);
      expect(row.estimated).toBe(true);
    });

    it('an error before anything reached the client is a failed attempt: 502 in Google shape', async () => {
      const { ai, key } = await fresh();
      mock.setScenario('gemini-2.5-flash', { midStreamError: 2, times: 1 });
      const e = await apiError(
        ai.models.generateContentStream({ model: 'gm-pass', contents: 'hi' }).then((g) => collect(g)),
      );
      expect(e.status).toBe(502);
      expect(e.body.error).toMatchObject({ status: 'UNAVAILABLE', details: [{ reason: 'upstream_error' }] });
      mock.setScenario('gemini-2.5-flash', { errorInBody: true, times: 1 });
      const plain = await apiError(ai.models.generateContent({ model: 'gm-pass', contents: 'hi' }));
      expect(plain.status).toBe(502);
      const rows = await allLogs(s, { key_id: key.id });
      expect(rows.map((r) => [r.status, r.error_code, nanoOf(r.cost)])).toEqual([
        [502, 'upstream_error', 0n],
        [502, 'upstream_error', 0n],
      ]);
    });
  });

  describe('channel faults', () => {
    it("a Gemini channel with a bad key (Google's 400 API_KEY_INVALID) fails over to the next channel", async () => {
      // Google answers a wrong API key with 400 INVALID_ARGUMENT, not 401: the client's request
      // is fine, the channel is not. It must be tried elsewhere, not handed to the client.
      await addChannel(
        s,
        channelTo(mock, 'AIzaWrongChannelKey', { type: 'gemini', models: ['gm-fo'], priority: 10 }),
      );
      await addPricedChannel(s, channelTo(mock, UPSTREAM_KEY, { type: 'gemini', models: ['gm-fo'] }), {
        'gm-fo': { input: 1, output: 1 },
      });
      const { ai, key } = await fresh();
      const r = await ai.models.generateContent({ model: 'gm-fo', contents: 'hi' });
      expect(r.text).toBe(expectedGeminiText(upstream().body as Json));
      expect(mock.requests.map((q) => q.headers['x-goog-api-key'])).toEqual([
        'AIzaWrongChannelKey',
        UPSTREAM_KEY,
      ]);
      const row = (await onlyLog(key.id)) as LogRowPlus & { attempts?: { status: number | null }[] };
      expect(row.status).toBe(200);
      expect(row.attempts?.map((a) => a.status)).toEqual([400, 200]);
    });
  });

  // ── token counting and model lists ────────────────────────────────────────────────────────

  describe('countTokens and models', () => {
    it('countTokens answers locally; models.list and models.get list the usable models', async () => {
      const { ai } = await fresh();
      const r = await ai.models.countTokens({ model: 'gm-pass', contents: 'How many tokens is this?' });
      expect(r.totalTokens).toBe(
        countGeminiTokens({ contents: [{ parts: [{ text: 'How many tokens is this?' }], role: 'user' }] }),
      );
      expect(mock.requests).toHaveLength(0);
      const names: string[] = [];
      for await (const m of await ai.models.list()) names.push(m.name!);
      expect(names).toEqual(expect.arrayContaining(['models/gm-oai', 'models/gm-pass', 'models/oa-gem']));
      expect(names.every((n) => n.startsWith('models/'))).toBe(true);
      const one = await ai.models.get({ model: 'gm-oai' });
      expect(one.name).toBe('models/gm-oai');
      expect(one.supportedActions).toContain('generateContent');
      const missing = await apiError(ai.models.get({ model: 'nope' }));
      expect(missing.status).toBe(404);
      expect(missing.body.error.status).toBe('NOT_FOUND');
    });

    it('@google/genai on /v1 (apiVersion v1) reaches the same routes', async () => {
      const { secret } = await fresh();
      const ai = new GoogleGenAI({ apiKey: secret, httpOptions: { baseUrl: s.url, apiVersion: 'v1' } });
      const r = await ai.models.generateContent({ model: 'gm-pass', contents: 'hello over v1' });
      expect(r.text).toBe(expectedGeminiText(upstream().body as Json));
      const c = await ai.models.countTokens({ model: 'gm-pass', contents: 'hello' });
      expect(c.totalTokens).toBeGreaterThan(0);
      // The model list and lookup answer Google's shape to a Google client (the OpenAI SDK's
      // GET /v1/models keeps OpenAI's).
      const names: string[] = [];
      for await (const m of await ai.models.list()) names.push(m.name!);
      expect(names).toEqual(expect.arrayContaining(['models/gm-oai', 'models/gm-pass']));
      expect((await ai.models.get({ model: 'gm-oai' })).name).toBe('models/gm-oai');
      const missing = await apiError(ai.models.get({ model: 'nope' }));
      expect(missing.status).toBe(404);
      expect(missing.body.error.status).toBe('NOT_FOUND');
    });
  });

  // ── translation: Gemini in → OpenAI channel ──────────────────────────────────────────────

  describe('Gemini in → OpenAI channel', () => {
    it('plain: system and contents become chat messages; usage in Gemini terms; exact cost', async () => {
      const { ai, key } = await fresh();
      mock.setScenario('gpt-4o', { cachedTokens: 4 });
      const r = await ai.models.generateContent({
        model: 'gm-oai',
        contents: 'Tell me about tunnels.',
        config: {
          systemInstruction: 'You are a helpful mole.',
          maxOutputTokens: 40,
          temperature: 0.5,
          topP: 0.9,
        },
      });
      const up = upstream();
      expect(up.path).toBe('/v1/chat/completions');
      expect(up.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
      const body = up.body as Json;
      expect(body).toMatchObject({
        model: 'gpt-4o',
        messages: [
          { role: 'system', content: 'You are a helpful mole.' },
          { role: 'user', content: expect.anything() },
        ],
        temperature: 0.5,
        top_p: 0.9,
      });
      expect(r.text).toBe(expectedChatCompletion(body.messages));
      expect(r.candidates?.[0]?.finishReason).toBe('STOP');
      const prompt = countChatPromptTokens(body.messages);
      expect(r.usageMetadata).toEqual({
        promptTokenCount: prompt,
        cachedContentTokenCount: 4,
        candidatesTokenCount: DEFAULT_COMPLETION_TOKENS,
        totalTokenCount: prompt + DEFAULT_COMPLETION_TOKENS,
      });
      const row = await onlyLog(key.id);
      expect(row.protocol).toBe('gemini');
      expectCost(row, 'gm-oai', { prompt, cached: 4, completion: DEFAULT_COMPLETION_TOKENS });
    });

    it('JSON output: responseMimeType with a schema (JSON Schema or Google’s) becomes response_format', async () => {
      const { ai } = await fresh();
      const schema = { type: 'object', properties: { depth: { type: 'number' } }, required: ['depth'] };
      await ai.models.generateContent({
        model: 'gm-oai',
        contents: 'How deep?',
        config: { responseMimeType: 'application/json', responseJsonSchema: schema },
      });
      expect((upstream().body as Json).response_format).toEqual({
        type: 'json_schema',
        json_schema: { name: 'response', schema, strict: false },
      });
      await ai.models.generateContent({
        model: 'gm-oai',
        contents: 'How deep?',
        config: {
          responseMimeType: 'application/json',
          responseSchema: { type: Type.OBJECT, properties: { depth: { type: Type.NUMBER, nullable: true } } },
        },
      });
      expect((upstream().body as Json).response_format).toEqual({
        type: 'json_schema',
        json_schema: {
          name: 'response',
          schema: { type: 'object', properties: { depth: { type: ['number', 'null'] } } },
          strict: false,
        },
      });
      await ai.models.generateContent({
        model: 'gm-oai',
        contents: 'How deep?',
        config: { responseMimeType: 'application/json' },
      });
      expect((upstream().body as Json).response_format).toEqual({ type: 'json_object' });
    });

    it('the upstream gets one answer’s cap: candidateCount is not asked of it', async () => {
      const { ai } = await fresh();
      // Admission holds 2 × 3 tokens; the one answer the channel gives may have 3.
      await ai.models.generateContent({
        model: 'gm-oai',
        contents: 'Tell me about tunnels.',
        config: { maxOutputTokens: 3, candidateCount: 2 },
      });
      expect((upstream().body as Json).max_completion_tokens).toBe(3);
      await ai.models.generateContent({
        model: 'gm-oai',
        contents: 'Tell me about tunnels.',
        config: { candidateCount: 2 },
      });
      expect((upstream().body as Json).max_completion_tokens).toBe(4096);
    });

    it('stream: the SDK stream yields the text, the last chunk the reason and usage', async () => {
      const { ai, key } = await fresh();
      const chunks = await collect(
        await ai.models.generateContentStream({
          model: 'gm-oai',
          contents: 'Stream me a tunnel.',
          config: { maxOutputTokens: 5 },
        }),
      );
      const body = upstream().body as Json;
      expect(body.stream).toBe(true);
      expect(chunks.map((c) => c.text ?? '').join('')).toBe(expectedChatCompletion(body.messages, 5));
      const last = chunks[chunks.length - 1]!;
      expect(last.candidates?.[0]?.finishReason).toBe('MAX_TOKENS');
      const prompt = countChatPromptTokens(body.messages);
      expect(last.usageMetadata).toMatchObject({ promptTokenCount: prompt, candidatesTokenCount: 5 });
      // A chat session keeps the turn (every chunk a valid response).
      const chat = ai.chats.create({ model: 'gm-oai' });
      await collect(await chat.sendMessageStream({ message: 'hello' }));
      expect(chat.getHistory(true).length).toBeGreaterThan(1);
      expectCost((await allLogs(s, { key_id: key.id })).at(-1) as LogRowPlus, 'gm-oai', {
        prompt,
        cached: 0,
        completion: 5,
      });
    });

    it('stream frames: a cut ends with an error naming the gateway’s request id; usage beside the candidate', async () => {
      const { secret } = await fresh();
      mock.setScenario('gpt-4o', { cutAfterChunks: 2, chunkDelayMs: 5, times: 1 });
      const r = await fetch(`${s.url}/v1beta/models/gm-oai:streamGenerateContent?alt=sse`, {
        method: 'POST',
        headers: { 'x-goog-api-key': secret, 'content-type': 'application/json' },
        body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
      });
      const frames = (await r.text()).split(/\r?\n\r?\n/).filter((f) => f.startsWith('data: '));
      const last = JSON.parse(frames.at(-1)!.slice(6)) as { error: { details: { metadata: Json }[] } };
      expect(last.error.details[0]!.metadata.request_id).toBe(r.headers.get('x-request-id'));
      // Uncut, the last frame has the reason in its candidate and usageMetadata beside it
      // (Google's Candidate has no usageMetadata).
      const whole = await fetch(r.url, {
        method: 'POST',
        headers: { 'x-goog-api-key': secret, 'content-type': 'application/json' },
        body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
      });
      const end = (await whole.text())
        .split(/\r?\n\r?\n/)
        .filter((f) => f.startsWith('data: '))
        .at(-1)!;
      const json = JSON.parse(end.slice(6)) as { candidates: Json[]; usageMetadata: Json };
      expect(Object.keys(json.candidates[0]!).sort()).toEqual(['content', 'finishReason', 'index']);
      expect(json.usageMetadata).toMatchObject({ promptTokenCount: expect.any(Number) });
    });

    it('tools, tool choice, function calls and responses become OpenAI tools and tool messages', async () => {
      const { ai } = await fresh();
      const r = await ai.models.generateContent({
        model: 'gm-oai',
        contents: weatherRound(weatherCall({ city: 'Paris' }), 'sunny'),
        config: {
          tools: [
            {
              functionDeclarations: [
                {
                  name: 'get_weather',
                  parametersJsonSchema: { type: 'object', properties: { city: { type: 'string' } } },
                },
              ],
            },
          ],
          toolConfig: {
            functionCallingConfig: { mode: 'ANY' as never, allowedFunctionNames: ['get_weather'] },
          },
        },
      });
      const body = upstream().body as Json;
      expect(body.tools).toEqual([
        {
          type: 'function',
          function: {
            name: 'get_weather',
            parameters: { type: 'object', properties: { city: { type: 'string' } } },
          },
        },
      ]);
      expect(body.tool_choice).toEqual({ type: 'function', function: { name: 'get_weather' } });
      const [user, assistant, tool] = body.messages;
      expect(user.role).toBe('user');
      expect(assistant).toMatchObject({
        role: 'assistant',
        tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
      });
      expect(tool).toMatchObject({
        role: 'tool',
        tool_call_id: assistant.tool_calls[0].id,
        content: 'sunny',
      });
      expect(r.text).toBe(expectedChatCompletion(body.messages));
    });

    it('inline images become image_url parts', async () => {
      const { ai } = await fresh();
      await ai.models.generateContent({
        model: 'gm-oai',
        contents: [
          {
            role: 'user',
            parts: [
              { text: 'What is this?' },
              { inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } },
            ],
          },
        ],
      });
      expect((upstream().body as Json).messages[0].content).toEqual([
        { type: 'text', text: 'What is this?' },
        { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
      ]);
    });

    it('an upstream refusal comes back in Google shape; the log row names the code the client got', async () => {
      const { ai, key } = await fresh();
      mock.setScenario('gpt-4o', { status: 400, errorMessage: 'bad things in the burrow', times: 1 });
      const e = await apiError(ai.models.generateContent({ model: 'gm-oai', contents: 'hi' }));
      expect(e.status).toBe(400);
      expect(e.body.error).toMatchObject({
        code: 400,
        status: 'INVALID_ARGUMENT',
        message: 'bad things in the burrow',
        details: [{ reason: 'invalid_request' }],
      });
      expect((await onlyLog(key.id)).error_code).toBe('invalid_request');
    });
  });

  describe('streamGenerateContent without alt=sse', () => {
    const streamed = async (model: string, secret: string, alt: string) => {
      const r = await fetch(`${s.url}/v1beta/models/${model}:streamGenerateContent${alt}`, {
        method: 'POST',
        headers: { 'x-goog-api-key': secret, 'content-type': 'application/json' },
        body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
      });
      return { type: r.headers.get('content-type'), text: await r.text() };
    };
    const dataOf = (sse: string) =>
      sse
        .split(/\r?\n\r?\n/)
        .filter((f) => f.startsWith('data: '))
        .map((f) => JSON.parse(f.slice(6)) as Json);

    it.each(['gm-pass', 'gm-oai'])(
      '%s: one JSON array of the same chunks, as Google answers',
      async (model) => {
        const { secret } = await fresh();
        const array = await streamed(model, secret, '');
        expect(array.type).toMatch(/^application\/json/);
        expect(array.text.startsWith('[{')).toBe(true);
        const chunks = JSON.parse(array.text) as Json[];
        const sse = await streamed(model, secret, '?alt=sse');
        expect(sse.type).toMatch(/^text\/event-stream/);
        const frames = dataOf(sse.text);
        expect(chunks).toHaveLength(frames.length);
        const text = (cs: Json[]) =>
          cs.map((c) => (c.candidates as Json[] | undefined)?.[0]?.content?.parts?.[0]?.text ?? '').join('');
        expect(text(chunks)).toBe(text(frames));
      },
    );

    it('a cut ends the array with an error element', async () => {
      const { secret } = await fresh();
      mock.setScenario('gpt-4o', { cutAfterChunks: 2, chunkDelayMs: 5, times: 1 });
      const chunks = JSON.parse((await streamed('gm-oai', secret, '')).text) as Json[];
      expect(chunks.at(-1)!.error).toMatchObject({ status: expect.any(String) });
      expect(chunks.length).toBeGreaterThan(1);
    });
  });

  describe('what only Google can honour', () => {
    it('cachedContent is refused off a Gemini channel (nothing forwarded, nothing billed), and kept on one', async () => {
      const { ai, key } = await fresh();
      const config = { cachedContent: 'cachedContents/abc123' };
      const e = await apiError(ai.models.generateContent({ model: 'gm-oai', contents: 'hi', config }));
      expect(e.status).toBe(400);
      expect(e.body.error).toMatchObject({ code: 400, status: 'INVALID_ARGUMENT' });
      expect(e.body.error.message).toContain('cachedContent');
      expect(mock.requests).toHaveLength(0);
      expect(await onlyLog(key.id)).toMatchObject({ status: 400, cost: 0 });

      await ai.models.generateContent({ model: 'gm-pass', contents: 'hi', config }).catch(() => null);
      expect(upstream().body).toMatchObject({ cachedContent: 'cachedContents/abc123' });
    });

    it('cachedContent is held for as a context of unknown size (500,000 tokens)', async () => {
      // 500,000 tokens at gm-pass's dearest input price (0.5 USD per 1M) is 0.25 USD.
      const { ai, secret } = await fresh({ quota: 0.1 });
      const sent = mock.requests.length;
      const config = { cachedContent: 'cachedContents/abc123', maxOutputTokens: 16 };
      const e = await apiError(ai.models.generateContent({ model: 'gm-pass', contents: 'hi', config }));
      expect(e.status).toBe(429);
      expect(mock.requests).toHaveLength(sent);
      // Google's JSON takes the snake_case spelling too (and it goes upstream as sent).
      const snake = await fetch(`${s.url}/v1beta/models/gm-pass:generateContent`, {
        method: 'POST',
        headers: { 'x-goog-api-key': secret, 'content-type': 'application/json' },
        body: JSON.stringify({
          contents: [{ parts: [{ text: 'hi' }] }],
          cached_content: 'cachedContents/abc123',
          generationConfig: { maxOutputTokens: 16 },
        }),
      });
      expect(snake.status).toBe(429);
      expect(mock.requests).toHaveLength(sent);
      const ok = await ai.models.generateContent({
        model: 'gm-pass',
        contents: 'hi',
        config: { maxOutputTokens: 16 },
      });
      expect(ok.text).toBeTruthy();
    });
  });

  describe('client setup (README)', () => {
    it('@google/genai / Gemini CLI from the environment: GEMINI_API_KEY + GOOGLE_GEMINI_BASE_URL', async () => {
      const { secret } = await fresh();
      const saved = { ...process.env };
      try {
        delete process.env.GOOGLE_API_KEY;
        process.env.GEMINI_API_KEY = secret;
        process.env.GOOGLE_GEMINI_BASE_URL = s.url;
        process.env.GOOGLE_GENAI_USE_VERTEXAI = 'false';
        const ai = new GoogleGenAI({});
        const r = await ai.models.generateContent({ model: 'gm-pass', contents: 'configured by env' });
        expect(r.text).toBe(expectedGeminiText(upstream().body as Json));
      } finally {
        for (const k of [
          'GEMINI_API_KEY',
          'GOOGLE_GEMINI_BASE_URL',
          'GOOGLE_GENAI_USE_VERTEXAI',
          'GOOGLE_API_KEY',
        ])
          if (saved[k] === undefined) delete process.env[k];
          else process.env[k] = saved[k];
      }
    });

    it('the key as ?key= on every Gemini route, v1beta and v1; it never goes upstream', async () => {
      const { secret } = await fresh();
      const body = JSON.stringify({ contents: [{ parts: [{ text: 'hi' }] }] });
      for (const path of [
        '/v1beta/models/gm-pass:generateContent',
        '/v1/models/gm-pass:generateContent',
        '/v1beta/models/gm-pass:countTokens',
        '/v1/models/gm-pass:countTokens',
      ]) {
        const r = await fetch(`${s.url}${path}?key=${secret}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        expect(r.status, path).toBe(200);
      }
      expect(mock.requests.map((r) => r.path)).toEqual([
        '/v1beta/models/gemini-2.5-flash:generateContent',
        '/v1beta/models/gemini-2.5-flash:generateContent',
      ]);
      const list = await fetch(`${s.url}/v1beta/models?key=${secret}`);
      expect(list.status).toBe(200);
    });
  });

  describe('offline mock channel', () => {
    it('answers @google/genai in Gemini: plain, stream, a function call', async () => {
      await addPricedChannel(s, { type: 'mock' }, { 'gm-offline': { input: 1, output: 2 } });
      const { ai, key } = await fresh();
      const r = await ai.models.generateContent({ model: 'gm-offline', contents: 'hi' });
      expect(r.text).toMatch(/^ mole tunnel/);
      expect(r.usageMetadata?.candidatesTokenCount).toBeGreaterThan(0);
      const chunks = await collect(
        await ai.models.generateContentStream({ model: 'gm-offline', contents: 'hi' }),
      );
      expect(chunks.map((c) => c.text ?? '').join('')).toBe(r.text);
      expect(chunks.at(-1)!.candidates?.[0]?.finishReason).toBe('STOP');
      const t = await ai.models.generateContent({
        model: 'gm-offline',
        contents: 'Weather?',
        config: {
          tools: [
            {
              functionDeclarations: [
                {
                  name: 'get_weather',
                  parametersJsonSchema: {
                    type: 'object',
                    properties: { city: { type: 'string' } },
                    required: ['city'],
                  },
                },
              ],
            },
          ],
        },
      });
      expect(t.functionCalls).toEqual([{ name: 'get_weather', args: { city: 'mole' } }]);
      expect(mock.requests).toHaveLength(0);
      const rows = await allLogs(s, { key_id: key.id });
      expect(rows.map((x) => [x.status, (x as LogRowPlus).protocol])).toEqual([
        [200, 'gemini'],
        [200, 'gemini'],
        [200, 'gemini'],
      ]);
    });
  });

  // ── translation: OpenAI chat in → Gemini channel ─────────────────────────────────────────

  describe('OpenAI chat in → Gemini channel', () => {
    let oa: OpenAI;
    let keyId: number;
    beforeEach(async () => {
      const u = await fresh();
      oa = client(s, u.secret);
      keyId = u.key.id;
    });

    it('plain: messages become contents; usage in OpenAI terms; exact cost', async () => {
      mock.setScenario('gemini-2.5-pro', { cachedTokens: 6, reasoningTokens: 12 });
      const r = await oa.chat.completions.create({
        model: 'oa-gem',
        messages: [
          { role: 'system', content: 'You are a helpful mole.' },
          { role: 'user', content: 'Tell me about tunnels.' },
        ],
        max_tokens: 50,
        stop: ['END'],
      });
      const up = upstream();
      expect(up.path).toBe('/v1beta/models/gemini-2.5-pro:generateContent');
      expect(up.headers['x-goog-api-key']).toBe(UPSTREAM_KEY);
      const body = up.body as Json;
      expect(body).toEqual({
        contents: [{ role: 'user', parts: [{ text: 'Tell me about tunnels.' }] }],
        systemInstruction: { parts: [{ text: 'You are a helpful mole.' }] },
        generationConfig: { maxOutputTokens: 50, stopSequences: ['END'] },
      });
      expect(r.choices[0]!.message.content).toBe(expectedGeminiText(body));
      expect(r.choices[0]!.finish_reason).toBe('stop');
      const prompt = countGeminiPromptTokens(body);
      expect(r.usage).toMatchObject({
        prompt_tokens: prompt,
        completion_tokens: DEFAULT_COMPLETION_TOKENS + 12,
        prompt_tokens_details: { cached_tokens: 6 },
        completion_tokens_details: { reasoning_tokens: 12 },
      });
      const row = await onlyLog(keyId);
      expect(row.protocol).toBe('openai');
      expect(row.reasoning_tokens).toBe(12);
      expectCost(row, 'oa-gem', { prompt, cached: 6, completion: DEFAULT_COMPLETION_TOKENS + 12 });
    });

    it('stream: chunks carry the text; the usage chunk when asked; finish_reason length', async () => {
      const stream = await oa.chat.completions.create({
        model: 'oa-gem',
        messages: [{ role: 'user', content: 'Stream a tunnel.' }],
        max_tokens: 4,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = '';
      let finish: string | null = null;
      let usage: OpenAI.CompletionUsage | null | undefined;
      for await (const c of stream) {
        text += c.choices[0]?.delta.content ?? '';
        finish = c.choices[0]?.finish_reason ?? finish;
        if (c.usage) usage = c.usage;
      }
      const body = upstream().body as Json;
      expect(upstream().path).toBe('/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse');
      expect(text).toBe(expectedGeminiText(body, 4));
      expect(finish).toBe('length');
      expect(usage).toMatchObject({ prompt_tokens: countGeminiPromptTokens(body), completion_tokens: 4 });
      expectCost(await onlyLog(keyId), 'oa-gem', {
        prompt: countGeminiPromptTokens(body),
        cached: 0,
        completion: 4,
      });
    });

    it('tool use round trip: the Gemini functionCall becomes tool_calls; the tool result goes back', async () => {
      const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            description: 'Weather for a city',
            parameters: {
              type: 'object',
              properties: { city: { type: 'string' }, metric: { type: 'boolean' } },
              required: ['city', 'metric'],
            },
          },
        },
      ];
      const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
        { role: 'user', content: 'Weather in Paris?' },
      ];
      const first = await oa.chat.completions.create({
        model: 'oa-gem',
        messages,
        tools,
        tool_choice: 'required',
      });
      const sent = upstream().body as Json;
      expect(sent.tools).toEqual([
        {
          functionDeclarations: [
            {
              name: 'get_weather',
              description: 'Weather for a city',
              parametersJsonSchema: (tools[0] as OpenAI.Chat.Completions.ChatCompletionFunctionTool).function
                .parameters,
            },
          ],
        },
      ]);
      expect(sent.toolConfig).toEqual({ functionCallingConfig: { mode: 'ANY' } });
      const choice = first.choices[0]!;
      expect(choice.finish_reason).toBe('tool_calls');
      const call = choice.message.tool_calls![0]!;
      expect(call.type === 'function' && call.function).toEqual({
        name: 'get_weather',
        arguments: '{"city":"mole","metric":true}',
      });
      const second = await oa.chat.completions.create({
        model: 'oa-gem',
        messages: [
          ...messages,
          choice.message,
          { role: 'tool', tool_call_id: call.id, content: 'sunny, 21C' },
        ],
        tools,
      });
      const back = upstream().body as Json;
      expect(back.contents).toEqual(weatherRound(weatherCall({ city: 'mole', metric: true }), 'sunny, 21C'));
      expect(second.choices[0]!.message.content).toBe(expectedGeminiText(back));

      // Streamed, the call arrives as one tool_calls delta.
      const stream = await oa.chat.completions.create({ model: 'oa-gem', messages, tools, stream: true });
      let name = '';
      let args = '';
      let finish: string | null = null;
      for await (const c of stream) {
        const d = c.choices[0]?.delta.tool_calls?.[0];
        if (d?.function?.name) name += d.function.name;
        if (d?.function?.arguments) args += d.function.arguments;
        finish = c.choices[0]?.finish_reason ?? finish;
      }
      expect([name, JSON.parse(args), finish]).toEqual([
        'get_weather',
        { city: 'mole', metric: true },
        'tool_calls',
      ]);
    });
  });

  // ── key rules, in Google's error shape ───────────────────────────────────────────────────

  describe('key rules in Google error shape', () => {
    const post = (path: string, headers: Record<string, string> = {}, body?: unknown) =>
      fetch(`${s.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body ?? { contents: [{ parts: [{ text: 'hi' }] }] }),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as Json, headers: r.headers }));

    const expectGoogle = (r: { status: number; body: Json }, status: number, name: string, code: string) => {
      expect(r.status, JSON.stringify(r.body)).toBe(status);
      expect(r.body.error).toMatchObject({ code: status, status: name, message: expect.any(String) });
      expect(r.body.error.details[0]).toMatchObject({ reason: code });
    };

    it('missing and invalid keys (x-goog-api-key and ?key=) → 401 UNAUTHENTICATED', async () => {
      const path = '/v1beta/models/gm-pass:generateContent';
      const missing = await post(path);
      expectGoogle(missing, 401, 'UNAUTHENTICATED', 'missing_api_key');
      expect(missing.body.error.message).toContain('x-goog-api-key');
      expectGoogle(
        await post(path, { 'x-goog-api-key': 'sk-not-a-real-key' }),
        401,
        'UNAUTHENTICATED',
        'invalid_api_key',
      );
      expectGoogle(await post(`${path}?key=sk-not-a-real-key`), 401, 'UNAUTHENTICATED', 'invalid_api_key');
      const bad = new GoogleGenAI({ apiKey: 'AIzaNotAKey', httpOptions: { baseUrl: s.url } });
      const e = await apiError(bad.models.generateContent({ model: 'gm-pass', contents: 'hi' }));
      expect(e.status).toBe(401);
      expect(e.body.error.status).toBe('UNAUTHENTICATED');
      expect(mock.requests).toHaveLength(0);
      // The key works as ?key= too.
      const { secret } = await fresh();
      expect((await post(`${path}?key=${secret}`)).status).toBe(200);
    });

    it('disabled key → 401; IP not allowed → 403 PERMISSION_DENIED', async () => {
      const d = await fresh();
      expect((await s.api('PATCH', `/api/keys/${d.key.id}`, { status: 'disabled' })).status).toBe(200);
      const e1 = await apiError(d.ai.models.generateContent({ model: 'gm-pass', contents: 'hi' }));
      expect(e1.status).toBe(401);
      expect(e1.body.error).toMatchObject({
        status: 'UNAUTHENTICATED',
        details: [{ reason: 'key_disabled' }],
      });
      const ip = await fresh({ allowed_ips: ['10.0.0.0/8'] });
      const e2 = await apiError(
        ip.ai.models.generateContentStream({ model: 'gm-pass', contents: 'hi' }).then((g) => collect(g)),
      );
      expect(e2.status).toBe(403);
      expect(e2.body.error).toMatchObject({
        status: 'PERMISSION_DENIED',
        details: [{ reason: 'ip_not_allowed' }],
      });
      expect(mock.requests).toHaveLength(0);
    });

    it('model not allowed → 403; model not found → 404; insufficient quota → 429', async () => {
      const m = await fresh({ models: ['gm-oai'] });
      const e1 = await apiError(m.ai.models.generateContent({ model: 'gm-pass', contents: 'hi' }));
      expect(e1.status).toBe(403);
      expect(e1.body.error).toMatchObject({
        status: 'PERMISSION_DENIED',
        details: [{ reason: 'model_not_allowed' }],
      });
      const e1c = await apiError(m.ai.models.countTokens({ model: 'gm-pass', contents: 'hi' }));
      expect(e1c.body.error.details[0].reason).toBe('model_not_allowed');
      const f = await fresh();
      const e2 = await apiError(f.ai.models.generateContent({ model: 'no-such-model', contents: 'hi' }));
      expect(e2.status).toBe(404);
      expect(e2.body.error).toMatchObject({ status: 'NOT_FOUND', details: [{ reason: 'model_not_found' }] });
      const q = await fresh({ quota: 0.000001 });
      const e3 = await apiError(q.ai.models.generateContent({ model: 'gm-pass', contents: 'hi' }));
      expect(e3.status).toBe(429);
      expect(e3.body.error).toMatchObject({
        status: 'RESOURCE_EXHAUSTED',
        details: [{ reason: 'insufficient_quota' }],
      });
      expect(mock.requests).toHaveLength(0);
      const rows = await allLogs(s, { key_id: q.key.id });
      expect(rows.map((r) => [r.status, r.error_code, nanoOf(r.cost)])).toEqual([
        [429, 'insufficient_quota', 0n],
      ]);
    });

    it('client mistakes → 400 INVALID_ARGUMENT with the parameter', async () => {
      const { secret } = await fresh();
      const r = await post(
        '/v1beta/models/gm-pass:generateContent',
        { 'x-goog-api-key': secret },
        { contents: 'hi' },
      );
      expectGoogle(r, 400, 'INVALID_ARGUMENT', 'invalid_request');
      expect(r.body.error.details[0].metadata.param).toBe('contents');
      const m = await post('/v1beta/models/gm-pass:embedEverything', { 'x-goog-api-key': secret });
      expect(m.status).toBe(404);
      expect(m.body.error.status).toBe('NOT_FOUND');
      // A literal '%' in the model (sent as %25) is a name like any other: not found, not a 500.
      for (const [headers, status, name] of [
        [{ 'x-goog-api-key': secret }, 404, 'NOT_FOUND'],
        [{}, 401, 'UNAUTHENTICATED'],
      ] as const) {
        const pct = await post('/v1beta/models/x%25E0:generateContent', headers, {
          contents: [{ role: 'user', parts: [{ text: 'hi' }] }],
        });
        expect(pct.status).toBe(status);
        expect(pct.body.error.status).toBe(name);
      }
      const got = await fetch(`${s.url}/v1/models/abc%25E0`, {
        headers: { authorization: `Bearer ${secret}` },
      });
      expect(got.status).toBe(404);
      expect(mock.requests).toHaveLength(0);
    });
  });
});
