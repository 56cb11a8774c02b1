import { describe, expect, it } from 'vitest';
import * as canon from '../../../test/helpers/canonical.js';
import { mockUpstreamFor, testTimeouts } from '../../../test/helpers/mock-upstream.js';
import { testChannel } from '../../../test/helpers/channel.js';
import { type StreamEvent, StreamBroken } from '../canonical.js';
import { anthropicCodec } from '../protocols/anthropic.js';
import { SseFrameParser } from '../sse.js';
import { readAll, type UpstreamBody } from '../upstream-body.js';
import { createAnthropicTransport, messagesUrl } from './anthropic.js';
import type { UpstreamCall } from './transport.js';

const KEY = 'sk-ant-channel';
const transport = createAnthropicTransport(testTimeouts());
const upstream = mockUpstreamFor(KEY, transport);

const channel = (baseUrl: string, apiKey = KEY) =>
  testChannel({ name: 'claude', type: 'anthropic', baseUrl, apiKey, models: ['claude-x'] });

const body = { model: 'claude-x', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] };

function call(over: Partial<UpstreamCall> = {}): UpstreamCall {
  return {
    channel: channel(upstream.origin),
    protocol: 'anthropic',
    operation: 'generate',
    model: 'claude-x',
    body,
    stream: false,
    signal: new AbortController().signal,
    headers: {},
    ...over,
  };
}

async function text(r: UpstreamBody): Promise<string> {
  return (await readAll(r, 1 << 20)).toString();
}

describe('anthropic transport', () => {
  it('serves generation only, in the Anthropic protocol', () => {
    const ch = channel(upstream.origin);
    expect(transport.protocols(ch, 'generate')).toEqual(['anthropic']);
    expect(transport.protocols(ch, 'embeddings')).toEqual([]);
    expect(transport.protocols(ch, 'completions')).toEqual([]);
  });

  it('tolerates a trailing slash, /v1 or the whole /v1/messages on base_url', () => {
    for (const suffix of ['', '/', '/v1', '/v1/', '/v1/messages', '/v1/messages/'])
      expect(messagesUrl(`https://api.anthropic.com${suffix}`)).toBe('https://api.anthropic.com/v1/messages');
  });

  it('posts to /v1/messages with x-api-key and the default anthropic-version', async () => {
    for (const base of [upstream.origin, `${upstream.origin}/`, `${upstream.origin}/v1`]) {
      const r = await transport.send(call({ channel: channel(base) }));
      expect(r.status).toBe(200);
      const json = JSON.parse(await text(r.body));
      expect(json.type).toBe('message');
      expect(json.usage.output_tokens).toBe(4);
    }
    const rec = upstream.mock.requests[0]!;
    expect(rec.path).toBe('/v1/messages');
    expect(rec.headers['x-api-key']).toBe(KEY);
    expect(rec.headers.authorization).toBeUndefined();
    expect(rec.headers['anthropic-version']).toBe('2023-06-01');
    expect(rec.headers.accept).toBe('application/json');
    expect(rec.body).toEqual(body);
  });

  it("forwards the client's anthropic-* headers verbatim (its anthropic-version wins) and streams SSE", async () => {
    const r = await transport.send(
      call({
        stream: true,
        body: { ...body, stream: true, context_management: { edits: [] } },
        headers: { 'anthropic-version': '2026-10-21', 'anthropic-beta': 'context-management-2025-06-27' },
      }),
    );
    expect(r.status).toBe(200);
    const sse = await text(r.body);
    expect(sse).toContain('event: message_start');
    expect(sse).toContain('event: message_stop');
    const rec = upstream.mock.requests[0]!;
    expect(rec.headers['anthropic-version']).toBe('2026-10-21');
    expect(rec.headers['anthropic-beta']).toBe('context-management-2025-06-27');
    expect(rec.headers.accept).toBe('text/event-stream');
  });

  it("returns the upstream's error status and body untouched", async () => {
    const bad = await transport.send(call({ channel: channel(upstream.origin, 'wrong') }));
    expect(bad.status).toBe(401);
    expect(JSON.parse(await text(bad.body))).toMatchObject({
      type: 'error',
      error: { type: 'authentication_error', message: 'invalid x-api-key' },
    });
    upstream.mock.setScenario('claude-x', { status: 529, times: 1 });
    const busy = await transport.send(call());
    expect(busy.status).toBe(529);
    expect(JSON.parse(await text(busy.body)).error.type).toBe('overloaded_error');
  });

  it('turns connection failures and timeouts into UpstreamFailure', async () => {
    const err = await transport.send(call({ channel: channel('http://127.0.0.1:1') })).catch((e) => e);
    expect(err.message).toMatch(/upstream connection failed/);
    expect(err.timeout).toBe(false);
    upstream.mock.setScenario('claude-x', { firstByteDelayMs: 2000, times: 1 });
    const slow = createAnthropicTransport(testTimeouts({ connectMs: 1000, firstByteMs: 200, idleMs: 1000 }));
    const t = await slow.send(call()).catch((e) => e);
    expect(t.timeout).toBe(true);
    await slow.close();
  });
});

