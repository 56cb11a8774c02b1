import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, jsonSchema, streamText } from 'ai';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as canon from '../../../test/helpers/canonical.js';
import { decodeStream, mergeDeltas, refusal } from '../../../test/helpers/codec.js';
import { CODEX_TURN_SETTINGS } from '../../../test/helpers/codex.js';
import { AppError } from '../../http/errors.js';
import type { CanonicalRequest, CanonicalUsage, StreamEvent } from '../canonical.js';
import { StreamBroken } from '../canonical.js';
import { SseFrameParser } from '../sse.js';
import { countText } from '../tokens.js';
import { anthropicCodec } from './anthropic.js';
import { geminiCodec } from './gemini.js';
import { openaiCodec } from './openai.js';
import { responsesCodec as codec } from './responses.js';
import type { IngressRequest } from './types.js';

type Json = Record<string, unknown>;

const ROUTE = { protocol: 'responses', operation: 'generate' } as const;
const parse = (body: Record<string, unknown>, def = 4096) => codec.parseRequest(body, ROUTE, def);

// What Codex CLI sends (shape from codex-rs/codex-api common.rs), one turn after a tool call.
const CODEX_BODY = {
  model: 'gpt-5.5',
  instructions: 'You are Codex, a coding agent.',
  input: [
    {
      type: 'message',
      role: 'developer',
      content: [{ type: 'input_text', text: '<permissions>on-request</permissions>' }],
    },
    {
      type: 'message',
      role: 'user',
      content: [
        { type: 'input_text', text: 'What is in this picture? Then list the files.' },
        { type: 'input_image', image_url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' },
      ],
    },
    { type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: 'gAAAAAB...' },
    { type: 'item_reference', id: 'rs_0' },
    {
      type: 'message',
      role: 'assistant',
      content: [{ type: 'output_text', text: 'A mole. Listing files.' }],
    },
    { type: 'function_call', call_id: 'call_a', name: 'shell', arguments: '{"command":["ls"]}' },
    { type: 'function_call_output', call_id: 'call_a', output: 'README.md\nsrc' },
    { type: 'web_search_call', id: 'ws_1', status: 'completed' },
  ],
  tools: [
    {
      type: 'function',
      name: 'shell',
      description: 'Runs a shell command',
      strict: false,
      parameters: {
        type: 'object',
        properties: { command: { type: 'array', items: { type: 'string' } } },
        required: ['command'],
      },
    },
    { type: 'web_search' },
  ],
  ...CODEX_TURN_SETTINGS,
  max_output_tokens: 2000,
  temperature: 0.5,
  top_p: 0.9,
};

describe('parseRequest', () => {
  it('reads model, stream, output cap and counts the prompt', () => {
    const r = parse(CODEX_BODY);
    expect(r).toMatchObject({
      protocol: 'responses',
      operation: 'generate',
      model: 'gpt-5.5',
      stream: true,
      maxOutputTokens: 2000,
      impliedOutputCap: null,
      clientWantsUsage: false,
    });
    expect(r.body).toBe(CODEX_BODY);
    // An upper bound: every text, the image, the call and the tool definitions.
    const texts = [
      'You are Codex, a coding agent.',
      '<permissions>on-request</permissions>',
      'What is in this picture? Then list the files.',
      'A mole. Listing files.',
      'README.md\nsrc',
    ];
    const floor =
      texts.reduce((n, t) => n + countText(t), 0) + 85 + countText(JSON.stringify(CODEX_BODY.tools));
    expect(r.promptTokens).toBeGreaterThan(floor);
  });

  it('a string input; no cap → the default is implied', () => {
    const r = parse({ model: 'm', input: 'hello there' }, 1234);
    expect(r.stream).toBe(false);
    expect(r.maxOutputTokens).toBe(1234);
    expect(r.impliedOutputCap).toBe(1234);
    expect(r.promptTokens).toBeGreaterThanOrEqual(countText('hello there'));
    expect(
      parse({
        model: 'm',
        input: 'hi',
        tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }],
      }).promptTokens,
    ).toBeGreaterThan(parse({ model: 'm', input: 'hi' }).promptTokens);
  });

  it('counts files and other parts by their JSON text (an upper bound)', () => {
    const file = {
      type: 'input_file',
      filename: 'a.pdf',
      file_data: `data:application/pdf;base64,${'QUJD'.repeat(500)}`,
    };
    const plain = parse({
      model: 'm',
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'read' }] }],
    });
    const withFile = parse({
      model: 'm',
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'read' }, file] }],
    });
    expect(withFile.promptTokens - plain.promptTokens).toBeGreaterThanOrEqual(
      countText(JSON.stringify(file)),
    );
  });

  it('refuses client mistakes with invalid_request and the param', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ input: 'x' }, 'model'],
      [{ model: 7, input: 'x' }, 'model'],
      [{ model: 'm' }, 'input'],
      [{ model: 'm', input: 3 }, 'input'],
      [{ model: 'm', input: 'x', stream: 'yes' }, 'stream'],
      [{ model: 'm', input: [null] }, 'input[0]'],
      [{ model: 'm', input: ['x'] }, 'input[0]'],
      [{ model: 'm', input: [{ role: 'robot', content: 'x' }] }, 'input[0].role'],
      [{ model: 'm', input: [{ role: 'user', content: 5 }] }, 'input[0].content'],
      [
        { model: 'm', input: [{ role: 'user', content: [{ type: 'input_text' }] }] },
        'input[0].content[0].text',
      ],
      [{ model: 'm', input: [{ role: 'user', content: [7] }] }, 'input[0].content[0]'],
      [{ model: 'm', input: [{ type: 'function_call', name: 'f', arguments: '{}' }] }, 'input[0].call_id'],
      [
        { model: 'm', input: [{ type: 'function_call_output', call_id: 'c', output: {} }] },
        'input[0].output',
      ],
      [{ model: 'm', input: [{ content: 'no type, no role' }] }, 'input[0].type'],
      [{ model: 'm', input: 'x', instructions: ['a'] }, 'instructions'],
      [{ model: 'm', input: 'x', tools: {} }, 'tools'],
      [{ model: 'm', input: 'x', tools: [{ name: 'f' }] }, 'tools[0]'],
      [{ model: 'm', input: 'x', tools: [{ type: 'function' }] }, 'tools[0].name'],
      [
        { model: 'm', input: 'x', tools: [{ type: 'function', name: 'f', parameters: 'x' }] },
        'tools[0].parameters',
      ],
      [{ model: 'm', input: 'x', tool_choice: 5 }, 'tool_choice'],
      [{ model: 'm', input: 'x', max_output_tokens: 0 }, 'max_output_tokens'],
      [{ model: 'm', input: 'x', max_output_tokens: 1.5 }, 'max_output_tokens'],
      [{ model: 'm', input: 'x', temperature: 'hot' }, 'temperature'],
      [{ model: 'm', input: 'x', top_p: {} }, 'top_p'],
      [{ model: 'm', input: 'x', background: true }, 'background'],
    ];
    for (const [body, param] of cases)
      expect(refusal(() => parse(body)).param, JSON.stringify(body)).toBe(param);
  });

  it('accepts a stored-state request without input, and unknown item types, without crashing', () => {
    expect(parse({ model: 'm', previous_response_id: 'resp_1' }).promptTokens).toBeGreaterThan(0);
    const r = parse({
      model: 'm',
      input: [
        { type: 'mystery_item', x: [1, { y: 2 }] },
        { type: 'item_reference', id: 'msg_1' },
      ],
    });
    expect(r.promptTokens).toBeGreaterThan(0);
  });
});

