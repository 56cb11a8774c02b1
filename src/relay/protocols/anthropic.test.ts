import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as canon from '../../../test/helpers/canonical.js';
import { decodeStream, mergeDeltas, refusal } from '../../../test/helpers/codec.js';
import { turnsDuring } from '../../../test/helpers/event-loop.js';
import { AppError } from '../../http/errors.js';
import type { StreamEvent } from '../canonical.js';
import { StreamBroken } from '../canonical.js';
import { countText } from '../tokens.js';
import { anthropicCodec as codec, countMessagesTokens } from './anthropic.js';
import { exactPromptTokens, type IngressRequest, type RouteInfo } from './types.js';

const route: RouteInfo = { protocol: 'anthropic', operation: 'generate' };
const parse = (body: Record<string, unknown>) => codec.parseRequest(body, route, 4096);
/** A parsed request with its exact prompt count (admission holds a bound until it needs this). */
const counted = (body: Record<string, unknown>) => {
  const r = parse(body);
  return { ...r, promptTokens: exactPromptTokens(r) };
};

const weather = {
  name: 'get_weather',
  description: 'Weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

// ── a recorded Anthropic stream (docs example, with tool use and cache usage) ─────────────────
const RECORDED = [
  'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-opus-4-5","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2,"cache_creation_input_tokens":100,"cache_read_input_tokens":50,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":0},"service_tier":"standard"},"content":[],"stop_reason":null}}\n\n',
  'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
  'event: ping\ndata: {"type": "ping"}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", let\'s check the weather."}}\n\n',
  'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
  'event: content_block_start\ndata: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"location\\":"}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \\"San Francisco, CA\\"}"}}\n\n',
  'event: content_block_stop\ndata: {"type":"content_block_stop","index":1}\n\n',
  'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}\n\n',
  'event: message_stop\ndata: {"type":"message_stop"}\n\n',
].join('');

function decodeAll(text: string, chunk: number, r: IngressRequest) {
  const dec = codec.streamDecoder(r);
  return { events: decodeStream(dec, text, chunk), dec };
}

const baseReq = parse({ model: 'claude-x', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });

describe('anthropic codec: parse and validate', () => {
  it('reads a valid request: model, stream, max_tokens as the cap, no implied cap', () => {
    const r = parse({
      model: 'claude-opus-4-5',
      max_tokens: 1024,
      stream: true,
      messages: [{ role: 'user', content: 'Hello' }],
      context_management: { edits: [] },
    });
    expect(r).toMatchObject({
      protocol: 'anthropic',
      operation: 'generate',
      model: 'claude-opus-4-5',
      stream: true,
      maxOutputTokens: 1024,
      impliedOutputCap: null,
    });
    expect(r.promptTokens).toBeGreaterThan(countText('Hello'));
  });

  it('refuses mistakes with invalid_request and the field as param, never crashing on wrong types', () => {
    const m = [{ role: 'user', content: 'hi' }];
    const cases: [unknown, string][] = [
      [{ model: 'claude-x', messages: m }, 'max_tokens'],
      [{ model: 'claude-x', max_tokens: 0, messages: m }, 'max_tokens'],
      [{ model: 'claude-x', max_tokens: '10', messages: m }, 'max_tokens'],
      [{ model: 'claude-x', max_tokens: 1.5, messages: m }, 'max_tokens'],
      [{ max_tokens: 10, messages: m }, 'model'],
      [{ model: 42, max_tokens: 10, messages: m }, 'model'],
      [{ model: 'claude-x', max_tokens: 10 }, 'messages'],
      [{ model: 'claude-x', max_tokens: 10, messages: [] }, 'messages'],
      [{ model: 'claude-x', max_tokens: 10, messages: 'hi' }, 'messages'],
      [{ model: 'claude-x', max_tokens: 10, messages: [null] }, 'messages.0'],
      [{ model: 'claude-x', max_tokens: 10, messages: [{ role: 'bot', content: 'x' }] }, 'messages.0.role'],
      [{ model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: 5 }] }, 'messages.0.content'],
      [
        { model: 'claude-x', max_tokens: 10, messages: [{ role: 'user', content: [5] }] },
        'messages.0.content.0',
      ],
      [
        {
          model: 'claude-x',
          max_tokens: 10,
          messages: [{ role: 'user', content: [{ type: 'text', text: 1 }] }],
        },
        'messages.0.content.0.text',
      ],
      [
        {
          model: 'claude-x',
          max_tokens: 10,
          messages: [{ role: 'user', content: [{ type: 'tool_result', content: 'x' }] }],
        },
        'messages.0.content.0.tool_use_id',
      ],
      [{ model: 'claude-x', max_tokens: 10, messages: m, system: 5 }, 'system'],
      [{ model: 'claude-x', max_tokens: 10, messages: m, system: [{ type: 'text' }] }, 'system.0'],
      [{ model: 'claude-x', max_tokens: 10, messages: m, tools: {} }, 'tools'],
      [{ model: 'claude-x', max_tokens: 10, messages: m, tools: [{}] }, 'tools.0.name'],
      [{ model: 'claude-x', max_tokens: 10, messages: m, stream: 'yes' }, 'stream'],
      [{ model: 'claude-x', max_tokens: 10, messages: m, temperature: 'hot' }, 'temperature'],
      [{ model: 'claude-x', max_tokens: 10, messages: m, stop_sequences: [1] }, 'stop_sequences'],
      [{ model: 'claude-x', max_tokens: 10, messages: m, tool_choice: 'auto' }, 'tool_choice'],
      [{ model: 'claude-x', max_tokens: 10, messages: m, tool_choice: { type: 'tool' } }, 'tool_choice.name'],
    ];
    for (const [body, param] of cases) {
      const e = refusal(() => parse(body as Record<string, unknown>));
      expect(e.code, JSON.stringify(body)).toBe('invalid_request');
      expect(e.param, JSON.stringify(body)).toBe(param);
    }
  });

  it('counts system, messages, images, tool uses and results, and tool definitions (upper bound)', () => {
    const plain = counted({ model: 'c', max_tokens: 5, messages: [{ role: 'user', content: 'Tell me' }] });
    const withSystem = counted({
      model: 'c',
      max_tokens: 5,
      system: [{ type: 'text', text: 'You are a very helpful mole who digs.' }],
      messages: [{ role: 'user', content: 'Tell me' }],
    });
    expect(withSystem.promptTokens - plain.promptTokens).toBeGreaterThanOrEqual(
      countText('You are a very helpful mole who digs.'),
    );
    const withTools = counted({
      model: 'c',
      max_tokens: 5,
      tools: [weather],
      messages: [{ role: 'user', content: 'Tell me' }],
    });
    expect(withTools.promptTokens - plain.promptTokens).toBe(countText(JSON.stringify([weather])));
    const withImage = counted({
      model: 'c',
      max_tokens: 5,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Tell me' },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          ],
        },
      ],
    });
    expect(withImage.promptTokens - plain.promptTokens).toBeGreaterThanOrEqual(1445);
    const toolTurn = {
      model: 'c',
      max_tokens: 5,
      messages: [
        { role: 'user', content: 'Tell me' },
        {
          role: 'assistant',
          content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny and warm in Paris today' },
          ],
        },
      ],
    };
    const t = counted(toolTurn).promptTokens;
    expect(t - plain.promptTokens).toBeGreaterThanOrEqual(
      countText('sunny and warm in Paris today') + countText(JSON.stringify({ city: 'Paris' })),
    );
    expect(countMessagesTokens({ ...toolTurn, max_tokens: undefined })).toBe(t);
    expect(() => countMessagesTokens({ model: 'c', messages: [] })).toThrow(AppError);
  });
});

