// The mock provider speaks OpenAI Responses as the `openai` SDK parses it: the official SDK
// is pointed straight at the mock.
import { countTokens } from 'gpt-tokenizer';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectTextStreamFraming } from '../helpers/responses-wire.js';
import { countResponsesPromptTokens, expectedResponsesText } from './responses.js';
import { DEFAULT_COMPLETION_TOKENS, type MockProvider, type Scenario, startMockProvider } from './server.js';
import { WEATHER_ARGS, WEATHER_SCHEMA } from './weather.js';

const KEY = 'sk-mock-responses-key';
let mock: MockProvider;
let client: OpenAI;

const weather = {
  type: 'function' as const,
  name: 'get_weather',
  description: 'Weather for a city',
  strict: false,
  parameters: WEATHER_SCHEMA,
};
const BASE = { model: 'gpt-mole-5', instructions: 'You are a mole.', input: 'Tell me about tunnels.' };

/** Scenario fields only the protocol mocks read (see README). */
type Extra = Scenario & {
  cacheWriteTokens?: number;
  reasoningTokens?: number;
  errorInBody?: boolean;
  midStreamError?: number;
  spacedJson?: boolean;
};
const scenario = (model: string, s: Extra) => mock.setScenario(model, s as Scenario);

/** A Response's usage: `input` tokens (`cached` read, `written` to the cache), `output` (`reasoning` of them). */
const usage = (input: number, output: number, { cached = 0, written = 0, reasoning = 0 } = {}) => ({
  input_tokens: input,
  input_tokens_details: { cached_tokens: cached, cache_write_tokens: written },
  output_tokens: output,
  output_tokens_details: { reasoning_tokens: reasoning },
  total_tokens: input + output,
});

beforeAll(async () => {
  mock = await startMockProvider({ apiKey: KEY });
  client = new OpenAI({ baseURL: mock.url, apiKey: KEY, maxRetries: 0, timeout: 10_000 });
});
afterAll(async () => {
  await mock.close();
});
beforeEach(() => {
  mock.reset();
});