describe('toCanonical', () => {
  it('maps a Codex turn: instructions + developer → system, parts, calls, results, tools, settings', () => {
    const c = codec.toCanonical(parse(CODEX_BODY));
    expect(c).toEqual<CanonicalRequest>({
      system: ['You are Codex, a coding agent.', '<permissions>on-request</permissions>'],
      messages: [
        canon.user([
          'What is in this picture? Then list the files.',
          { type: 'image', url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' },
        ]),
        canon.assistant('A mole. Listing files.', canon.call('call_a', 'shell', '{"command":["ls"]}')),
        canon.tool('call_a', 'README.md\nsrc', { name: 'shell' }),
      ],
      tools: [
        {
          name: 'shell',
          description: 'Runs a shell command',
          parameters: CODEX_BODY.tools[0]!.parameters as Record<string, unknown>,
        },
      ],
      toolChoice: 'auto',
      maxOutputTokens: 2000,
      temperature: 0.5,
      topP: 0.9,
      stop: [],
      stream: true,
      responseFormat: null,
      parallelToolCalls: false,
      // Codex's prompt_cache_key goes on to an OpenAI chat upstream (settings.test.ts).
      settings: { promptCacheKey: 'thread-1' },
    });
  });

  it('string input, tool choices, easy messages merged by role, tool output parts', () => {
    expect(codec.toCanonical(parse({ model: 'm', input: 'hi' })).messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'hi' }] },
    ]);
    const tools = [{ type: 'function', name: 'f', parameters: null }];
    const choice = (tool_choice: unknown) =>
      codec.toCanonical(parse({ model: 'm', input: 'x', tools, tool_choice })).toolChoice;
    expect(choice(undefined)).toBeNull();
    expect(choice('none')).toBe('none');
    expect(choice('required')).toBe('required');
    expect(choice({ type: 'function', name: 'f' })).toEqual({ name: 'f' });
    expect(choice({ type: 'allowed_tools', mode: 'required', tools: [] })).toBe('required');
    expect(codec.toCanonical(parse({ model: 'm', input: 'x', tools })).tools).toEqual([
      { name: 'f', parameters: { type: 'object', properties: {} } },
    ]);
    // Only hosted tools declared: nothing to choose from on a translated channel.
    expect(
      codec.toCanonical(
        parse({ model: 'm', input: 'x', tools: [{ type: 'web_search' }], tool_choice: 'auto' }),
      ).toolChoice,
    ).toBeNull();
    const c = codec.toCanonical(
      parse({
        model: 'm',
        input: [
          { role: 'user', content: 'a' },
          { role: 'user', content: [{ type: 'input_text', text: 'b' }] },
          { type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' },
          { type: 'function_call', call_id: 'c2', name: 'g', arguments: '{"x":1}' },
          {
            type: 'function_call_output',
            call_id: 'c1',
            output: [
              { type: 'input_text', text: 'r1' },
              { type: 'input_image', image_url: 'https://x/y.png' },
            ],
          },
          { type: 'function_call_output', call_id: 'zz', output: 'orphan' },
          { role: 'assistant', content: [{ type: 'refusal', refusal: 'no' }] },
        ],
      }),
    );
    expect(c.messages).toEqual([
      canon.user(['a', 'b']),
      canon.assistant([], canon.call('c1', 'f', '{}'), canon.call('c2', 'g', '{"x":1}')),
      canon.tool('c1', ['r1', canon.image('https://x/y.png')], { name: 'f' }),
      canon.tool('zz', 'orphan'),
      canon.assistant('no'),
    ]);
  });

  it('text.format json_schema / json_object is the canonical response format; each upstream gets its own', () => {
    const schema = { type: 'object', properties: { a: { type: 'string' } }, required: ['a'] };
    const c = codec.toCanonical(
      parse({
        model: 'm',
        input: 'x',
        instructions: 'Hi.',
        text: { format: { type: 'json_schema', name: 'thing', schema, strict: true } },
      }),
    );
    expect(c.system).toEqual(['Hi.']);
    expect(c.responseFormat).toEqual({ type: 'json_schema', name: 'thing', schema, strict: true });
    const object = codec.toCanonical(
      parse({ model: 'm', input: 'x', text: { format: { type: 'json_object' } } }),
    );
    expect(object.responseFormat).toEqual({ type: 'json_object' });
    expect(
      codec.toCanonical(
        parse({ model: 'm', input: 'x', text: { format: { type: 'text' }, verbosity: 'low' } }),
      ).responseFormat,
    ).toBeNull();
    // OpenAI chat and Gemini enforce it; Anthropic's Messages are told it.
    expect((openaiCodec.fromCanonical(c, 'gpt', 10) as Json).response_format).toEqual({
      type: 'json_schema',
      json_schema: { name: 'thing', schema, strict: true },
    });
    expect((openaiCodec.fromCanonical(object, 'gpt', 10) as Json).response_format).toEqual({
      type: 'json_object',
    });
    expect((geminiCodec.fromCanonical(c, 'g', 10) as Json).generationConfig).toEqual({
      maxOutputTokens: 10,
      responseMimeType: 'application/json',
      responseJsonSchema: schema,
    });
    expect((codec.fromCanonical(c, 'gpt', 10) as Json).text).toEqual({
      format: { type: 'json_schema', name: 'thing', schema, strict: true },
    });
    expect((anthropicCodec.fromCanonical(c, 'claude', 10) as Json).system).toEqual([
      { type: 'text', text: 'Hi.' },
      {
        type: 'text',
        text: `Answer with one JSON value named "thing" and nothing else (no prose, no code fences), valid against this JSON Schema: ${JSON.stringify(schema)}`,
      },
    ]);
  });

  it('refuses what only OpenAI can honour, with the param', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ model: 'm', input: 'x', previous_response_id: 'resp_1' }, 'previous_response_id'],
      [{ model: 'm', conversation: 'conv_1' }, 'conversation'],
      [{ model: 'm', prompt: { id: 'pmpt_1' } }, 'prompt'],
      [
        {
          model: 'm',
          input: [
            { role: 'user', content: 'x' },
            { type: 'item_reference', id: 'msg_1' },
          ],
        },
        'input[1]',
      ],
      [
        { model: 'm', input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file-1' }] }] },
        'input[0].content[0]',
      ],
      [
        { model: 'm', input: [{ role: 'user', content: [{ type: 'input_image', file_id: 'file-1' }] }] },
        'input[0].content[0]',
      ],
      [
        { model: 'm', input: 'x', tools: [{ type: 'web_search' }], tool_choice: { type: 'web_search' } },
        'tool_choice',
      ],
      [{ model: 'm', input: 'x', tools: [{ type: 'web_search' }], tool_choice: 'required' }, 'tool_choice'],
    ];
    for (const [body, param] of cases) {
      const r = parse(body);
      const e = refusal(() => codec.toCanonical(r));
      expect(e.param, JSON.stringify(body)).toBe(param);
      expect(e.message.length).toBeGreaterThan(30);
    }
  });
});