describe('anthropic codec: hour-long cache breakpoints', () => {
  const hour = { type: 'ephemeral', ttl: '1h' };
  const text = (cache_control?: unknown) => ({
    type: 'text',
    text: 'x',
    ...(cache_control ? { cache_control } : {}),
  });
  const ask = (extra: Record<string, unknown>, content: unknown[] = [text()]) =>
    parse({ model: 'm', max_tokens: 10, messages: [{ role: 'user', content }], ...extra }).cachesForHour;

  it('are found wherever a breakpoint may stand', () => {
    expect(ask({})).toBe(false);
    expect(ask({}, [text({ type: 'ephemeral' })])).toBe(false);
    expect(ask({ cache_control: hour })).toBe(true);
    expect(ask({ system: [text(hour)] })).toBe(true);
    expect(ask({ tools: [{ name: 't', input_schema: { type: 'object' }, cache_control: hour }] })).toBe(true);
    expect(ask({}, [text(hour)])).toBe(true);
    const result = { type: 'tool_result', tool_use_id: 'toolu_1', content: [text(hour)] };
    expect(ask({}, [result])).toBe(true);
    const doc = { type: 'document', source: { type: 'content', content: [text(hour)] } };
    expect(ask({}, [doc])).toBe(true);
    expect(ask({}, [{ ...result, content: [doc] }])).toBe(true);
  });
});