describe('anthropic codec against the mock, through the transport', () => {
  const req = anthropicCodec.parseRequest(
    { model: 'claude-x', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'hi' }] },
    { protocol: 'anthropic', operation: 'generate' },
    4096,
  );

  async function decode(over: Partial<UpstreamCall>) {
    const r = await transport.send(
      call({ stream: true, body: { ...body, max_tokens: 50, stream: true }, ...over }),
    );
    const parser = new SseFrameParser();
    const dec = anthropicCodec.streamDecoder(req);
    const events: StreamEvent[] = [];
    let broken: unknown = null;
    try {
      await r.body.consume((chunk) => {
        for (const f of parser.feed(chunk)) events.push(...dec.feed(f).events);
      });
    } catch (e) {
      broken = e;
    }
    return { dec, events, broken };
  }

  it('reads its streams: usage with cache fields, done at message_stop, spaced JSON alike', async () => {
    for (const spacedJson of [false, true]) {
      upstream.mock.setScenario('claude-x', { cachedTokens: 2, cacheWriteTokens: 1, spacedJson, times: 1 });
      const { dec, events, broken } = await decode({});
      expect(broken).toBeNull();
      expect(dec.done).toBe(true);
      const text = events.flatMap((e) => (e.type === 'text' ? [e.text] : [])).join('');
      expect(text.split(' ').length).toBe(16);
      expect(dec.usage).toMatchObject({ cacheRead: 2, cacheWrite: 1, output: 16 });
      expect(events).toContainEqual({ type: 'stop', reason: 'stop', stopSequence: null });
    }
  });

  it('garbage and error events break the stream; a cut stream is not done', async () => {
    upstream.mock.setScenario('claude-x', { garbageAfterChunks: 2, times: 1 });
    expect((await decode({})).broken).toBeInstanceOf(StreamBroken);
    upstream.mock.setScenario('claude-x', { midStreamError: 2, times: 1 });
    const mid = await decode({});
    expect(mid.broken).toBeInstanceOf(StreamBroken);
    expect((mid.broken as Error).message).toBe('Overloaded');
    upstream.mock.setScenario('claude-x', { cutAfterChunks: 3, times: 1 });
    const cut = await decode({});
    expect(cut.dec.done).toBe(false);
  });

  it('a translated body (fromCanonical) is one the mock accepts; decodeAnswer reads its tool call', async () => {
    const c = canon.request({
      system: ['Be brief.'],
      messages: [
        canon.user('Weather?'),
        canon.assistant([], canon.call('call_1', 'get_weather', '{"city":"Oslo"}')),
        canon.tool('call_1', 'cold'),
        canon.user('And Paris?'),
      ],
      tools: [
        {
          name: 'get_weather',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        },
      ],
      toolChoice: 'auto',
      temperature: 0.2,
    });
    const r = await transport.send(call({ body: anthropicCodec.fromCanonical(c, 'claude-x', 64) }));
    expect(r.status).toBe(200);
    // The last turn carries a tool result: the mock answers text.
    const after = anthropicCodec.decodeAnswer(JSON.parse(await text(r.body)));
    expect(after.stopReason).toBe('stop');
    expect(after.text.length).toBeGreaterThan(0);
    const r2 = await transport.send(
      call({
        body: anthropicCodec.fromCanonical({ ...c, messages: c.messages.slice(0, 1) }, 'claude-x', 64),
      }),
    );
    const a = anthropicCodec.decodeAnswer(JSON.parse(await text(r2.body)));
    expect(a.stopReason).toBe('tool_calls');
    expect(a.toolCalls).toEqual([
      { id: expect.stringMatching(/^toolu_/), name: 'get_weather', arguments: '{"city":"mole"}' },
    ]);
    expect(a.usage?.output).toBeGreaterThan(0);
  });
});