describe('fromCanonical', () => {
  it('writes a Responses body that reads back to the same canonical request', () => {
    const c = codec.toCanonical(parse(CODEX_BODY));
    const body = codec.fromCanonical(c, 'upstream-model', 777) as Record<string, unknown>;
    expect(body).toMatchObject({
      model: 'upstream-model',
      instructions: 'You are Codex, a coding agent.\n\n<permissions>on-request</permissions>',
      max_output_tokens: 777,
      temperature: 0.5,
      top_p: 0.9,
      tool_choice: 'auto',
      store: false,
      stream: true,
    });
    expect(body.input).toEqual([
      {
        type: 'message',
        role: 'user',
        content: [
          { type: 'input_text', text: 'What is in this picture? Then list the files.' },
          { type: 'input_image', image_url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' },
        ],
      },
      {
        type: 'message',
        role: 'assistant',
        content: [{ type: 'output_text', text: 'A mole. Listing files.' }],
      },
      { type: 'function_call', call_id: 'call_a', name: 'shell', arguments: '{"command":["ls"]}' },
      { type: 'function_call_output', call_id: 'call_a', output: 'README.md\nsrc' },
    ]);
    const back = codec.toCanonical(parse(body));
    expect(back).toEqual({ ...c, system: [c.system.join('\n\n')], maxOutputTokens: 777 });
    const forced = codec.fromCanonical(
      { ...c, toolChoice: { name: 'shell' }, stream: false },
      'u',
      5,
    ) as Record<string, unknown>;
    expect(forced.tool_choice).toEqual({ type: 'function', name: 'shell' });
    expect(forced.stream).toBeUndefined();
  });
});

describe('passThroughBody', () => {
  it('maps only the model, and sends the implied cap', () => {
    const body = { model: 'alias', input: 'x', mystery_field: { a: [1] }, previous_response_id: 'resp_9' };
    expect(codec.passThroughBody(parse(body, 321), 'real')).toEqual({
      ...body,
      model: 'real',
      max_output_tokens: 321,
    });
    const own = { ...body, max_output_tokens: 50 };
    expect(codec.passThroughBody(parse(own), 'real')).toEqual({ ...own, model: 'real' });
  });
});

/** A Responses `usage` object: `input_tokens` counts the cached ones too; the total is input + output. */
const wireUsage = (u: {
  input: number;
  cached: number;
  cacheWrite?: number;
  output: number;
  reasoning: number;
}) => ({
  input_tokens: u.input,
  input_tokens_details: {
    cached_tokens: u.cached,
    ...(u.cacheWrite === undefined ? {} : { cache_write_tokens: u.cacheWrite }),
  },
  output_tokens: u.output,
  output_tokens_details: { reasoning_tokens: u.reasoning },
  total_tokens: u.input + u.output,
});

// A non-stream answer as api.openai.com returns it (reasoning model, cached prompt).
const RECORDED_ANSWER = {
  id: 'resp_68af4030592c81938ec0a5fbab4a3e9f05438e46b5f69a3b',
  object: 'response',
  created_at: 1756315696,
  status: 'completed',
  background: false,
  error: null,
  incomplete_details: null,
  instructions: null,
  max_output_tokens: null,
  model: 'gpt-5-mini-2025-08-07',
  output: [
    { id: 'rs_68af4030baa48193b0b43b4c2a176a1a05438e46b5f69a3b', type: 'reasoning', summary: [] },
    {
      id: 'msg_68af40337e58819392e935fb404414d005438e46b5f69a3b',
      type: 'message',
      status: 'completed',
      content: [{ type: 'output_text', annotations: [], logprobs: [], text: 'Moles dig.' }],
      role: 'assistant',
    },
    {
      id: 'fc_68af4034',
      type: 'function_call',
      status: 'completed',
      arguments: '{"city":"Paris"}',
      call_id: 'call_Kx1',
      name: 'get_weather',
    },
  ],
  parallel_tool_calls: true,
  previous_response_id: null,
  reasoning: { effort: 'medium', summary: null },
  store: true,
  temperature: 1,
  text: { format: { type: 'text' }, verbosity: 'medium' },
  tool_choice: 'auto',
  tools: [],
  top_p: 1,
  truncation: 'disabled',
  usage: wireUsage({ input: 1200, cached: 1024, output: 300, reasoning: 256 }),
  user: null,
  metadata: {},
};

describe('decodeAnswer / answerError', () => {
  it('reads text, tool calls, stop reason and usage (input excludes cache reads)', () => {
    expect(codec.answerError(RECORDED_ANSWER)).toBeNull();
    expect(codec.decodeAnswer(RECORDED_ANSWER)).toEqual(
      canon.answer({
        id: RECORDED_ANSWER.id,
        model: 'gpt-5-mini-2025-08-07',
        text: 'Moles dig.',
        toolCalls: [canon.call('call_Kx1', 'get_weather', '{"city":"Paris"}')],
        stopReason: 'tool_calls',
        usage: { input: 176, cacheRead: 1024, cacheWrite: 0, output: 300, reasoning: 256 },
      }),
    );
  });

  it('incomplete → length / content_filter; refusal → content_filter; cache writes; no usage', () => {
    const inc = {
      ...RECORDED_ANSWER,
      status: 'incomplete',
      incomplete_details: { reason: 'max_output_tokens' },
    };
    expect(codec.decodeAnswer(inc).stopReason).toBe('length');
    expect(codec.decodeAnswer({ ...inc, incomplete_details: { reason: 'content_filter' } }).stopReason).toBe(
      'content_filter',
    );
    const refused = {
      ...RECORDED_ANSWER,
      output: [{ type: 'message', role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot.' }] }],
      usage: wireUsage({ input: 100, cached: 20, cacheWrite: 30, output: 5, reasoning: 0 }),
    };
    expect(codec.decodeAnswer(refused)).toMatchObject({
      text: 'I cannot.',
      stopReason: 'content_filter',
      usage: { input: 50, cacheRead: 20, cacheWrite: 30, output: 5, reasoning: 0 },
    });
    const { usage: _u, ...noUsage } = RECORDED_ANSWER;
    expect(codec.decodeAnswer(noUsage).usage).toBeNull();
    expect(
      codec.decodeAnswer({
        output: [{ type: 'reasoning', summary: [{ type: 'summary_text', text: 'thought' }] }],
      }),
    ).toMatchObject({
      reasoning: 'thought',
      stopReason: 'stop',
    });
  });

  it('answerError: error bodies and non-Response bodies; decodeAnswer never crashes', () => {
    expect(codec.answerError({ error: { message: 'boom', type: 'server_error' } })).toBe('boom');
    expect(codec.answerError({ type: 'error', message: 'bad' })).toBe('bad');
    expect(codec.answerError({ ...RECORDED_ANSWER, status: 'failed' })).toMatch(/failed/);
    expect(codec.answerError([1])).toMatch(/JSON object/);
    expect(codec.answerError({ id: 'x' })).toMatch(/output/);
    for (const junk of [
      null,
      5,
      'x',
      [],
      { output: 'x' },
      { output: [null, 3, { type: 'message', content: 'x' }] },
    ])
      expect(codec.decodeAnswer(junk).text).toBe('');
  });
});

// ── streams ──────────────────────────────────────────────────────────────────────────────

const ev = (type: string, data: Record<string, unknown>) =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
let n = 0;
const e = (type: string, data: Record<string, unknown>) => ev(type, { ...data, sequence_number: n++ });
const resp = (status: string, extra: Record<string, unknown> = {}) => ({
  id: 'resp_abc',
  object: 'response',
  created_at: 1,
  status,
  model: 'gpt-4.1-mini-2025-04-14',
  output: [],
  usage: null,
  ...extra,
});
const msg = { id: 'msg_1', type: 'message', status: 'in_progress', role: 'assistant', content: [] };
const part = { type: 'output_text', annotations: [], logprobs: [], text: '' };
// A text stream as api.openai.com sends it (obfuscation fields included).
const RECORDED_TEXT_STREAM = [
  e('response.created', { response: resp('in_progress') }),
  e('response.in_progress', { response: resp('in_progress') }),
  e('response.output_item.added', { output_index: 0, item: msg }),
  e('response.content_part.added', { item_id: 'msg_1', output_index: 0, content_index: 0, part }),
  e('response.output_text.delta', {
    item_id: 'msg_1',
    output_index: 0,
    content_index: 0,
    delta: 'Dig',
    logprobs: [],
    obfuscation: 'xY',
  }),
  e('response.output_text.delta', {
    item_id: 'msg_1',
    output_index: 0,
    content_index: 0,
    delta: ' deep 🐾',
    logprobs: [],
    obfuscation: 'q',
  }),
  e('response.output_text.done', {
    item_id: 'msg_1',
    output_index: 0,
    content_index: 0,
    text: 'Dig deep 🐾',
    logprobs: [],
  }),
  e('response.content_part.done', {
    item_id: 'msg_1',
    output_index: 0,
    content_index: 0,
    part: { ...part, text: 'Dig deep 🐾' },
  }),
  e('response.output_item.done', {
    output_index: 0,
    item: { ...msg, status: 'completed', content: [{ ...part, text: 'Dig deep 🐾' }] },
  }),
  e('response.completed', {
    response: resp('completed', {
      usage: wireUsage({ input: 50, cached: 10, output: 3, reasoning: 0 }),
    }),
  }),
].join('');

const fc = {
  id: 'fc_1',
  type: 'function_call',
  status: 'in_progress',
  arguments: '',
  call_id: 'call_9',
  name: 'get_weather',
};
const RECORDED_TOOL_STREAM = [
  e('response.created', { response: resp('in_progress') }),
  e('response.output_item.added', { output_index: 0, item: { id: 'rs_1', type: 'reasoning', summary: [] } }),
  e('response.output_item.done', { output_index: 0, item: { id: 'rs_1', type: 'reasoning', summary: [] } }),
  e('response.output_item.added', { output_index: 1, item: fc }),
  e('response.function_call_arguments.delta', { item_id: 'fc_1', output_index: 1, delta: '{"city":' }),
  e('response.function_call_arguments.delta', { item_id: 'fc_1', output_index: 1, delta: '"Paris"}' }),
  e('response.function_call_arguments.done', {
    item_id: 'fc_1',
    output_index: 1,
    arguments: '{"city":"Paris"}',
  }),
  e('response.output_item.done', {
    output_index: 1,
    item: { ...fc, status: 'completed', arguments: '{"city":"Paris"}' },
  }),
  e('response.completed', {
    response: resp('completed', {
      usage: wireUsage({ input: 80, cached: 0, output: 40, reasoning: 24 }),
    }),
  }),
].join('');

function decodeAll(
  text: string,
  chunks: number[] = [],
): { events: StreamEvent[]; done: boolean; usage: CanonicalUsage | null } {
  const d = codec.streamDecoder(parse({ model: 'm', input: 'x', stream: true }));
  const events = decodeStream(d, text, chunks);
  return { events, done: d.done, usage: d.usage };
}

describe('streamDecoder', () => {
  it('reads a recorded text stream: start, text, usage, stop, done', () => {
    const { events, done, usage } = decodeAll(RECORDED_TEXT_STREAM);
    expect(done).toBe(true);
    expect(usage).toEqual({ input: 40, cacheRead: 10, cacheWrite: 0, output: 3, reasoning: 0 });
    expect(mergeDeltas(events)).toEqual([
      { type: 'start', id: 'resp_abc', model: 'gpt-4.1-mini-2025-04-14' },
      { type: 'text', text: 'Dig deep 🐾' },
      { type: 'usage', usage },
      { type: 'stop', reason: 'stop' },
    ]);
  });

  it('reads a recorded tool-call stream', () => {
    const { events, usage } = decodeAll(RECORDED_TOOL_STREAM);
    expect(usage).toEqual({ input: 80, cacheRead: 0, cacheWrite: 0, output: 40, reasoning: 24 });
    expect(mergeDeltas(events)).toEqual([
      { type: 'start', id: 'resp_abc', model: 'gpt-4.1-mini-2025-04-14' },
      { type: 'tool_call', index: 0, id: 'call_9', name: 'get_weather' },
      { type: 'tool_args', index: 0, delta: '{"city":"Paris"}' },
      { type: 'usage', usage },
      { type: 'stop', reason: 'tool_calls' },
    ]);
  });

  it('is independent of chunking, of JSON spacing and of the event: line', () => {
    for (const text of [RECORDED_TEXT_STREAM, RECORDED_TOOL_STREAM]) {
      const whole = mergeDeltas(decodeAll(text).events);
      for (let cut = 1; cut < text.length; cut += 7)
        expect(mergeDeltas(decodeAll(text, [cut]).events)).toEqual(whole);
      expect(mergeDeltas(decodeAll(text, Array(Buffer.byteLength(text)).fill(1)).events)).toEqual(whole);
      const spaced = text.replace(
        /data: (.*)\n/g,
        (_m, j: string) => `data: ${JSON.stringify(JSON.parse(j), null, 1).replace(/\n/g, ' ')}\n`,
      );
      expect(mergeDeltas(decodeAll(spaced).events)).toEqual(whole);
      const unnamed = text.replace(/^event: .*\n/gm, '');
      expect(mergeDeltas(decodeAll(unnamed).events)).toEqual(whole);
    }
  });

  it('takes text and arguments from the done items when no deltas came', () => {
    const text = [
      ev('response.created', { response: resp('in_progress') }),
      ev('response.output_item.done', {
        output_index: 0,
        item: { ...msg, content: [{ ...part, text: 'whole' }] },
      }),
      ev('response.output_item.done', { output_index: 1, item: { ...fc, arguments: '{"a":1}' } }),
      ev('response.incomplete', {
        response: resp('incomplete', { incomplete_details: { reason: 'max_output_tokens' } }),
      }),
    ].join('');
    const { events, done, usage } = decodeAll(text);
    expect(done).toBe(true);
    expect(usage).toBeNull();
    expect(mergeDeltas(events)).toEqual([
      { type: 'start', id: 'resp_abc', model: 'gpt-4.1-mini-2025-04-14' },
      { type: 'text', text: 'whole' },
      { type: 'tool_call', index: 0, id: 'call_9', name: 'get_weather' },
      { type: 'tool_args', index: 0, delta: '{"a":1}' },
      { type: 'stop', reason: 'length' },
    ]);
  });

  it('reads refusal deltas as text, and a refused answer stops as content_filter', () => {
    const text = [
      ev('response.created', { response: resp('in_progress') }),
      ev('response.refusal.delta', { output_index: 0, delta: 'I cannot ' }),
      ev('response.refusal.delta', { output_index: 0, delta: 'help.' }),
      ev('response.completed', { response: resp('completed') }),
    ].join('');
    expect(mergeDeltas(decodeAll(text).events)).toEqual([
      { type: 'start', id: 'resp_abc', model: 'gpt-4.1-mini-2025-04-14' },
      { type: 'text', text: 'I cannot help.' },
      { type: 'stop', reason: 'content_filter' },
    ]);
  });

  it('error events, failed responses and garbage → StreamBroken; not done before the last event', () => {
    const head = RECORDED_TEXT_STREAM.slice(
      0,
      RECORDED_TEXT_STREAM.indexOf('event: response.output_text.done'),
    );
    expect(decodeAll(head).done).toBe(false);
    expect(() =>
      decodeAll(
        `${head}${ev('error', { code: 'server_error', message: 'The server had an error', param: null })}`,
      ),
    ).toThrow(/server had an error/);
    expect(() =>
      decodeAll(
        `${head}${ev('response.failed', { response: resp('failed', { error: { code: 'server_error', message: 'melted' } }) })}`,
      ),
    ).toThrow(StreamBroken);
    expect(() => decodeAll(`${head}data: {broken\n\n`)).toThrow(StreamBroken);
    expect(() => decodeAll(`${head}data: [1]\n\n`)).toThrow(StreamBroken);
  });
});

// ── encoders, checked by the official SDK ───────────────────────────────────────────────────

let server: http.Server;
let client: OpenAI;
let next: { status: number; contentType: string; body: string } = {
  status: 200,
  contentType: 'application/json',
  body: '{}',
};
const seen: unknown[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => {
      raw += c;
    });
    req.on('end', () => {
      seen.push(JSON.parse(raw));
      res.writeHead(next.status, { 'content-type': next.contentType });
      res.end(next.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  client = new OpenAI({
    apiKey: 'sk-test',
    baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    maxRetries: 0,
  });
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const serveJson = (body: unknown, status = 200) => {
  next = { status, contentType: 'application/json', body: JSON.stringify(body) };
};
const serveSse = (body: string) => {
  next = { status: 200, contentType: 'text/event-stream', body };
};

const USAGE: CanonicalUsage = { input: 30, cacheRead: 70, cacheWrite: 5, output: 40, reasoning: 12 };
const REQ = { model: 'claude-sonnet', input: 'Where do moles live?', instructions: 'Be brief.' };
const ingress = (extra: Record<string, unknown> = {}): IngressRequest => parse({ ...REQ, ...extra });

function encodeStream(
  r: IngressRequest,
  events: StreamEvent[],
  usage: CanonicalUsage | null = USAGE,
  err?: [string, string],
): string {
  const enc = codec.streamEncoder(r, 'req_123');
  let s = events.map((x) => enc.event(x)).join('');
  if (err) s += enc.error(err[0], err[1]);
  else if (usage) s += enc.finish(usage);
  return s;
}

const TEXT_EVENTS: StreamEvent[] = [
  { type: 'start', id: 'msg_01XYZ', model: 'claude-sonnet-4-5' },
  { type: 'reasoning', text: 'They dig.' },
  { type: 'text', text: 'Moles live ' },
  { type: 'text', text: 'underground.' },
  { type: 'usage', usage: USAGE },
  { type: 'stop', reason: 'stop' },
];
const TOOL_EVENTS: StreamEvent[] = [
  { type: 'start', id: 'msg_01T', model: 'claude-sonnet-4-5' },
  { type: 'text', text: 'Checking.' },
  { type: 'tool_call', index: 0, id: 'toolu_1', name: 'get_weather' },
  { type: 'tool_args', index: 0, delta: '{"city":' },
  { type: 'tool_call', index: 1, id: 'toolu_2', name: 'get_time' },
  { type: 'tool_args', index: 0, delta: '"Paris"}' },
  { type: 'tool_args', index: 1, delta: '{}' },
  { type: 'stop', reason: 'tool_calls' },
];
const SDK_USAGE = wireUsage({ input: 105, cached: 70, cacheWrite: 5, output: 40, reasoning: 12 });

describe('streamEncoder: a text delta', () => {
  it('is the frame of its event object, in sequence, whatever the text holds', () => {
    const texts = ['plain', 'quote " and \\ slash', 'line\nbreak\u0000nul', '\u2028 é 漢 😀', '\ud800 lone'];
    const body = encodeStream(ingress(), [
      { type: 'start', id: 'msg_"odd"', model: 'm' },
      ...texts.map((text): StreamEvent => ({ type: 'text', text })),
    ]);
    const frames = body.split('\n\n').filter(Boolean);
    const data = frames.map((f) => JSON.parse(f.slice(f.indexOf('\ndata: ') + 7)) as Record<string, unknown>);
    expect(data.map((d) => d.sequence_number)).toEqual(data.map((_, i) => i));
    const deltas = frames.filter((f) => f.startsWith('event: response.output_text.delta\n'));
    expect(deltas).toHaveLength(texts.length);
    deltas.forEach((f, i) => {
      const d = JSON.parse(f.slice(f.indexOf('\ndata: ') + 7)) as Record<string, unknown>;
      const event = {
        type: 'response.output_text.delta',
        sequence_number: d.sequence_number,
        item_id: d.item_id,
        output_index: 0,
        content_index: 0,
        delta: texts[i],
        logprobs: [],
      };
      expect(f).toBe(`event: response.output_text.delta\ndata: ${JSON.stringify(event)}`);
    });
  });
});

describe('encodeAnswer, read by the openai SDK', () => {
  it('text answer: output_text, status, usage in Responses terms (input includes cached)', async () => {
    const a = canon.answer({
      id: 'msg_01ABC',
      model: 'claude-sonnet-4-5',
      text: 'Underground.',
      reasoning: 'Soil.',
      usage: USAGE,
    });
    serveJson(codec.encodeAnswer(a, ingress()));
    const res = await client.responses.create(REQ);
    expect(res.output_text).toBe('Underground.');
    expect(res.status).toBe('completed');
    expect(res.id).toMatch(/^resp_/);
    expect(res.model).toBe('claude-sonnet-4-5');
    expect(res.instructions).toBe('Be brief.');
    expect(res.usage).toEqual(SDK_USAGE);
    expect(res.output.map((o) => o.type)).toEqual(['reasoning', 'message']);
  });

  it('tool calls: function_call items the SDK parses; length → incomplete', async () => {
    const a = canon.answer({
      id: 'chatcmpl-1',
      model: 'gpt-4o',
      toolCalls: [canon.call('call_1', 'get_weather', '{"city":"Paris"}')],
      stopReason: 'tool_calls',
      usage: USAGE,
    });
    const tools = [
      {
        type: 'function' as const,
        name: 'get_weather',
        strict: false,
        parameters: { type: 'object', properties: {} },
      },
    ];
    serveJson(codec.encodeAnswer(a, ingress({ tools })));
    const res = await client.responses.parse({ ...REQ, tools });
    expect(res.output).toHaveLength(1);
    expect(res.output[0]).toMatchObject({
      type: 'function_call',
      call_id: 'call_1',
      name: 'get_weather',
      arguments: '{"city":"Paris"}',
    });
    expect(res.output_text).toBe('');

    serveJson(
      codec.encodeAnswer({ ...a, toolCalls: [], text: 'cut', stopReason: 'length', usage: null }, ingress()),
    );
    const cut = await client.responses.create(REQ);
    expect(cut.status).toBe('incomplete');
    expect(cut.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(cut.output_text).toBe('cut');
  });

  it('errorBody: OpenAI shape the SDK raises as APIError with code, type and param', async () => {
    serveJson(codec.errorBody(403, 'model_not_allowed', 'key may not use claude-sonnet', 'req_1'), 403);
    const err = await client.responses.create(REQ).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(err).toMatchObject({ status: 403, code: 'model_not_allowed', type: 'permission_error' });
    expect(codec.errorBody(400, 'invalid_request', 'bad', 'r', 'input[0]')).toEqual({
      error: { message: 'bad', type: 'invalid_request_error', param: 'input[0]', code: 'invalid_request' },
    });
    expect(codec.errorBody(529, 'overloaded', 'busy', 'r')).toMatchObject({
      error: { type: 'server_error', code: 'overloaded' },
    });
  });
});

describe('streamEncoder, read by the openai SDK', () => {
  it('text: the stream helper sees every event and its final response', async () => {
    serveSse(encodeStream(ingress({ stream: true }), TEXT_EVENTS));
    const stream = client.responses.stream(REQ);
    const deltas: string[] = [];
    const types: string[] = [];
    stream.on('response.output_text.delta', (d) => deltas.push(d.delta));
    stream.on('event', (x) => types.push(x.type));
    const final = await stream.finalResponse();
    expect(deltas).toEqual(['Moles live ', 'underground.']);
    expect(final.output_text).toBe('Moles live underground.');
    expect(final.status).toBe('completed');
    expect(final.usage).toEqual(SDK_USAGE);
    expect(final.model).toBe('claude-sonnet-4-5');
    expect(final.output.map((o) => o.type)).toEqual(['reasoning', 'message']);
    expect(types).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.reasoning_text.delta',
      'response.reasoning_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
  });

  it('every event has an increasing sequence_number; frames are event: + data:', () => {
    const text = encodeStream(ingress({ stream: true }), TOOL_EVENTS);
    const frames = new SseFrameParser().feed(Buffer.from(text));
    expect(frames.length).toBeGreaterThan(5);
    frames.forEach((f, i) => {
      const j = JSON.parse(f.data) as { type: string; sequence_number: number };
      expect(f.event).toBe(j.type);
      expect(j.sequence_number).toBe(i);
      expect(f.raw).toMatch(/^event: \S+\ndata: \{.*\}\n\n$/);
    });
  });

  it('tool calls: create({stream: true}) events and the helper final response', async () => {
    const body = encodeStream(ingress({ stream: true }), TOOL_EVENTS);
    serveSse(body);
    const s = await client.responses.create({ ...REQ, stream: true });
    const args: string[] = [];
    const done: unknown[] = [];
    for await (const x of s) {
      if (x.type === 'response.function_call_arguments.delta') args.push(x.delta);
      if (x.type === 'response.output_item.done' && x.item.type === 'function_call') done.push(x.item);
    }
    expect(args.join('')).toBe('{"city":"Paris"}{}');
    expect(done).toEqual([
      expect.objectContaining({
        call_id: 'toolu_1',
        name: 'get_weather',
        arguments: '{"city":"Paris"}',
        status: 'completed',
      }),
      expect.objectContaining({ call_id: 'toolu_2', name: 'get_time', arguments: '{}', status: 'completed' }),
    ]);
    serveSse(body);
    const final = await client.responses.stream(REQ).finalResponse();
    expect(final.status).toBe('completed');
    expect(final.output_text).toBe('Checking.');
    expect(
      final.output.map((o) => (o.type === 'function_call' ? `${o.call_id}:${o.arguments}` : o.type)),
    ).toEqual(['message', 'toolu_1:{"city":"Paris"}', 'toolu_2:{}']);
  });

  it('length → response.incomplete; error() → response.failed with the code', async () => {
    serveSse(
      encodeStream(ingress({ stream: true }), [
        { type: 'text', text: 'cut sh' },
        { type: 'stop', reason: 'length' },
      ]),
    );
    const cut = await client.responses.stream(REQ).finalResponse();
    expect(cut.status).toBe('incomplete');
    expect(cut.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(cut.output_text).toBe('cut sh');

    serveSse(
      encodeStream(ingress({ stream: true }), TEXT_EVENTS.slice(0, 3), null, [
        'upstream_error',
        'the upstream stream broke',
      ]),
    );
    const types: string[] = [];
    let failed: unknown;
    const s = await client.responses.create({ ...REQ, stream: true });
    for await (const x of s) {
      types.push(x.type);
      if (x.type === 'response.failed') failed = x.response;
    }
    expect(types.at(-1)).toBe('response.failed');
    expect(failed).toMatchObject({
      status: 'failed',
      error: { code: 'server_error', message: 'the upstream stream broke' },
    });
    expect(codec.streamEncoder(ingress(), 'r').error('rate_limit_exceeded', 'slow down')).toContain(
      '"code":"rate_limit_exceeded"',
    );
  });

  it('our decoder reads our encoder back (canonical round trip)', () => {
    const back = decodeAll(encodeStream(ingress({ stream: true }), TOOL_EVENTS));
    expect(back.done).toBe(true);
    expect(back.usage).toEqual(USAGE);
    const args = (evs: StreamEvent[], i: number) =>
      evs.map((x) => (x.type === 'tool_args' && x.index === i ? x.delta : '')).join('');
    const rest = (evs: StreamEvent[]) =>
      mergeDeltas(evs.filter((x) => x.type !== 'usage' && x.type !== 'tool_args'));
    expect(rest(back.events)).toEqual([
      { type: 'start', id: 'resp_msg01T', model: 'claude-sonnet-4-5' },
      ...rest(TOOL_EVENTS.slice(1)),
    ]);
    for (const i of [0, 1]) expect(args(back.events, i)).toBe(args(TOOL_EVENTS, i));
  });
});

describe('encoders, read by the Vercel AI SDK (openai(model) = Responses)', () => {
  const model = () => createOpenAI({ baseURL: client.baseURL, apiKey: 'sk-test' })('claude-sonnet');
  const tools = {
    get_weather: { inputSchema: jsonSchema({ type: 'object', properties: { city: { type: 'string' } } }) },
    get_time: { inputSchema: jsonSchema({ type: 'object', properties: {} }) },
  };

  it('a translated stream: reasoning, text, finish reason, usage', async () => {
    serveSse(encodeStream(ingress({ stream: true }), TEXT_EVENTS));
    const r = streamText({ model: model(), prompt: 'Where do moles live?', maxRetries: 0 });
    let text = '';
    for await (const t of r.textStream) text += t;
    expect(text).toBe('Moles live underground.');
    expect(await r.finishReason).toBe('stop');
    const u = await r.usage;
    expect([u.inputTokens, u.outputTokens]).toEqual([105, 40]);
  });

  it('tool calls streamed and plain', async () => {
    serveSse(encodeStream(ingress({ stream: true }), TOOL_EVENTS));
    const r = streamText({ model: model(), prompt: 'Weather?', tools, maxRetries: 0 });
    const calls = await r.toolCalls;
    expect(calls.map((c) => [c.toolCallId, c.toolName, c.input])).toEqual([
      ['toolu_1', 'get_weather', { city: 'Paris' }],
      ['toolu_2', 'get_time', {}],
    ]);
    expect(await r.finishReason).toBe('tool-calls');

    const a = canon.answer({
      id: 'msg_1',
      model: 'claude',
      text: 'Checking.',
      reasoning: 'Think.',
      toolCalls: [canon.call('toolu_9', 'get_time', '{}')],
      stopReason: 'tool_calls',
      usage: USAGE,
    });
    serveJson(codec.encodeAnswer(a, ingress()));
    const g = await generateText({ model: model(), prompt: 'Time?', tools, maxRetries: 0 });
    expect(g.text).toBe('Checking.');
    expect(g.toolCalls.map((c) => [c.toolCallId, c.toolName])).toEqual([['toolu_9', 'get_time']]);
    expect(g.finishReason).toBe('tool-calls');
    expect(g.usage.inputTokens).toBe(105);
  });
});

describe('forwardedHeaders', () => {
  it("forwards OpenAI's beta and Codex's session headers, never credentials", () => {
    expect(
      codec.forwardedHeaders({
        authorization: 'Bearer sk-x',
        'openai-beta': 'responses=v1',
        'openai-organization': 'org-x',
        originator: 'codex_cli_rs',
        session_id: 's1',
        'x-api-key': 'k',
      }),
    ).toEqual({ 'openai-beta': 'responses=v1', originator: 'codex_cli_rs', session_id: 's1' });
  });
});

describe('never crashes on wrong types', () => {
  it('parseRequest / toCanonical either work or refuse with AppError, for any shapes', () => {
    let seed = 42;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed % n;
    };
    const atoms: unknown[] = [null, 0, -1, 1.5, '', 'x', true, [], {}, [null], { type: 7 }];
    const value = (depth: number): unknown => {
      const k = rnd(depth > 2 ? 3 : 6);
      if (k < 3) return atoms[rnd(atoms.length)];
      if (k === 3) return Array.from({ length: rnd(3) }, () => value(depth + 1));
      const keys = [
        'type',
        'role',
        'content',
        'text',
        'call_id',
        'name',
        'arguments',
        'output',
        'image_url',
        'id',
      ];
      return Object.fromEntries(
        Array.from({ length: rnd(4) }, () => [keys[rnd(keys.length)]!, value(depth + 1)]),
      );
    };
    const items = (): unknown => {
      const kinds = [
        'message',
        'function_call',
        'function_call_output',
        'reasoning',
        'item_reference',
        undefined,
      ];
      return Array.from({ length: rnd(4) }, () => ({
        type: kinds[rnd(kinds.length)],
        role: ['user', 'assistant', 'system', 'developer'][rnd(4)],
        content: rnd(2)
          ? value(1)
          : [
              {
                type: ['input_text', 'input_image', 'output_text', 'refusal', 'x'][rnd(5)],
                text: 'a',
                image_url: value(2),
              },
            ],
        call_id: rnd(2) ? 'c' : value(2),
        name: 'f',
        arguments: rnd(2) ? '{}' : value(2),
        output: value(1),
      }));
    };
    for (let i = 0; i < 3000; i++) {
      const body: Record<string, unknown> = { model: 'm', input: rnd(3) ? items() : value(0) };
      for (const k of [
        'instructions',
        'tools',
        'tool_choice',
        'max_output_tokens',
        'temperature',
        'top_p',
        'stream',
        'text',
      ])
        if (rnd(3) === 0)
          body[k] =
            k === 'tools' && rnd(2)
              ? [{ type: 'function', name: 'f', parameters: value(1) }, value(1)]
              : value(0);
      try {
        const r = parse(body);
        codec.toCanonical(r);
        codec.passThroughBody(r, 'u');
      } catch (e) {
        if (!(e instanceof AppError)) throw new Error(`crash on ${JSON.stringify(body)}: ${String(e)}`);
      }
    }
  });

  it('the stream decoder and answer decoder take any JSON without crashing', () => {
    const types = [
      'response.created',
      'response.output_item.added',
      'response.output_item.done',
      'response.output_text.delta',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.reasoning_text.delta',
      'response.completed',
      'response.incomplete',
    ];
    const junk: unknown[] = [
      null,
      1,
      'x',
      [],
      {},
      { type: 'function_call' },
      { type: 'message', content: 5 },
    ];
    for (const t of types)
      for (const a of junk)
        for (const b of junk) {
          const d = codec.streamDecoder(parse({ model: 'm', input: 'x' }));
          const data = JSON.stringify({
            type: t,
            output_index: a,
            item: b,
            delta: a,
            arguments: b,
            response: b,
          });
          d.feed({ event: t, data, raw: `data: ${data}\n\n` });
          codec.decodeAnswer({ output: [b, a], usage: a, status: b });
        }
  });
});

// Codex declares apply_patch as a freeform `custom` tool (seen from codex-cli 0.171 with
// gpt-5.5); translated, it is a function taking one string and its calls go back as
// `custom_tool_call` items, which Codex applies and answers with `custom_tool_call_output`.
describe('freeform custom tools (Codex apply_patch) when translating', () => {
  const APPLY_PATCH = {
    type: 'custom' as const,
    name: 'apply_patch',
    description: 'Use the `apply_patch` tool to edit files. This is a FREEFORM tool.',
    format: {
      type: 'grammar' as const,
      syntax: 'lark' as const,
      definition: 'start: begin_patch hunk+ end_patch',
    },
  };
  const PATCH = '*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** End Patch\n';
  const weatherTool = {
    type: 'function' as const,
    name: 'get_weather',
    strict: false,
    parameters: { type: 'object', properties: { city: { type: 'string' } } },
  };
  const CUSTOM_REQ = { ...REQ, tools: [weatherTool, APPLY_PATCH] };

  it('toCanonical: a function with one string "input" (grammar in its description); calls and outputs', () => {
    const c = codec.toCanonical(
      parse({
        ...CUSTOM_REQ,
        input: [
          { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Create hello.txt' }] },
          { type: 'custom_tool_call', call_id: 'call_p', name: 'apply_patch', input: PATCH },
          { type: 'custom_tool_call_output', call_id: 'call_p', output: 'Success. Updated: A hello.txt' },
        ],
        tool_choice: { type: 'custom', name: 'apply_patch' },
      }),
    );
    expect(c.tools.map((t) => t.name)).toEqual(['get_weather', 'apply_patch']);
    const tool = c.tools[1]!;
    expect(tool.description).toBe(
      `${APPLY_PATCH.description}\n\nCall it with one argument, "input": the raw text.`,
    );
    expect(tool.parameters).toMatchObject({
      type: 'object',
      properties: { input: { type: 'string' } },
      required: ['input'],
    });
    expect(JSON.stringify(tool.parameters)).toContain('start: begin_patch hunk+ end_patch');
    expect(c.toolChoice).toEqual({ name: 'apply_patch' });
    expect(c.messages.slice(1)).toEqual([
      canon.assistant([], canon.call('call_p', 'apply_patch', JSON.stringify({ input: PATCH }))),
      canon.tool('call_p', 'Success. Updated: A hello.txt', { name: 'apply_patch' }),
    ]);
    refusal(() => parse({ ...REQ, input: [{ type: 'custom_tool_call', call_id: 'c', name: 'x' }] }));
  });

  it('encodeAnswer: a call of the custom tool is a custom_tool_call item with the raw input', async () => {
    const a = canon.answer({
      id: 'msg_01P',
      model: 'claude-sonnet-4-5',
      toolCalls: [
        canon.call('toolu_p', 'apply_patch', JSON.stringify({ input: PATCH })),
        canon.call('toolu_w', 'get_weather', '{"city":"Paris"}'),
      ],
      stopReason: 'tool_calls',
      usage: USAGE,
    });
    serveJson(codec.encodeAnswer(a, ingress({ tools: CUSTOM_REQ.tools })));
    const res = await client.responses.create(CUSTOM_REQ);
    expect(res.status).toBe('completed');
    expect(res.output).toEqual([
      expect.objectContaining({
        type: 'custom_tool_call',
        call_id: 'toolu_p',
        name: 'apply_patch',
        input: PATCH,
      }),
      expect.objectContaining({ type: 'function_call', call_id: 'toolu_w', arguments: '{"city":"Paris"}' }),
    ]);
  });

  it('streamEncoder: custom_tool_call item, input delta/done events, completed; the SDK reads it', async () => {
    const args = JSON.stringify({ input: PATCH });
    const events: StreamEvent[] = [
      { type: 'start', id: 'msg_01S', model: 'claude-sonnet-4-5' },
      { type: 'text', text: 'Patching.' },
      { type: 'tool_call', index: 0, id: 'toolu_p', name: 'apply_patch' },
      { type: 'tool_args', index: 0, delta: args.slice(0, 17) },
      { type: 'tool_args', index: 0, delta: args.slice(17) },
      { type: 'stop', reason: 'tool_calls' },
    ];
    const body = encodeStream(ingress({ tools: CUSTOM_REQ.tools, stream: true }), events);
    serveSse(body);
    const s = await client.responses.create({ ...CUSTOM_REQ, stream: true });
    const types: string[] = [];
    let input = '';
    let done: unknown = null;
    let final: { status?: string; output?: unknown[] } = {};
    for await (const x of s) {
      types.push(x.type);
      if (x.type === 'response.custom_tool_call_input.delta') input += x.delta;
      if (x.type === 'response.output_item.done' && x.item.type === 'custom_tool_call') done = x.item;
      if (x.type === 'response.completed') final = x.response;
    }
    expect(input).toBe(PATCH);
    expect(types).toContain('response.custom_tool_call_input.done');
    expect(types).not.toContain('response.function_call_arguments.delta');
    expect(done).toMatchObject({
      type: 'custom_tool_call',
      status: 'completed',
      call_id: 'toolu_p',
      name: 'apply_patch',
      input: PATCH,
    });
    expect(final.status).toBe('completed');
    expect(final.output?.map((o) => (o as { type: string }).type)).toEqual(['message', 'custom_tool_call']);
    // Arguments that are not JSON are the raw input itself.
    const raw = encodeStream(ingress({ tools: CUSTOM_REQ.tools, stream: true }), [
      { type: 'tool_call', index: 0, id: 'call_r', name: 'apply_patch' },
      { type: 'tool_args', index: 0, delta: PATCH },
    ]);
    expect(raw).toContain(JSON.stringify({ input: PATCH }).slice(1, -1));
  });
});

// Codex groups its sub-agent (and MCP) tools in `namespace` tools; its calls of them carry
// `namespace` beside the tool's own name (seen from codex-cli 0.171).
describe('namespace tools (Codex multi_agent_v1) when translating', () => {
  const NS = {
    type: 'namespace',
    name: 'multi_agent_v1',
    description: 'Tools for spawning and managing sub-agents.',
    tools: [
      {
        type: 'function',
        name: 'close_agent',
        description: 'Close an agent.',
        strict: false,
        parameters: { type: 'object', properties: { target: { type: 'string' } }, required: ['target'] },
      },
      { type: 'custom', name: 'note', description: 'Free text.' },
    ],
  };
  const NS_REQ = { ...REQ, tools: [{ type: 'web_search' }, NS] };

  it('toCanonical: inner tools become {namespace}__{name}; namespaced calls in the input too', () => {
    const c = codec.toCanonical(
      parse({
        ...NS_REQ,
        input: [
          { type: 'message', role: 'user', content: 'Close it.' },
          {
            type: 'function_call',
            call_id: 'call_c',
            name: 'close_agent',
            namespace: 'multi_agent_v1',
            arguments: '{"target":"a1"}',
          },
          { type: 'function_call_output', call_id: 'call_c', output: 'closed' },
        ],
      }),
    );
    expect(c.tools.map((t) => t.name)).toEqual(['multi_agent_v1__close_agent', 'multi_agent_v1__note']);
    expect(c.tools[0]).toMatchObject({ description: 'Close an agent.', parameters: NS.tools[0]!.parameters });
    expect(c.tools[1]!.parameters).toMatchObject({ required: ['input'] });
    expect(c.messages[1]).toEqual(
      canon.assistant([], canon.call('call_c', 'multi_agent_v1__close_agent', '{"target":"a1"}')),
    );
    expect(c.messages[2]).toMatchObject({
      role: 'tool',
      toolCallId: 'call_c',
      name: 'multi_agent_v1__close_agent',
    });
  });

  it('tools declared in an additional_tools input item count like tools', () => {
    const c = codec.toCanonical(
      parse({
        ...REQ,
        input: [
          { type: 'additional_tools', role: 'developer', tools: [NS] },
          { type: 'message', role: 'user', content: 'Close it.' },
        ],
      }),
    );
    expect(c.tools.map((t) => t.name)).toEqual(['multi_agent_v1__close_agent', 'multi_agent_v1__note']);
    expect(c.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'Close it.' }] }]);
    const forced = parse({
      ...NS_REQ,
      tool_choice: { type: 'function', name: 'close_agent', namespace: 'multi_agent_v1' },
    });
    expect(codec.toCanonical(forced).toolChoice).toEqual({ name: 'multi_agent_v1__close_agent' });
  });

  it('answers and streams give the call its own name and its namespace', async () => {
    const a = canon.answer({
      id: 'msg_01N',
      model: 'claude-sonnet-4-5',
      toolCalls: [
        canon.call('toolu_c', 'multi_agent_v1__close_agent', '{"target":"a1"}'),
        canon.call('toolu_n', 'multi_agent_v1__note', '{"input":"hi"}'),
      ],
      stopReason: 'tool_calls',
      usage: USAGE,
    });
    const json = codec.encodeAnswer(a, ingress({ tools: NS_REQ.tools })) as { output: unknown[] };
    expect(json.output).toEqual([
      expect.objectContaining({
        type: 'function_call',
        call_id: 'toolu_c',
        name: 'close_agent',
        namespace: 'multi_agent_v1',
        arguments: '{"target":"a1"}',
      }),
      expect.objectContaining({
        type: 'custom_tool_call',
        name: 'note',
        namespace: 'multi_agent_v1',
        input: 'hi',
      }),
    ]);

    const body = encodeStream(ingress({ tools: NS_REQ.tools, stream: true }), [
      { type: 'start', id: 'msg_01N', model: 'claude-sonnet-4-5' },
      { type: 'tool_call', index: 0, id: 'toolu_c', name: 'multi_agent_v1__close_agent' },
      { type: 'tool_args', index: 0, delta: '{"target":"a1"}' },
      { type: 'stop', reason: 'tool_calls' },
    ]);
    serveSse(body);
    const s = await client.responses.create({ ...REQ, stream: true });
    const items: unknown[] = [];
    for await (const x of s) {
      if (x.type === 'response.output_item.added' || x.type === 'response.output_item.done')
        items.push(x.item);
      if (x.type === 'response.function_call_arguments.done') expect(x.name).toBe('close_agent');
    }
    expect(items).toEqual([
      expect.objectContaining({ status: 'in_progress', name: 'close_agent', namespace: 'multi_agent_v1' }),
      expect.objectContaining({ status: 'completed', name: 'close_agent', namespace: 'multi_agent_v1' }),
    ]);
  });
});