describe('anthropic codec: to and from canonical', () => {
  const body = {
    model: 'claude-x',
    max_tokens: 300,
    system: [
      { type: 'text', text: 'You are Claude Code.' },
      { type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } },
    ],
    temperature: 0.3,
    top_p: 0.9,
    stop_sequences: ['END'],
    tools: [weather, { type: 'web_search_20250305', name: 'web_search', max_uses: 3 }],
    tool_choice: { type: 'any' },
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Weather here?' },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } },
          { type: 'image', source: { type: 'url', url: 'https://example.com/a.jpg' } },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: 'hmm', signature: 'sig' },
          { type: 'text', text: 'Checking.' },
          { type: 'tool_use', id: 'toolu_A', name: 'get_weather', input: { city: 'Paris' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_A', content: [{ type: 'text', text: '21 C' }] },
          { type: 'text', text: 'And tomorrow?' },
        ],
      },
      {
        role: 'assistant',
        content: [{ type: 'tool_use', id: 'toolu_B', name: 'get_weather', input: {} }],
      },
      {
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: 'toolu_B', content: 'boom', is_error: true }],
      },
    ],
  };

  it('maps an Anthropic request to canonical form', () => {
    const c = codec.toCanonical(parse(body));
    expect(c.system).toEqual(['You are Claude Code.', 'Be brief.']);
    expect(c.tools).toEqual([
      { name: 'get_weather', description: 'Weather for a city', parameters: weather.input_schema },
    ]);
    expect(c.toolChoice).toBe('required');
    expect(c).toMatchObject({
      maxOutputTokens: 300,
      temperature: 0.3,
      topP: 0.9,
      stop: ['END'],
      stream: false,
    });
    expect(c.messages).toEqual([
      canon.user([
        'Weather here?',
        canon.image('data:image/png;base64,AAAA'),
        canon.image('https://example.com/a.jpg'),
      ]),
      canon.assistant('Checking.', canon.call('toolu_A', 'get_weather', '{"city":"Paris"}')),
      canon.tool('toolu_A', '21 C', { name: 'get_weather' }),
      canon.user('And tomorrow?'),
      canon.assistant([], canon.call('toolu_B', 'get_weather', '{}')),
      canon.tool('toolu_B', 'boom', { name: 'get_weather', isError: true }),
    ]);
    for (const [choice, want] of [
      [{ type: 'auto' }, 'auto'],
      [{ type: 'none' }, 'none'],
      [{ type: 'tool', name: 'get_weather' }, { name: 'get_weather' }],
    ] as const)
      expect(codec.toCanonical(parse({ ...body, tool_choice: choice })).toolChoice).toEqual(want);
  });

  it('reads a structured output schema from output_config.format, or the beta output_format', () => {
    const schema = { type: 'object', properties: { a: { type: 'string' } } };
    const format = { type: 'json_schema', schema };
    const want = { type: 'json_schema', name: 'response', schema, strict: true };
    expect(
      codec.toCanonical(parse({ ...body, output_config: { effort: 'low', format } })).responseFormat,
    ).toEqual(want);
    expect(codec.toCanonical(parse({ ...body, output_format: format })).responseFormat).toEqual(want);
    expect(codec.toCanonical(parse({ ...body, output_config: { effort: 'low' } })).responseFormat).toBeNull();
  });

  it('builds an Anthropic body from canonical form (OpenAI-style turns merged, ids made safe)', () => {
    const c = canon.request({
      system: ['Be brief.', 'Use tools.'],
      messages: [
        canon.user(['Weather?', canon.image('data:image/jpeg;base64,/9j/AA=='), '']),
        canon.assistant(
          [],
          canon.call('call_1', 'get_weather', '{"city":"Paris"}'),
          canon.call('call:2', 'get_weather', 'not json'),
        ),
        canon.tool('call_1', '21 C'),
        canon.tool('call:2', 'error', { isError: true }),
        canon.user('Thanks'),
      ],
      tools: [{ name: 'get_weather', description: 'Weather', parameters: { properties: {} } }],
      toolChoice: { name: 'get_weather' },
      temperature: 1.6,
      topP: 0.5,
      stop: ['\n', 'STOP'],
      stream: true,
    });
    expect(codec.fromCanonical(c, 'claude-up', 512)).toEqual({
      model: 'claude-up',
      max_tokens: 512,
      system: [
        { type: 'text', text: 'Be brief.' },
        { type: 'text', text: 'Use tools.' },
      ],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Weather?' },
            { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: '/9j/AA==' } },
          ],
        },
        {
          role: 'assistant',
          content: [
            { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
            { type: 'tool_use', id: 'call_2', name: 'get_weather', input: {} },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'call_1', content: [{ type: 'text', text: '21 C' }] },
            {
              type: 'tool_result',
              tool_use_id: 'call_2',
              content: [{ type: 'text', text: 'error' }],
              is_error: true,
            },
            { type: 'text', text: 'Thanks' },
          ],
        },
      ],
      tools: [
        { name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: {} } },
      ],
      tool_choice: { type: 'tool', name: 'get_weather' },
      temperature: 1,
      stop_sequences: ['STOP'],
      stream: true,
    });
    const one = codec.fromCanonical(
      { ...c, system: ['Only'], temperature: null, toolChoice: 'required' },
      'm',
      5,
    ) as Record<string, unknown>;
    expect(one.system).toBe('Only');
    expect(one.top_p).toBe(0.5);
    expect(one.temperature).toBeUndefined();
    expect(one.tool_choice).toEqual({ type: 'any' });
  });

  it('survives a round trip through canonical form', () => {
    const c = codec.toCanonical(parse(body));
    const again = codec.toCanonical(
      parse(
        codec.fromCanonical({ ...c, temperature: 0.3, topP: null }, 'claude-x', 300) as Record<
          string,
          unknown
        >,
      ),
    );
    expect(again.messages).toEqual(c.messages);
    expect(again.tools).toEqual(c.tools);
    expect(again.system).toEqual(c.system);
  });

  it('passes the body through with only the model replaced; forwards anthropic-* headers verbatim', () => {
    const r = parse({ ...body, context_management: { edits: [{ type: 'clear_tool_uses_20250919' }] } });
    const out = codec.passThroughBody(r, 'claude-upstream') as Record<string, unknown>;
    expect(out).toEqual({ ...r.body, model: 'claude-upstream' });
    expect(Object.keys(out)).toEqual(Object.keys(r.body));
    expect(
      codec.forwardedHeaders({
        'anthropic-version': '2023-06-01',
        'anthropic-beta': 'context-management-2025-06-27,interleaved-thinking-2025-05-14',
        'x-api-key': 'sk-secret',
        authorization: 'Bearer sk-secret',
        'x-claude-code-session-id': 'abc',
        'content-type': 'application/json',
      }),
    ).toEqual({
      'anthropic-version': '2023-06-01',
      'anthropic-beta': 'context-management-2025-06-27,interleaved-thinking-2025-05-14',
    });
  });
});