const post = (body: unknown, headers: Record<string, string> = { authorization: `Bearer ${KEY}` }) =>
  fetch(`${mock.url}/responses`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('responses (mock provider, official SDK)', () => {
  it('answers a plain request with deterministic text and exact usage', async () => {
    const r = await client.responses.create(BASE);
    expect(r.object).toBe('response');
    expect(r.id).toMatch(/^resp_/);
    expect(r.status).toBe('completed');
    expect(r.model).toBe('gpt-mole-5');
    expect(r.instructions).toBe('You are a mole.');
    expect(r.output_text).toBe(expectedResponsesText(BASE));
    expect(countTokens(r.output_text)).toBe(DEFAULT_COMPLETION_TOKENS);
    const prompt = countResponsesPromptTokens(BASE);
    // 3 + system (3 + tok(system) + tok(text)) + user (3 + tok(user) + tok(text))
    expect(prompt).toBe(
      3 +
        3 +
        countTokens('system') +
        countTokens('You are a mole.') +
        3 +
        countTokens('user') +
        countTokens('Tell me about tunnels.'),
    );
    expect(r.usage).toEqual(usage(prompt, 16));
    expect(mock.requests[0]).toMatchObject({ method: 'POST', path: '/v1/responses' });
  });

  it('streams: the stream helper, its events and its final response', async () => {
    const stream = client.responses.stream({ ...BASE, max_output_tokens: 20 });
    const deltas: string[] = [];
    const seqs: number[] = [];
    const types: string[] = [];
    stream.on('response.output_text.delta', (d) => deltas.push(d.delta));
    stream.on('event', (e) => {
      seqs.push(e.sequence_number);
      types.push(e.type);
    });
    const final = await stream.finalResponse();
    expect(deltas).toHaveLength(16);
    for (const d of deltas) expect(countTokens(d)).toBe(1);
    expect(final.output_text).toBe(deltas.join(''));
    expect(final.output_text).toBe(expectedResponsesText(BASE));
    expect(final.status).toBe('completed');
    expect(final.usage?.output_tokens).toBe(16);
    expect(seqs).toEqual(seqs.map((_, i) => i));
    expectTextStreamFraming(types);
  });

  it('create({stream: true}) yields named events; raw frames are event: + data:', async () => {
    const s = await client.responses.create({ ...BASE, stream: true });
    let completed: OpenAI.Responses.Response | undefined;
    for await (const e of s) if (e.type === 'response.completed') completed = e.response;
    expect(completed?.usage?.total_tokens).toBeGreaterThan(16);
    const raw = await (await post({ ...BASE, stream: true })).text();
    expect(raw).toMatch(/^event: response\.created\ndata: \{"type":"response\.created","sequence_number":0,/);
    expect(raw).not.toContain('[DONE]');
  });

  it('tool use: one call of the first tool with required args; text after the tool result', async () => {
    const r = await client.responses.create({ ...BASE, tools: [weather, { ...weather, name: 'other' }] });
    expect(r.output).toHaveLength(1);
    const call = r.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call).toMatchObject({ type: 'function_call', name: 'get_weather', status: 'completed' });
    expect(call.call_id).toMatch(/^call_/);
    expect(JSON.parse(call.arguments)).toEqual(WEATHER_ARGS);
    expect(r.usage?.output_tokens).toBe(countTokens('get_weather') + countTokens(call.arguments));

    const forced = await client.responses.create({
      ...BASE,
      tools: [weather, { ...weather, name: 'other' }],
      tool_choice: { type: 'function', name: 'other' },
    });
    expect((forced.output[0] as OpenAI.Responses.ResponseFunctionToolCall).name).toBe('other');
    const none = await client.responses.create({ ...BASE, tools: [weather], tool_choice: 'none' });
    expect(none.output[0]?.type).toBe('message');

    const input: OpenAI.Responses.ResponseInput = [
      { role: 'user', content: 'Weather?' },
      { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
      { type: 'function_call_output', call_id: call.call_id, output: 'sunny' },
    ];
    const after = await client.responses.create({ model: 'gpt-mole-5', input, tools: [weather] });
    expect(after.output[0]?.type).toBe('message');
    expect(after.output_text).toBe(expectedResponsesText({ input }));

    // Streamed tool call: argument deltas, then the authoritative done item.
    const stream = client.responses.stream({ ...BASE, tools: [weather] });
    const args: string[] = [];
    stream.on('response.function_call_arguments.delta', (d) => args.push(d.delta));
    const final = await stream.finalResponse();
    const fc = final.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
    expect(args.join('')).toBe(fc.arguments);
    expect(args.length).toBe(2);
    expect(fc.name).toBe('get_weather');
  });

  it('usage: cache reads and writes, reasoning tokens in output, output cap → incomplete', async () => {
    scenario('gpt-mole-5', { cachedTokens: 10, cacheWriteTokens: 5, reasoningTokens: 7 });
    const r = await client.responses.create(BASE);
    const prompt = countResponsesPromptTokens(BASE);
    expect(r.output.map((o) => o.type)).toEqual(['reasoning', 'message']);
    expect(r.usage).toEqual(usage(prompt, 23, { cached: 10, written: 5, reasoning: 7 }));
    mock.reset();
    const cut = await client.responses
      .stream({ ...BASE, max_output_tokens: 16, stream: true })
      .finalResponse();
    expect(cut.status).toBe('completed');
    scenario('gpt-mole-5', { completionTokens: 30 });
    const capped = await client.responses.stream({ ...BASE, max_output_tokens: 20 }).finalResponse();
    expect(capped.status).toBe('incomplete');
    expect(capped.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(capped.usage?.output_tokens).toBe(20);
    scenario('gpt-mole-5', { omitUsage: true });
    expect((await client.responses.create(BASE)).usage).toBeNull();
  });

  it('errors: OpenAI bodies for auth, validation, scenarios; 200 failed responses', async () => {
    const noKey = await post(BASE, {});
    expect(noKey.status).toBe(401);
    expect(((await noKey.json()) as { error: { message: string } }).error.message).toMatch(
      /didn't provide an API key/,
    );
    const wrong = new OpenAI({ baseURL: mock.url, apiKey: 'sk-wrong-key-123456', maxRetries: 0 });
    await expect(wrong.responses.create(BASE)).rejects.toMatchObject({
      status: 401,
      code: 'invalid_api_key',
    });

    const bad = async (body: unknown, param: string | null, code: string | null = null) => {
      const res = await post(body);
      expect(res.status).toBe(400);
      const j = (await res.json()) as { error: { type: string; param: string | null; code: string | null } };
      expect(j.error).toMatchObject({ type: 'invalid_request_error', param, code });
    };
    await bad('{nope', null);
    await bad({ input: 'x' }, 'model', 'missing_required_parameter');
    await bad({ model: 'm' }, 'input', 'missing_required_parameter');
    await bad({ model: 'm', input: [{ role: 'robot', content: 'x' }] }, 'input[0].role', 'invalid_value');
    await bad(
      { model: 'm', input: [{ type: 'function_call_output', call_id: 'nope', output: 'x' }] },
      'input',
    );
    await bad(
      { model: 'm', input: 'x', max_output_tokens: 5 },
      'max_output_tokens',
      'integer_below_min_value',
    );
    await bad(
      { model: 'm', input: 'x', previous_response_id: 'resp_x' },
      'previous_response_id',
      'previous_response_not_found',
    );
    expect(mock.requests).toHaveLength(9);

    scenario('gpt-mole-5', { status: 429, times: 1 });
    const limited = await post(BASE);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe('rate_limit_exceeded');
    await expect(client.responses.create(BASE)).resolves.toMatchObject({ status: 'completed' });

    scenario('gpt-mole-5', { status: 500, errorMessage: 'melted', times: 1 });
    await expect(client.responses.create(BASE)).rejects.toMatchObject({
      status: 500,
      message: expect.stringContaining('melted'),
    });

    scenario('gpt-mole-5', { errorInBody: true, times: 1 });
    const failed = await client.responses.create(BASE);
    expect(failed.status).toBe('failed');
    expect(failed.error?.code).toBe('server_error');
  });

  it('stream scenarios: cut, garbage, mid-stream error, delays, spaced JSON', async () => {
    scenario('gpt-mole-5', { cutAfterChunks: 3, times: 1 });
    const cut = client.responses.stream(BASE);
    const got: string[] = [];
    cut.on('response.output_text.delta', (d) => got.push(d.delta));
    await expect(cut.finalResponse()).rejects.toThrow();
    expect(got).toHaveLength(3);

    scenario('gpt-mole-5', { garbageAfterChunks: 2, times: 1 });
    await expect(client.responses.stream(BASE).finalResponse()).rejects.toThrow(/JSON/);

    scenario('gpt-mole-5', { midStreamError: 4, times: 1 });
    const raw = await (await post({ ...BASE, stream: true })).text();
    expect(raw.match(/event: response\.output_text\.delta/g)).toHaveLength(4);
    expect(raw).toMatch(/event: error\ndata: \{"type":"error","sequence_number":\d+,"code":"server_error"/);
    expect(raw).not.toContain('response.completed');

    scenario('gpt-mole-5', { spacedJson: true, chunkDelayMs: 2, firstByteDelayMs: 20, times: 1 });
    const t0 = Date.now();
    const spacedRaw = await (await post({ ...BASE, stream: true })).text();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(20);
    expect(spacedRaw).toContain('data: {"type": "response.created", "sequence_number": 0, ');
    scenario('gpt-mole-5', { spacedJson: true, times: 1 });
    const final = await client.responses.stream(BASE).finalResponse();
    expect(final.output_text).toBe(expectedResponsesText(BASE));

    scenario('gpt-mole-5', { hangMs: 50, times: 1 });
    await expect(client.responses.create(BASE)).rejects.toThrow();
  });
});
