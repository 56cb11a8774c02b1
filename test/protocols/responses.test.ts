// OpenAI Responses through the real gateway (contract §6), with the official `openai` SDK's
// `responses` API, on SQLite and PostgreSQL, against the mock provider:
// - pass-through to an `openai` channel that speaks Responses (body, headers and 4xx bytes
//   as sent; usage with cache reads/writes and reasoning; mid-stream failures);
// - translation to an OpenAI-chat channel (`responses: false`) and to an Anthropic channel;
// - the key rules in the contract's check order, in OpenAI's error shape;
// - the exact cost of every log row.
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, jsonSchema, stepCountIs, streamText, tool } from 'ai';
import OpenAI from 'openai';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { backends, type TestServer, userWithKey } from '../helpers/server.js';
import { CODEX_TURN_SETTINGS } from '../helpers/codex.js';
import { gatewayWithChannels, priceEach } from '../helpers/gateway-channels.js';
import { expectTextStreamFraming, responsesUsage } from '../helpers/responses-wire.js';
import { WEATHER_TOOL } from '../helpers/weather-tool.js';
import { countResponsesPromptTokens, expectedResponsesText } from '../mock-provider/responses.js';
import {
  countChatPromptTokens,
  expectedChatCompletion,
  type MockProvider,
  type Scenario,
} from '../mock-provider/server.js';
import { logByRequestId, nanoOf, client as openaiClient, rawRelay, uniq } from '../relay/relay-helpers.js';

const UPSTREAM_KEY = 'sk-upstream-responses-secret';
const DEFAULT_CAP = 4096;
/** Prices (USD per 1M tokens) of every model here. */
const PRICE = { input: 2, output: 8, cached_input: 0.5, cache_write: 2.5 };

/** Expected cost (nano-USD), computed independently: ceil(Σ tokens × nano-per-1M / 1e6). */
function costNano(u: { prompt: number; cached: number; written: number; completion: number }): bigint {
  const nano = (usd: number) => BigInt(Math.round(usd * 1e9));
  const uncached = BigInt(u.prompt - u.cached - u.written);
  const num =
    uncached * nano(PRICE.input) +
    BigInt(u.cached) * nano(PRICE.cached_input) +
    BigInt(u.written) * nano(PRICE.cache_write) +
    BigInt(u.completion) * nano(PRICE.output);
  return (num + 999_999n) / 1_000_000n;
}

type Counts = { prompt: number; cached: number; written: number; completion: number; reasoning: number };

/** A log row of a Responses request: these counts, and their exact cost. */
function expectBilled(row: { cost: number }, u: Counts): void {
  expect(row).toMatchObject({
    protocol: 'responses',
    prompt_tokens: u.prompt,
    cached_tokens: u.cached,
    cache_write_tokens: u.written,
    completion_tokens: u.completion,
    reasoning_tokens: u.reasoning,
  });
  expect(nanoOf(row.cost)).toBe(costNano(u));
}

type Extra = Scenario & {
  cacheWriteTokens?: number;
  reasoningTokens?: number;
  midStreamError?: number;
  failedEvent?: boolean;
};

/**
 * Reads a Responses stream to its end: every event's type, and the response.failed answer if
 * one came; and checks that the stream is one response, its events numbered 0, 1, 2, ….
 */
async function drain(stream: AsyncIterable<OpenAI.Responses.ResponseStreamEvent>) {
  const types: string[] = [];
  const numbers: number[] = [];
  const ids = new Set<string>();
  let failed: OpenAI.Responses.Response | undefined;
  for await (const e of stream) {
    types.push(e.type);
    numbers.push(e.sequence_number);
    if ('response' in e) ids.add(e.response.id);
    if (e.type === 'response.failed') failed = e.response;
  }
  expect(numbers).toEqual(numbers.map((_, i) => i));
  expect(ids.size).toBe(1);
  return { types, failed };
}

const weather = { type: 'function' as const, ...WEATHER_TOOL, strict: false };
/** `weather` as a chat channel receives it, translated to a chat function tool. */
const WEATHER_AS_CHAT_TOOL = { type: 'function', function: WEATHER_TOOL };
/** `weather` as a Vercel AI SDK tool that answers a clear sky. */
const weatherTool = () =>
  tool({
    description: WEATHER_TOOL.description,
    inputSchema: jsonSchema<{ city: string; days: number }>(WEATHER_TOOL.parameters),
    execute: async () => ({ sky: 'clear' }),
  });