describe('anthropic codec: answers', () => {
  const recorded = {
    id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
    type: 'message',
    role: 'assistant',
    model: 'claude-opus-4-5',
    content: [
      { type: 'thinking', thinking: 'Let me think.', signature: 'EqQBCgIYAhIM' },
      { type: 'text', text: 'I will check.' },
      {
        type: 'tool_use',
        id: 'toolu_01A09q90qw90lq917835lq9',
        name: 'get_weather',
        input: { location: 'SF' },
      },
    ],
    stop_reason: 'tool_use',
    stop_sequence: null,
    usage: {
      input_tokens: 2095,
      cache_creation_input_tokens: 300,
      cache_read_input_tokens: 1200,
      output_tokens: 503,
      output_tokens_details: { thinking_tokens: 120 },
      service_tier: 'standard',
    },
  };

  it('decodes usage (input excludes cache), stop reasons and tool calls', () => {
    expect(codec.decodeAnswer(recorded)).toEqual({
      id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
      model: 'claude-opus-4-5',
      text: 'I will check.',
      reasoning: 'Let me think.',
      toolCalls: [canon.call('toolu_01A09q90qw90lq917835lq9', 'get_weather', '{"location":"SF"}')],
      stopReason: 'tool_calls',
      stopSequence: null,
      usage: { input: 2095, cacheRead: 1200, cacheWrite: 300, output: 503, reasoning: 120 },
    });
    const stops: [string | null, string][] = [
      ['end_turn', 'stop'],
      ['stop_sequence', 'stop'],
      ['max_tokens', 'length'],
      ['model_context_window_exceeded', 'length'],
      ['pause_turn', 'length'],
      ['tool_use', 'tool_calls'],
      ['refusal', 'content_filter'],
      [null, 'stop'],
    ];
    for (const [s, want] of stops)
      expect(codec.decodeAnswer({ ...recorded, stop_reason: s }).stopReason).toBe(want);
    const noUsage = codec.decodeAnswer({ ...recorded, usage: undefined });
    expect(noUsage.usage).toBeNull();
    expect(codec.decodeAnswer('garbage').text).toBe('');
  });

  it('recognises errors in 2xx bodies', () => {
    expect(
      codec.answerError({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }),
    ).toBe('Overloaded');
    expect(codec.answerError(recorded)).toBeNull();
    expect(codec.answerError(null)).toBeNull();
  });

  it('writes error bodies with Anthropic types for each status and the contract code', () => {
    const types: [number, string][] = [
      [400, 'invalid_request_error'],
      [401, 'authentication_error'],
      [403, 'permission_error'],
      [404, 'not_found_error'],
      [413, 'request_too_large'],
      [429, 'rate_limit_error'],
      [500, 'api_error'],
      [502, 'overloaded_error'],
      [529, 'overloaded_error'],
      [504, 'timeout_error'],
    ];
    for (const [status, type] of types)
      expect(codec.errorBody(status, 'some_code', 'msg', 'req_1', null)).toEqual({
        type: 'error',
        error: { type, message: 'msg', code: 'some_code' },
        request_id: 'req_1',
      });
  });
});