describe.each(backends())('OpenAI Responses through the gateway (%s)', (backend) => {
  let s: TestServer;
  let mock: MockProvider;
  let client: OpenAI;
  let keyId: number;
  let secret: string;

  gatewayWithChannels(
    { backend },
    {
      apiKey: UPSTREAM_KEY,
      channels: [
        // An OpenAI channel that speaks Responses (the default) → pass-through.
        {
          type: 'openai',
          models: ['gpt-pass', 'gpt-alias'],
          model_map: { 'gpt-alias': 'gpt-pass-upstream' },
        },
        // An OpenAI channel that only speaks chat → Responses is translated.
        { type: 'openai', models: ['gpt-chat'], responses: false },
        { type: 'anthropic', models: ['claude-mole'] },
        // One model on two channels: Responses first (priority), a chat-only one behind it.
        { type: 'openai', models: ['gpt-mix'], model_map: { 'gpt-mix': 'gpt-mix-a' }, priority: 10 },
        { type: 'openai', models: ['gpt-mix'], model_map: { 'gpt-mix': 'gpt-mix-b' }, responses: false },
        // One model on two channels: chat-only first (priority), a Responses one behind it.
        { type: 'openai', models: ['gpt-prev'], responses: false, priority: 10 },
        { type: 'openai', models: ['gpt-prev'] },
        // The built-in offline channel answers Responses too (the README walk-through).
        { type: 'mock', models: ['mock-mole'] },
      ],
      prices: priceEach(
        ['gpt-pass', 'gpt-alias', 'gpt-chat', 'claude-mole', 'gpt-other', 'mock-mole', 'gpt-mix', 'gpt-prev'],
        PRICE,
      ),
    },
    (g) => {
      ({ s, mock } = g);
    },
  );
  beforeAll(async () => {
    const u = await userWithKey(s, { balance: 100 });
    keyId = u.key.id;
    secret = u.secret;
    client = openaiClient(s, secret);
  });
  beforeEach(() => mock.reset());

  const lastUpstream = () => mock.requests[mock.requests.length - 1]!;
  const logOf = (requestId: string | null) => logByRequestId(s, keyId, requestId!);
  /** The key's newest log row (a stream helper does not show the response headers). */
  const latestLog = async () => (await s.api('GET', `/api/logs?key_id=${keyId}&limit=1`)).body.data[0];

  describe('pass-through (openai channel speaking Responses)', () => {
    it('plain: text, usage, exact cost on the log row', async () => {
      const params = { model: 'gpt-pass', instructions: 'You are a mole.', input: 'Where do moles live?' };
      const { data, response } = await client.responses.create(params).withResponse();
      const sent = lastUpstream();
      expect(sent.path).toBe('/v1/responses');
      expect(sent.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
      expect(sent.body).toEqual({ ...params, max_output_tokens: DEFAULT_CAP });
      const prompt = countResponsesPromptTokens(params);
      expect(data.output_text).toBe(expectedResponsesText(params));
      expect(data.status).toBe('completed');
      expect(data.usage).toMatchObject({ input_tokens: prompt, output_tokens: 16 });
      const row = await logOf(response.headers.get('x-request-id'));
      expect(row).toMatchObject({ endpoint: '/v1/responses', status: 200, stream: false, estimated: false });
      expectBilled(row, { prompt, cached: 0, written: 0, completion: 16, reasoning: 0 });
    });

    it('streaming: the stream helper and its final response; cache reads/writes and reasoning billed', async () => {
      mock.setScenario('gpt-pass', { cachedTokens: 6, cacheWriteTokens: 4, reasoningTokens: 5 } as Extra);
      const params = { model: 'gpt-pass', input: 'Stream me a tunnel.', max_output_tokens: 64 };
      const stream = client.responses.stream(params);
      const deltas: string[] = [];
      stream.on('response.output_text.delta', (d) => deltas.push(d.delta));
      const final = await stream.finalResponse();
      const prompt = countResponsesPromptTokens(params);
      expect(deltas).toHaveLength(16);
      expect(final.output_text).toBe(expectedResponsesText(params));
      const counts = { prompt, cached: 6, written: 4, completion: 21, reasoning: 5 };
      expect(final.usage).toEqual(responsesUsage(counts));
      expect(lastUpstream().body).toEqual({ ...params, stream: true });
      const row = await latestLog();
      expect(row.stream).toBe(true);
      expectBilled(row, counts);
    });

    it('a body whose model goes unchanged goes byte for byte, an implied cap appended; otherwise it is rebuilt', async () => {
      // Spacing and key order JSON.stringify would not keep.
      const sent = '{ "input" : "raw \\"bytes\\"",\n "max_output_tokens": 16, "model":"gpt-pass" }';
      expect((await rawRelay(s, '/responses', { key: secret, body: sent })).status).toBe(200);
      expect(lastUpstream().rawBody).toBe(sent);
      // No cap of its own: the one admission assumed is appended (Codex sends none). A mapped
      // model: rebuilt with the upstream's name.
      const capless = '{ "input": "hi", "model": "gpt-pass" }';
      expect((await rawRelay(s, '/responses', { key: secret, body: capless })).status).toBe(200);
      expect(lastUpstream().rawBody).toBe(
        `{ "input": "hi", "model": "gpt-pass" ,"max_output_tokens":${DEFAULT_CAP}}`,
      );
      const alias = sent.replace('gpt-pass', 'gpt-alias');
      expect((await rawRelay(s, '/responses', { key: secret, body: alias })).status).toBe(200);
      expect(lastUpstream().body).toEqual({ ...JSON.parse(alias), model: 'gpt-pass-upstream' });
      // A repeated key is never forwarded as sent.
      const twice = `{"max_output_tokens":100000,${sent.slice(1)}`;
      expect((await rawRelay(s, '/responses', { key: secret, body: twice })).status).toBe(200);
      expect(lastUpstream().rawBody).toBe(JSON.stringify(JSON.parse(twice)));
    });

    it('tool use round trip: a function_call, then text after the function_call_output', async () => {
      const first = await client.responses.create({
        model: 'gpt-pass',
        input: 'Weather in Paris?',
        tools: [weather],
      });
      const call = first.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
      expect(call).toMatchObject({ type: 'function_call', name: 'get_weather' });
      expect(JSON.parse(call.arguments)).toEqual({ city: 'mole', days: 1 });
      const input: OpenAI.Responses.ResponseInput = [
        { role: 'user', content: 'Weather in Paris?' },
        { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
        { type: 'function_call_output', call_id: call.call_id, output: '{"sky":"clear"}' },
      ];
      const stream = client.responses.stream({ model: 'gpt-pass', input, tools: [weather] });
      const second = await stream.finalResponse();
      expect(second.output_text).toBe(expectedResponsesText({ input }));
    });

    it('fidelity: unknown fields and OpenAI/Codex headers reach the upstream verbatim; model mapped', async () => {
      const body = {
        model: 'gpt-alias',
        input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] }],
        store: false,
        include: ['reasoning.encrypted_content'],
        prompt_cache_key: 'thread-42',
        reasoning: { effort: 'low', summary: 'auto' },
        text: { verbosity: 'low' },
        client_metadata: { nested: [1, { two: true }] },
        future_field_2027: 'kept',
        max_output_tokens: 100,
      };
      const res = await rawRelay(s, '/responses', {
        key: secret,
        body: JSON.stringify(body),
        headers: {
          'openai-beta': 'responses=experimental',
          originator: 'codex_cli_rs',
          session_id: 'sess-1',
        },
      });
      expect(res.status, res.text).toBe(200);
      const sent = lastUpstream();
      expect(sent.body).toEqual({ ...body, model: 'gpt-pass-upstream' });
      expect(sent.headers).toMatchObject({
        'openai-beta': 'responses=experimental',
        originator: 'codex_cli_rs',
        session_id: 'sess-1',
        authorization: `Bearer ${UPSTREAM_KEY}`,
      });
      expect(res.json.model).toBe('gpt-pass-upstream');
    });

    it('an upstream 4xx error body reaches the client byte for byte', async () => {
      const body = JSON.stringify({ model: 'gpt-pass', input: 'again', previous_response_id: 'resp_gone' });
      const direct = await fetch(`${mock.url}/responses`, {
        method: 'POST',
        headers: { authorization: `Bearer ${UPSTREAM_KEY}`, 'content-type': 'application/json' },
        body: body.replace('gpt-pass', 'gpt-pass'),
      });
      const expected = await direct.text();
      expect(direct.status).toBe(400);
      const res = await rawRelay(s, '/responses', { key: secret, body });
      expect(res.status).toBe(400);
      expect(res.text).toBe(expected);
      const err = await client.responses
        .create({ model: 'gpt-pass', input: 'again', previous_response_id: 'resp_gone' })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err).toMatchObject({ code: 'previous_response_not_found', param: 'previous_response_id' });
    });

    it('a stream cut after it began ends with response.failed; the cut is billed as estimated', async () => {
      mock.setScenario('gpt-pass', { cutAfterChunks: 3, times: 1 });
      const { data: stream, response } = await client.responses
        .create({ model: 'gpt-pass', input: 'cut me', stream: true })
        .withResponse();
      const { types, failed } = await drain(stream);
      expect(types.filter((t) => t === 'response.output_text.delta')).toHaveLength(3);
      expect(types.at(-1)).toBe('response.failed');
      expect(failed?.error?.message).toMatch(/upstream/i);
      const row = await logOf(response.headers.get('x-request-id'));
      expect(row).toMatchObject({
        status: 200,
        error_code: 'upstream_error',
        estimated: true,
        completion_tokens: 3,
      });
    });
  });

  it('pass-through: an upstream error event mid-stream ends the stream with response.failed', async () => {
    mock.setScenario('gpt-pass', {
      midStreamError: 2,
      chunkDelayMs: 5,
      errorMessage: 'overheated mole',
      times: 1,
    } as Extra);
    const stream = await client.responses.create({ model: 'gpt-pass', input: 'err', stream: true });
    const { types, failed } = await drain(stream);
    expect(types.filter((t) => t === 'response.output_text.delta')).toHaveLength(2);
    expect(types).not.toContain('error');
    expect(types.at(-1)).toBe('response.failed');
    expect(failed?.error).toMatchObject({
      code: 'server_error',
      message: expect.stringContaining('overheated mole'),
    });
    const row = await latestLog();
    expect(row).toMatchObject({ error_code: 'upstream_error', estimated: true, completion_tokens: 2 });
  });

  it('pass-through: the upstream’s own error code and message reach the client; its usage is billed', async () => {
    const message =
      'Your input exceeds the context window of this model. Please adjust your input and try again.';
    for (const failedEvent of [false, true]) {
      mock.setScenario('gpt-pass', {
        midStreamError: 2,
        chunkDelayMs: 5,
        errorCode: 'context_length_exceeded',
        errorMessage: message,
        failedEvent,
        times: 1,
      } as Extra);
      const stream = await client.responses.create({ model: 'gpt-pass', input: 'err', stream: true });
      const { types, failed } = await drain(stream);
      expect(types.at(-1)).toBe('response.failed');
      expect(failed?.error).toEqual({ code: 'context_length_exceeded', message });
      const row = await latestLog();
      expect(row.error_code).toBe('upstream_error');
      // A response.failed carries the upstream's count; an error event none (counted here).
      expect(row.estimated).toBe(!failedEvent);
      expect(row.completion_tokens).toBe(2);
    }
  });

  describe('translation to an OpenAI-chat channel (responses: false)', () => {
    it('plain: instructions, input and tools become chat; the chat answer becomes a Response', async () => {
      mock.setScenario('gpt-chat', { cachedTokens: 5 });
      const params = {
        model: 'gpt-chat',
        instructions: 'Be brief.',
        input: [
          { role: 'developer' as const, content: 'Answer in English.' },
          {
            role: 'user' as const,
            content: [
              { type: 'input_text' as const, text: 'What is this?' },
              {
                type: 'input_image' as const,
                image_url: 'data:image/png;base64,iVBORw0KGgo=',
                detail: 'low' as const,
              },
            ],
          },
        ],
        temperature: 0.2,
        max_output_tokens: 50,
      };
      const { data, response } = await client.responses.create(params).withResponse();
      const sent = lastUpstream();
      expect(sent.path).toBe('/v1/chat/completions');
      const chat = sent.body as { messages: unknown[] };
      expect(chat).toEqual({
        model: 'gpt-chat',
        messages: [
          { role: 'system', content: 'Be brief.\n\nAnswer in English.' },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is this?' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' } },
            ],
          },
        ],
        max_completion_tokens: 50,
        temperature: 0.2,
      });
      const prompt = countChatPromptTokens(chat.messages);
      expect(data.object).toBe('response');
      expect(data.status).toBe('completed');
      expect(data.output_text).toBe(expectedChatCompletion(chat.messages));
      const counts = { prompt, cached: 5, written: 0, completion: 16, reasoning: 0 };
      expect(data.usage).toEqual(responsesUsage(counts));
      expectBilled(await logOf(response.headers.get('x-request-id')), counts);
    });

    it('streaming: the chat stream becomes the Responses event sequence the SDK accumulates', async () => {
      const params = { model: 'gpt-chat', input: 'Stream through chat.' };
      const stream = client.responses.stream(params);
      const types: string[] = [];
      stream.on('event', (e) => types.push(e.type));
      const final = await stream.finalResponse();
      const chat = lastUpstream().body as {
        messages: unknown[];
        stream_options: unknown;
        max_completion_tokens: number;
      };
      expect(chat.stream_options).toEqual({ include_usage: true });
      expect(chat.max_completion_tokens).toBe(DEFAULT_CAP);
      expect(final.output_text).toBe(expectedChatCompletion(chat.messages));
      expect(final.status).toBe('completed');
      expect(final.usage?.input_tokens).toBe(countChatPromptTokens(chat.messages));
      expect(final.usage?.output_tokens).toBe(16);
      expectTextStreamFraming(types);
      expect(types.filter((t) => t === 'response.output_text.delta')).toHaveLength(16);
    });

    it('tool round trip: calls and results become chat tool_calls and tool messages', async () => {
      const input: OpenAI.Responses.ResponseInput = [
        { role: 'user', content: 'Weather in Paris?' },
        {
          type: 'function_call',
          call_id: 'call_7',
          name: 'get_weather',
          arguments: '{"city":"Paris","days":1}',
        },
        { type: 'function_call_output', call_id: 'call_7', output: '{"sky":"clear"}' },
      ];
      const res = await client.responses.create({
        model: 'gpt-chat',
        input,
        tools: [weather, { type: 'web_search' }],
        tool_choice: 'auto',
      });
      const chat = lastUpstream().body as Record<string, unknown> & { messages: unknown[] };
      expect(chat.messages).toEqual([
        { role: 'user', content: 'Weather in Paris?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            {
              id: 'call_7',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris","days":1}' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 'call_7', content: '{"sky":"clear"}' },
      ]);
      // Hosted tools (web_search) run only at OpenAI: left out when translating.
      expect(chat.tools).toEqual([WEATHER_AS_CHAT_TOOL]);
      expect(chat.tool_choice).toBe('auto');
      expect(res.output_text).toBe(expectedChatCompletion(chat.messages));
    });

    it('a Codex turn (stream, store: false, reasoning and hosted tools in it) as Codex parses it', async () => {
      const body = {
        model: 'gpt-chat',
        instructions: 'You are Codex.',
        input: [
          { type: 'message', role: 'developer', content: [{ type: 'input_text', text: '<permissions/>' }] },
          { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'List the files.' }] },
          { type: 'reasoning', id: 'rs_1', summary: [], content: null, encrypted_content: 'gAAAA' },
          { type: 'function_call', name: 'shell', arguments: '{"command":["ls"]}', call_id: 'call_1' },
          { type: 'function_call_output', call_id: 'call_1', output: 'README.md' },
        ],
        tools: [
          {
            type: 'function',
            name: 'shell',
            description: 'Runs a command',
            strict: false,
            parameters: { type: 'object', properties: { command: { type: 'array' } }, required: ['command'] },
          },
          { type: 'web_search', external_web_access: false },
        ],
        ...CODEX_TURN_SETTINGS,
        text: { verbosity: 'medium' },
      };
      const res = await rawRelay(s, '/responses', {
        key: secret,
        body: JSON.stringify(body),
        headers: { accept: 'text/event-stream', originator: 'codex_cli_rs', session_id: 's-1' },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const frames = res.text
        .split('\n\n')
        .filter(Boolean)
        .map((f) => {
          const [ev, data] = f.split('\n');
          return { event: ev!.replace(/^event: /, ''), json: JSON.parse(data!.replace(/^data: /, '')) };
        });
      frames.forEach((f, i) => {
        expect(f.json.type).toBe(f.event);
        expect(f.json.sequence_number).toBe(i);
      });
      // What Codex reads: the done items, and response.completed with its id and usage.
      const done = frames.filter((f) => f.event === 'response.output_item.done').map((f) => f.json.item);
      expect(done).toEqual([expect.objectContaining({ type: 'message', role: 'assistant' })]);
      expect(done[0].content[0].type).toBe('output_text');
      const last = frames.at(-1)!;
      expect(last.event).toBe('response.completed');
      const u = last.json.response.usage;
      expect(typeof last.json.response.id).toBe('string');
      for (const n of [
        u.input_tokens,
        u.input_tokens_details.cached_tokens,
        u.output_tokens,
        u.output_tokens_details.reasoning_tokens,
        u.total_tokens,
      ])
        expect(Number.isInteger(n)).toBe(true);
      expect(u.total_tokens).toBe(u.input_tokens + u.output_tokens);
      const chat = lastUpstream().body as { messages: { role: string }[]; tools: unknown[] };
      expect(chat.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool']);
      expect(chat.tools).toHaveLength(1);
    });

    it('chat tool_calls come back as function_call items, plain and streamed', async () => {
      const params = { model: 'gpt-chat', input: 'Weather in Paris?', tools: [weather] };
      const plain = await client.responses.create(params);
      const chat = lastUpstream().body as Record<string, unknown>;
      expect(chat.tools).toEqual([WEATHER_AS_CHAT_TOOL]);
      expect(plain.status).toBe('completed');
      expect(plain.output).toHaveLength(1);
      const call = plain.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
      expect(call).toMatchObject({ type: 'function_call', name: 'get_weather', status: 'completed' });
      expect(call.call_id).toMatch(/^call_/);
      expect(JSON.parse(call.arguments)).toEqual({ city: 'mole', days: 1 });

      const stream = client.responses.stream(params);
      const args: string[] = [];
      stream.on('response.function_call_arguments.delta', (d) => args.push(d.delta));
      const final = await stream.finalResponse();
      const streamed = final.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
      expect(streamed).toMatchObject({ type: 'function_call', name: 'get_weather', status: 'completed' });
      expect(args.join('')).toBe(streamed.arguments);
      expect(JSON.parse(streamed.arguments)).toEqual({ city: 'mole', days: 1 });
      expect(final.usage?.output_tokens).toBeGreaterThan(0);
    });

    it('the AI SDK tool loop on the translated channel', async () => {
      const moleapi = createOpenAI({ baseURL: `${s.url}/v1`, apiKey: secret });
      const r = await generateText({
        model: moleapi('gpt-chat'),
        prompt: 'Weather in Paris?',
        tools: {
          get_weather: weatherTool(),
        },
        stopWhen: stepCountIs(3),
        maxRetries: 0,
      });
      expect(r.steps).toHaveLength(2);
      expect(r.steps[0]!.toolCalls[0]).toMatchObject({
        toolName: 'get_weather',
        input: { city: 'mole', days: 1 },
      });
      const chat = lastUpstream().body as { messages: { role: string }[] };
      expect(chat.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool']);
      expect(r.text).toBe(expectedChatCompletion(chat.messages));
    });

    it('what only OpenAI can honour goes to a channel that takes it as sent, past one that cannot', async () => {
      const r = await rawRelay(s, '/responses', {
        key: secret,
        body: JSON.stringify({ model: 'gpt-prev', input: 'again', previous_response_id: 'resp_gone' }),
      });
      // The chat channel (tried first) is passed over; the Responses one answers as OpenAI would.
      expect(mock.requests.map((q) => q.path)).toEqual(['/v1/responses']);
      expect(lastUpstream().body).toMatchObject({ previous_response_id: 'resp_gone' });
      expect(r.status).toBe(400);
      expect(r.json.error.code).toBe('previous_response_not_found');
      const row = await logOf(r.headers.get('x-request-id'));
      expect(row.attempts.map((a) => a.status)).toEqual([400]);
    });

    it('what only OpenAI can honour is refused in OpenAI shape, nothing forwarded, nothing billed', async () => {
      const r1 = await rawRelay(s, '/responses', {
        key: secret,
        body: JSON.stringify({ model: 'gpt-chat', input: 'x', previous_response_id: 'resp_1' }),
      });
      expect(r1.status).toBe(400);
      expect(r1.json.error).toMatchObject({
        type: 'invalid_request_error',
        code: 'invalid_request',
        param: 'previous_response_id',
      });
      expect(r1.json.error.message).toMatch(/store/);
      const r2 = await rawRelay(s, '/responses', {
        key: secret,
        body: JSON.stringify({
          model: 'gpt-chat',
          input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file-1' }] }],
        }),
      });
      expect(r2.status).toBe(400);
      expect(r2.json.error.param).toBe('input[0].content[0]');
      expect(mock.requests).toHaveLength(0);
      const row = await logOf(r1.headers.get('x-request-id'));
      expect(row).toMatchObject({ status: 400, error_code: 'invalid_request', cost: 0 });
    });

    it('a translated stream cut after it began ends with response.failed', async () => {
      mock.setScenario('gpt-chat', { cutAfterChunks: 2, times: 1 });
      const stream = await client.responses.create({ model: 'gpt-chat', input: 'cut', stream: true });
      const types: string[] = [];
      for await (const e of stream) types.push(e.type);
      expect(types.filter((t) => t === 'response.output_text.delta')).toHaveLength(2);
      expect(types.at(-1)).toBe('response.failed');
    });
  });

  it('fails over from a Responses channel to a chat channel: passed through, then translated', async () => {
    mock.setScenario('gpt-mix-a', { status: 503, times: 1 });
    const { data, response } = await client.responses
      .create({ model: 'gpt-mix', input: 'Either way.' })
      .withResponse();
    expect(mock.requests.map((r) => [r.path, (r.body as { model: string }).model])).toEqual([
      ['/v1/responses', 'gpt-mix-a'],
      ['/v1/chat/completions', 'gpt-mix-b'],
    ]);
    const chat = lastUpstream().body as { messages: unknown[] };
    expect(data.output_text).toBe(expectedChatCompletion(chat.messages));
    expect(data.model).toBe('gpt-mix');
    const row = await logOf(response.headers.get('x-request-id'));
    expect(row).toMatchObject({ status: 200, upstream_model: 'gpt-mix-b', protocol: 'responses' });
    expect(
      (row as unknown as { attempts: { status: number | null }[] }).attempts.map((a) => a.status),
    ).toEqual([503, 200]);
  });

  describe('translation to an Anthropic channel', () => {
    it('plain and streaming: text, usage in Responses terms, cost', async () => {
      mock.setScenario('claude-mole', { cachedTokens: 3, cacheWriteTokens: 2 } as Extra);
      const params = { model: 'claude-mole', instructions: 'Be a mole.', input: 'Hello from Codex.' };
      const { data, response } = await client.responses.create(params).withResponse();
      const sent = lastUpstream();
      expect(sent.path.split('?')[0]).toBe('/v1/messages');
      expect(sent.headers['x-api-key']).toBe(UPSTREAM_KEY);
      expect(sent.body).toMatchObject({
        model: 'claude-mole',
        system: expect.anything(),
        max_tokens: DEFAULT_CAP,
        messages: [{ role: 'user' }],
      });
      expect(data.status).toBe('completed');
      expect(data.output_text.length).toBeGreaterThan(0);
      const u = data.usage!;
      expect(u.input_tokens_details).toEqual({ cached_tokens: 3, cache_write_tokens: 2 });
      expect(u.output_tokens).toBe(16);
      const row = await logOf(response.headers.get('x-request-id'));
      expectBilled(row, { prompt: u.input_tokens, cached: 3, written: 2, completion: 16, reasoning: 0 });

      const final = await client.responses.stream(params).finalResponse();
      expect(final.output_text).toBe(data.output_text);
      expect(final.usage).toEqual(data.usage);
    });

    it('thinking streams as a reasoning item before the message', async () => {
      mock.setScenario('claude-mole', { reasoningTokens: 4, times: 2 } as Extra);
      const stream = client.responses.stream({ model: 'claude-mole', input: 'Think first.' });
      const reasoning: string[] = [];
      stream.on('response.reasoning_text.delta', (d) => reasoning.push(d.delta));
      const final = await stream.finalResponse();
      expect(final.output.map((o) => o.type)).toEqual(['reasoning', 'message']);
      expect(reasoning).toHaveLength(4);
      expect(final.output_text.length).toBeGreaterThan(0);
      expect(final.usage?.output_tokens).toBe(20);
      expect(final.usage?.output_tokens_details.reasoning_tokens).toBe(4);
      const plain = await client.responses.create({ model: 'claude-mole', input: 'Think first.' });
      expect(plain.output.map((o) => o.type)).toEqual(['reasoning', 'message']);
      expect(plain.output_text).toBe(final.output_text);
    });

    it('tool round trip: tool_use becomes a function_call, the output a tool_result', async () => {
      const first = await client.responses.create({
        model: 'claude-mole',
        input: 'Weather?',
        tools: [weather],
        // Codex's setting: one call an answer, which Claude is told on its tool choice.
        parallel_tool_calls: false,
      });
      expect((lastUpstream().body as { tool_choice: unknown }).tool_choice).toEqual({
        type: 'auto',
        disable_parallel_tool_use: true,
      });
      const call = first.output.find(
        (o) => o.type === 'function_call',
      ) as OpenAI.Responses.ResponseFunctionToolCall;
      expect(call).toMatchObject({ name: 'get_weather' });
      expect(call.call_id).toMatch(/^toolu_/);
      expect(JSON.parse(call.arguments)).toEqual({ city: 'mole', days: 1 });
      const stream = client.responses.stream({
        model: 'claude-mole',
        tools: [weather],
        input: [
          { role: 'user', content: 'Weather?' },
          { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
          { type: 'function_call_output', call_id: call.call_id, output: 'sunny' },
        ],
      });
      const second = await stream.finalResponse();
      expect(second.output_text.length).toBeGreaterThan(0);
      const body = lastUpstream().body as { messages: { role: string; content: unknown }[] };
      expect(body.messages.at(-1)).toMatchObject({
        role: 'user',
        content: [expect.objectContaining({ type: 'tool_result', tool_use_id: call.call_id })],
      });
    });
  });

  it('the offline mock channel answers Responses: plain, stream helper, tool call', async () => {
    const plain = await client.responses.create({ model: 'mock-mole', input: 'hello' });
    expect(plain.status).toBe('completed');
    expect(plain.output_text.length).toBeGreaterThan(0);
    expect(plain.usage?.output_tokens).toBeGreaterThan(0);
    const final = await client.responses.stream({ model: 'mock-mole', input: 'hello' }).finalResponse();
    expect(final.output_text).toBe(plain.output_text);
    expect(final.usage).toEqual(plain.usage);
    const tool = await client.responses
      .stream({ model: 'mock-mole', input: 'weather?', tools: [weather] })
      .finalResponse();
    expect(tool.output[0]).toMatchObject({ type: 'function_call', name: 'get_weather' });
    expect(JSON.parse((tool.output[0] as OpenAI.Responses.ResponseFunctionToolCall).arguments)).toEqual({
      city: 'mole',
      days: 1,
    });
    const row = await latestLog();
    expect(row).toMatchObject({ protocol: 'responses', stream: true, model: 'mock-mole' });
  });

  describe('the Vercel AI SDK (its default openai(model) speaks Responses)', () => {
    const provider = () => createOpenAI({ baseURL: `${s.url}/v1`, apiKey: secret });

    it('generateText on a Responses channel, streamText translated to chat', async () => {
      const moleapi = provider();
      const plain = await generateText({
        model: moleapi('gpt-pass'),
        system: 'Be brief.',
        prompt: 'Hi there.',
        maxRetries: 0,
      });
      const sent = lastUpstream();
      expect(sent.path).toBe('/v1/responses');
      expect(plain.text).toBe(expectedResponsesText(sent.body as Record<string, unknown>));
      expect(plain.finishReason).toBe('stop');
      expect(plain.usage.inputTokens).toBe(countResponsesPromptTokens(sent.body as Record<string, unknown>));
      expect(plain.usage.outputTokens).toBe(16);

      const streamed = streamText({ model: moleapi('gpt-chat'), prompt: 'Stream, please.', maxRetries: 0 });
      let text = '';
      for await (const t of streamed.textStream) text += t;
      const chat = lastUpstream().body as { messages: unknown[] };
      expect(lastUpstream().path).toBe('/v1/chat/completions');
      expect(text).toBe(expectedChatCompletion(chat.messages));
      expect(await streamed.finishReason).toBe('stop');
      expect((await streamed.usage).outputTokens).toBe(16);
    });

    it('configured by environment alone (OPENAI_BASE_URL, OPENAI_API_KEY), as the default provider is', async () => {
      const saved = { base: process.env.OPENAI_BASE_URL, key: process.env.OPENAI_API_KEY };
      process.env.OPENAI_BASE_URL = `${s.url}/v1`;
      process.env.OPENAI_API_KEY = secret;
      try {
        const openai = createOpenAI();
        const r = await generateText({
          model: openai('gpt-pass'),
          prompt: 'From the environment.',
          maxRetries: 0,
        });
        expect(r.text).toBe(expectedResponsesText(lastUpstream().body as Record<string, unknown>));
      } finally {
        for (const [k, v] of [
          ['OPENAI_BASE_URL', saved.base],
          ['OPENAI_API_KEY', saved.key],
        ] as const)
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
      }
    });

    it('a tool loop (call, execute, answer) with the SDK tools', async () => {
      const moleapi = provider();
      const r = await generateText({
        model: moleapi('gpt-pass'),
        prompt: 'Weather in Paris?',
        tools: { get_weather: weatherTool() },
        stopWhen: stepCountIs(3),
        maxRetries: 0,
      });
      expect(r.steps).toHaveLength(2);
      expect(r.steps[0]!.toolCalls).toEqual([
        expect.objectContaining({ toolName: 'get_weather', input: { city: 'mole', days: 1 } }),
      ]);
      const second = lastUpstream().body as { input: { type?: string }[] };
      expect(second.input.map((i) => i.type ?? 'message')).toEqual([
        'message',
        'function_call',
        'function_call_output',
      ]);
      expect(r.text).toBe(expectedResponsesText(second as Record<string, unknown>));
    });

    it('multi-turn on a translated channel needs store: false (else a clear 400)', async () => {
      const moleapi = provider();
      const first = await generateText({ model: moleapi('gpt-chat'), prompt: 'Hello.', maxRetries: 0 });
      const messages = [
        { role: 'user' as const, content: 'Hello.' },
        ...first.response.messages,
        { role: 'user' as const, content: 'And then?' },
      ];
      // The SDK refers to the stored answer by id (item_reference): nothing is stored here.
      const err = await generateText({ model: moleapi('gpt-chat'), messages, maxRetries: 0 }).catch(
        (e: unknown) => e,
      );
      expect(String((err as Error).message)).toMatch(/store/);
      const ok = await generateText({
        model: moleapi('gpt-chat'),
        messages,
        providerOptions: { openai: { store: false } },
        maxRetries: 0,
      });
      const chat = lastUpstream().body as { messages: { role: string; content: unknown }[] };
      expect(chat.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
      expect(chat.messages[1]!.content).toBe(first.text);
      expect(ok.text).toBe(expectedChatCompletion(chat.messages));
    });
  });

  describe('key rules, in order, in OpenAI shape', () => {
    const expectRefusal = (
      res: { status: number; json: { error: Record<string, unknown> } },
      status: number,
      code: string,
      type: string,
    ) => {
      expect(res.status).toBe(status);
      expect(res.json.error).toMatchObject({ code, type });
      expect(typeof res.json.error.message).toBe('string');
      expect('param' in res.json.error).toBe(true);
    };
    const body = (model = 'gpt-pass') => JSON.stringify({ model, input: 'hi' });

    it('missing, invalid, disabled key; IP; model_not_allowed; model_not_found; insufficient_quota', async () => {
      expectRefusal(
        await rawRelay(s, '/responses', { body: body() }),
        401,
        'missing_api_key',
        'authentication_error',
      );
      expectRefusal(
        await rawRelay(s, '/responses', { key: 'sk-mole-not-a-real-key', body: body() }),
        401,
        'invalid_api_key',
        'authentication_error',
      );
      const d = await userWithKey(s, { key: { models: ['gpt-other'] } });
      expect((await s.api('PATCH', `/api/keys/${d.key.id}`, { status: 'disabled' })).status).toBe(200);
      // Disabled comes before the model rule.
      expectRefusal(
        await rawRelay(s, '/responses', { key: d.secret, body: body() }),
        401,
        'key_disabled',
        'authentication_error',
      );
      const ip = await userWithKey(s, { key: { allowed_ips: ['10.0.0.0/8'], models: ['gpt-other'] } });
      expectRefusal(
        await rawRelay(s, '/responses', { key: ip.secret, body: body() }),
        403,
        'ip_not_allowed',
        'permission_error',
      );
      const m = await userWithKey(s, { key: { models: ['gpt-other'] } });
      expectRefusal(
        await rawRelay(s, '/responses', { key: m.secret, body: body() }),
        403,
        'model_not_allowed',
        'permission_error',
      );
      expectRefusal(
        await rawRelay(s, '/responses', { key: secret, body: body(uniq('no-such-model')) }),
        404,
        'model_not_found',
        'invalid_request_error',
      );
      const q = await userWithKey(s, { key: { quota: 0.000001 } });
      const poor = await rawRelay(s, '/responses', { key: q.secret, body: body() });
      expectRefusal(poor, 429, 'insufficient_quota', 'insufficient_quota');
      expect(poor.headers.get('x-should-retry')).toBe('false');
      // The SDK raises them with status, code and type.
      const sdk = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: m.secret, maxRetries: 0 });
      await expect(sdk.responses.create({ model: 'gpt-pass', input: 'hi' })).rejects.toMatchObject({
        status: 403,
        code: 'model_not_allowed',
        type: 'permission_error',
      });
      expect(mock.requests).toHaveLength(0);
    });

    it('client mistakes are 400 invalid_request with the param', async () => {
      const res = await rawRelay(s, '/responses', {
        key: secret,
        body: JSON.stringify({ model: 'gpt-pass', input: [{ role: 'robot', content: 'x' }] }),
      });
      expectRefusal(res, 400, 'invalid_request', 'invalid_request_error');
      expect(res.json.error.param).toBe('input[0].role');
      expect(mock.requests).toHaveLength(0);
    });
  });
});