describe('anthropic codec: stream decoder', () => {
  it('reads a recorded stream the same way in any chunking', () => {
    const whole = decodeAll(RECORDED, RECORDED.length, baseReq);
    const want: StreamEvent[] = [
      { type: 'start', id: 'msg_014p7gG3wDgGV9EUtLvnow3U', model: 'claude-opus-4-5' },
      { type: 'usage', usage: { input: 472, cacheRead: 50, cacheWrite: 100, output: 2, reasoning: 0 } },
      { type: 'text', text: "Okay, let's check the weather." },
      { type: 'tool_call', index: 0, id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather' },
      { type: 'tool_args', index: 0, delta: '{"location": "San Francisco, CA"}' },
      { type: 'stop', reason: 'tool_calls', stopSequence: null },
      { type: 'usage', usage: { input: 472, cacheRead: 50, cacheWrite: 100, output: 89, reasoning: 0 } },
    ];
    expect(mergeDeltas(whole.events)).toEqual(want);
    expect(whole.dec.done).toBe(true);
    expect(whole.dec.usage).toEqual({ input: 472, cacheRead: 50, cacheWrite: 100, output: 89, reasoning: 0 });
    for (const size of [1, 3, 7, 64]) {
      const r = decodeAll(RECORDED, size, baseReq);
      expect(mergeDeltas(r.events)).toEqual(want);
      expect(r.dec.done).toBe(true);
    }
    const crlf = decodeAll(RECORDED.replace(/\n/g, '\r\n'), 5, baseReq);
    expect(mergeDeltas(crlf.events)).toEqual(want);
  });

  it('reads JSON written with spaces, thinking, and newer message_delta input fields', () => {
    const text = [
      'event: message_start\ndata: {"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 10, "output_tokens": 1}}}\n\n',
      'event: content_block_start\ndata: {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}\n\n',
      'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}\n\n',
      'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "abc"}}\n\n',
      'event: content_block_stop\ndata: {"type": "content_block_stop", "index": 0}\n\n',
      'event: some_future_event\ndata: {"type": "some_future_event"}\n\n',
      'event: message_delta\ndata: {"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": null}, "usage": {"input_tokens": 12, "cache_read_input_tokens": 3, "output_tokens": 40, "output_tokens_details": {"thinking_tokens": 30}}}\n\n',
      'event: message_stop\ndata: {"type": "message_stop"}\n\n',
    ].join('');
    const { events, dec } = decodeAll(text, 11, baseReq);
    expect(mergeDeltas(events)).toContainEqual({ type: 'reasoning', text: 'hmm' });
    expect(mergeDeltas(events)).toContainEqual({ type: 'stop', reason: 'length', stopSequence: null });
    expect(dec.usage).toEqual({ input: 12, cacheRead: 3, cacheWrite: 0, output: 40, reasoning: 30 });
    expect(dec.done).toBe(true);
  });

  it('is not done before message_stop; error events and unreadable frames break the stream', () => {
    const cut = decodeAll(RECORDED.slice(0, RECORDED.indexOf('event: message_delta')), 50, baseReq);
    expect(cut.dec.done).toBe(false);
    expect(cut.dec.usage?.output).toBe(2);

    const dec = codec.streamDecoder(baseReq);
    expect(dec.feed({ event: 'ping', data: '{"type": "ping"}', raw: '' }).events).toEqual([]);
    expect(() =>
      dec.feed({
        event: 'error',
        data: '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
        raw: '',
      }),
    ).toThrow(new StreamBroken('Overloaded'));
    expect(() => dec.feed({ event: 'content_block_delta', data: '{broken', raw: '' })).toThrow(StreamBroken);
    expect(() =>
      dec.feed({ event: null, data: '{"type":"error","error":{"message":"x"}}', raw: '' }),
    ).toThrow(StreamBroken);
  });
});

// ── encoder fidelity: the official SDK reads what the encoders write ─────────────────────────

describe('anthropic codec: encoders, read by @anthropic-ai/sdk', () => {
  let server: http.Server;
  let client: Anthropic;
  let reply: { status: number; type: string; body: string } = {
    status: 200,
    type: 'application/json',
    body: '',
  };

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(reply.status, { 'content-type': reply.type, 'request-id': 'req_test' });
        res.end(reply.body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    client = new Anthropic({ baseURL: `http://127.0.0.1:${port}`, apiKey: 'k', maxRetries: 0 });
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const req = parse({ model: 'claude-alias', max_tokens: 200, messages: [{ role: 'user', content: 'hi' }] });
  const answer = canon.answer({
    id: 'chatcmpl-abc123',
    model: 'gpt-4o',
    text: 'Let me look.',
    toolCalls: [canon.call('call_XYZ', 'get_weather', '{"city":"Paris"}')],
    stopReason: 'tool_calls',
    usage: { input: 80, cacheRead: 20, cacheWrite: 0, output: 30, reasoning: 0 },
  });
  /** `answer.usage` as the SDK reads it. */
  const SDK_USAGE = {
    input_tokens: 80,
    cache_read_input_tokens: 20,
    cache_creation_input_tokens: 0,
    cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
    output_tokens: 30,
  };

  it('a plain answer: text, tool call, stop reason and usage as the SDK reads them', async () => {
    reply = { status: 200, type: 'application/json', body: JSON.stringify(codec.encodeAnswer(answer, req)) };
    const m = await client.messages.create({ model: 'claude-alias', max_tokens: 200, messages: [] });
    expect(m.id).toBe('msg_chatcmpl-abc123');
    expect(m.model).toBe('claude-alias');
    expect(m.content).toEqual([
      { type: 'text', text: 'Let me look.' },
      { type: 'tool_use', id: 'call_XYZ', name: 'get_weather', input: { city: 'Paris' } },
    ]);
    expect(m.stop_reason).toBe('tool_use');
    expect(m.usage).toEqual(SDK_USAGE);
    const thought = codec.encodeAnswer(
      { ...answer, usage: { input: 1, cacheRead: 0, cacheWrite: 0, output: 9, reasoning: 4 } },
      req,
    );
    reply = { status: 200, type: 'application/json', body: JSON.stringify(thought) };
    const t = await client.messages.create({ model: 'claude-alias', max_tokens: 200, messages: [] });
    expect(t.usage.output_tokens).toBe(9);
    expect(t.usage.output_tokens_details?.thinking_tokens).toBe(4);
    const stops = [
      ['stop', null, 'end_turn'],
      ['stop', 'END', 'stop_sequence'],
      ['length', null, 'max_tokens'],
      ['content_filter', null, 'refusal'],
    ] as const;
    for (const [reason, seq, want] of stops) {
      const enc = codec.encodeAnswer(
        { ...answer, toolCalls: [], stopReason: reason, stopSequence: seq },
        req,
      );
      reply = { status: 200, type: 'application/json', body: JSON.stringify(enc) };
      const x = await client.messages.create({ model: 'claude-alias', max_tokens: 200, messages: [] });
      expect(x.stop_reason).toBe(want);
      expect(x.stop_sequence).toBe(seq);
    }
  });

  function encodeStream(events: StreamEvent[], usage = answer.usage!) {
    const enc = codec.streamEncoder(req, 'req_42');
    return events.map((e) => enc.event(e)).join('') + enc.finish(usage);
  }

  it('a stream: the SDK stream helper, its events and final message', async () => {
    reply = {
      status: 200,
      type: 'text/event-stream',
      body: encodeStream([
        { type: 'start', id: 'chatcmpl-s1', model: 'gpt-4o' },
        { type: 'reasoning', text: 'Thinking' },
        { type: 'reasoning', text: ' hard.' },
        { type: 'text', text: 'Hello' },
        { type: 'text', text: ' there.' },
        { type: 'tool_call', index: 0, id: 'call_1', name: 'get_weather' },
        { type: 'tool_args', index: 0, delta: '{"city":' },
        { type: 'tool_args', index: 0, delta: '"Paris"}' },
        { type: 'tool_call', index: 1, id: 'call_2', name: 'get_time' },
        { type: 'tool_args', index: 1, delta: '{}' },
        { type: 'usage', usage: answer.usage! },
        { type: 'stop', reason: 'tool_calls' },
      ]),
    };
    const stream = client.messages.stream({ model: 'claude-alias', max_tokens: 200, messages: [] });
    const texts: string[] = [];
    const thoughts: string[] = [];
    const json: string[] = [];
    stream.on('text', (t) => texts.push(t));
    stream.on('thinking', (t) => thoughts.push(t));
    stream.on('inputJson', (d) => json.push(d));
    const m = await stream.finalMessage();
    expect(texts.join('')).toBe('Hello there.');
    expect(thoughts.join('')).toBe('Thinking hard.');
    expect(json.join('')).toBe('{"city":"Paris"}{}');
    expect(m.id).toBe('msg_chatcmpl-s1');
    expect(m.model).toBe('claude-alias');
    expect(m.content).toEqual([
      { type: 'thinking', thinking: 'Thinking hard.', signature: '' },
      { type: 'text', text: 'Hello there.' },
      { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'call_2', name: 'get_time', input: {} },
    ]);
    expect(m.stop_reason).toBe('tool_use');
    expect(m.usage).toMatchObject(SDK_USAGE);
  });

  it('interleaved tool arguments: one block open at a time, no delta after its stop', async () => {
    const body = encodeStream([
      { type: 'start', id: 'chatcmpl-p', model: 'gpt-4o' },
      { type: 'tool_call', index: 0, id: 'call_A', name: 'read' },
      { type: 'tool_call', index: 1, id: 'call_B', name: 'grep' },
      { type: 'tool_args', index: 0, delta: '{"path":' },
      { type: 'tool_args', index: 1, delta: '{"q":' },
      { type: 'tool_args', index: 0, delta: '"a.ts"}' },
      { type: 'tool_args', index: 1, delta: '"x"}' },
      { type: 'stop', reason: 'tool_calls' },
    ]);
    const events = body
      .split('\n\n')
      .filter((f) => f.startsWith('event: content_block'))
      .map((f) => JSON.parse(f.slice(f.indexOf('data: ') + 6)) as { type: string; index: number });
    const closed = new Set<number>();
    let open: number | null = null;
    for (const e of events) {
      if (e.type === 'content_block_start') {
        expect(open).toBeNull();
        open = e.index;
      } else {
        expect(closed.has(e.index)).toBe(false);
        expect(e.index).toBe(open);
        if (e.type === 'content_block_stop') {
          closed.add(e.index);
          open = null;
        }
      }
    }
    reply = { status: 200, type: 'text/event-stream', body };
    const m = await client.messages
      .stream({ model: 'claude-alias', max_tokens: 200, messages: [] })
      .finalMessage();
    expect(m.content).toEqual([
      { type: 'tool_use', id: 'call_A', name: 'read', input: { path: 'a.ts' } },
      { type: 'tool_use', id: 'call_B', name: 'grep', input: { q: 'x' } },
    ]);
  });

  it('a text delta is the frame of its event object, whatever the text holds', () => {
    const enc = codec.streamEncoder(req, 'req_42');
    enc.event({ type: 'start', id: 'x', model: 'm' });
    enc.event({ type: 'text', text: 'opens block 0' });
    for (const text of [
      'plain',
      'quote " and \\ slash',
      'line\nbreak\ttab\u0000nul',
      '\u2028\u2029 é 漢 😀',
      '\ud800 lone',
    ]) {
      const data = { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } };
      expect(enc.event({ type: 'text', text })).toBe(
        `event: content_block_delta\ndata: ${JSON.stringify(data)}\n\n`,
      );
    }
  });

  it('a stream with no events still has a complete sequence; a stop sequence is reported', async () => {
    reply = {
      status: 200,
      type: 'text/event-stream',
      body: encodeStream([{ type: 'stop', reason: 'stop', stopSequence: 'END' }]),
    };
    const m = await client.messages
      .stream({ model: 'claude-alias', max_tokens: 5, messages: [] })
      .finalMessage();
    expect(m.content).toEqual([]);
    expect(m.stop_reason).toBe('stop_sequence');
    expect(m.stop_sequence).toBe('END');
    expect(m.id).toBe('msg_req_42');
  });

  it('error(): an event: error frame the SDK raises as an APIError of the right type', async () => {
    const enc = codec.streamEncoder(req, 'req_42');
    const body =
      enc.event({ type: 'start', id: 'x', model: 'm' }) +
      enc.event({ type: 'text', text: 'Hi' }) +
      enc.error('upstream_error', 'the upstream stream broke');
    expect(enc.finish(answer.usage!)).toBe('');
    reply = { status: 200, type: 'text/event-stream', body };
    const s = client.messages.stream({ model: 'claude-alias', max_tokens: 5, messages: [] });
    const err = await s.finalMessage().catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect(err.type).toBe('overloaded_error');
    expect(err.error).toEqual({
      type: 'error',
      error: { type: 'overloaded_error', message: 'the upstream stream broke', code: 'upstream_error' },
      request_id: 'req_42',
    });
  });

  it('errorBody: the SDK error class matches the status', async () => {
    reply = {
      status: 403,
      type: 'application/json',
      body: JSON.stringify(codec.errorBody(403, 'model_not_allowed', 'not for you', 'req_9')),
    };
    const err = await client.messages.create({ model: 'm', max_tokens: 5, messages: [] }).catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.PermissionDeniedError);
    expect(err.type).toBe('permission_error');
    expect(err.error.error.code).toBe('model_not_allowed');
  });
});

describe('anthropic codec: count_tokens', () => {
  it('counts a long prompt in slices, an event-loop turn apart (the endpoint is free: no stall)', async () => {
    const word = (i: number) => ['burrow', 'tunnel', 'mole'][i % 3]!;
    const long = Array.from({ length: 30_000 }, (_, i) => `${word(i)}${i % 89}`).join(' ');
    const body = { model: 'claude-x', messages: [{ role: 'user', content: long }] };
    const { value: answer, turns } = await turnsDuring(() => codec.countTokens(body));
    expect(turns).toBeGreaterThan(long.length / (16 * 1024) - 2);
    expect(answer).toEqual({ input_tokens: countMessagesTokens(body) });
  });

  it('answers {"input_tokens": N} with the same count as admission', async () => {
    const body = {
      model: 'claude-x',
      max_tokens: 10,
      tools: [weather],
      messages: [{ role: 'user', content: 'Hello' }],
    };
    expect(await codec.countTokens?.(body)).toEqual({ input_tokens: counted(body).promptTokens });
  });
});

describe('anthropic codec: channel faults', () => {
  it('an account out of credit or over its spend limit is the channel, not the request', () => {
    const body = (type: string, message: string) => ({ type: 'error', error: { type, message } });
    expect(
      codec.channelFault?.(
        400,
        body(
          'invalid_request_error',
          'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.',
        ),
      ),
    ).toBe(true);
    expect(
      codec.channelFault?.(
        400,
        body('invalid_request_error', 'You have reached your specified workspace API usage limits.'),
      ),
    ).toBe(true);
    expect(codec.channelFault?.(402, body('billing_error', 'Billing issue'))).toBe(true);
    expect(codec.channelFault?.(400, body('invalid_request_error', 'max_tokens: Field required'))).toBe(
      false,
    );
    expect(codec.channelFault?.(400, 'garbage')).toBe(false);
  });
});
