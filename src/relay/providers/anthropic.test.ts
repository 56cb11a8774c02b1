import type { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type MockProvider, startMockProvider } from '../../../test/mock-provider/server.js';
import type { Channel } from '../../channels/service.js';
import { createAnthropicTransport, messagesUrl } from './anthropic.js';
import type { UpstreamCall } from './transport.js';

const KEY = 'sk-ant-channel';
let mock: MockProvider;
let origin: string;
const transport = createAnthropicTransport({
  connectMs: 2000,
  firstByteMs: 5000,
  idleMs: 5000,
  maxConnections: 0,
});

function channel(baseUrl: string, apiKey = KEY): Channel {
  return {
    id: 1,
    name: 'claude',
    type: 'anthropic' as Channel['type'],
    baseUrl,
    apiKey,
    models: ['claude-x'],
    serves: (() => true) as unknown as Channel['serves'],
    modelMap: {},
    priority: 0,
    weight: 1,
    groups: null,
    status: 'active',
  };
}

const body = { model: 'claude-x', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] };

function call(over: Partial<UpstreamCall> = {}): UpstreamCall {
  return {
    channel: channel(origin),
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

async function text(r: Readable): Promise<string> {
  let s = '';
  for await (const c of r) s += c.toString();
  return s;
}

beforeAll(async () => {
  mock = await startMockProvider({ apiKey: KEY });
  origin = mock.url.replace(/\/v1$/, '');
});
afterAll(async () => {
  await transport.close();
  await mock.close();
});
beforeEach(() => mock.reset());

describe('anthropic transport', () => {
  it('serves generation only, in the Anthropic protocol', () => {
    const ch = channel(origin);
    expect(transport.protocols(ch, 'generate')).toEqual(['anthropic']);
    expect(transport.protocols(ch, 'embeddings')).toEqual([]);
    expect(transport.protocols(ch, 'completions')).toEqual([]);
  });

  it('tolerates a trailing slash or /v1 on base_url', () => {
    for (const b of [
      'https://api.anthropic.com',
      'https://api.anthropic.com/',
      'https://api.anthropic.com/v1',
      'https://api.anthropic.com/v1/',
    ])
      expect(messagesUrl(b)).toBe('https://api.anthropic.com/v1/messages');
  });

  it('posts to /v1/messages with x-api-key and the default anthropic-version', async () => {
    for (const base of [origin, `${origin}/`, `${origin}/v1`]) {
      const r = await transport.send(call({ channel: channel(base) }));
      expect(r.status).toBe(200);
      const json = JSON.parse(await text(r.body));
      expect(json.type).toBe('message');
      expect(json.usage.output_tokens).toBe(4);
    }
    const rec = mock.requests[0]!;
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
    const rec = mock.requests[0]!;
    expect(rec.headers['anthropic-version']).toBe('2026-10-21');
    expect(rec.headers['anthropic-beta']).toBe('context-management-2025-06-27');
    expect(rec.headers.accept).toBe('text/event-stream');
  });

  it("returns the upstream's error status and body untouched", async () => {
    const bad = await transport.send(call({ channel: channel(origin, 'wrong') }));
    expect(bad.status).toBe(401);
    expect(JSON.parse(await text(bad.body))).toMatchObject({
      type: 'error',
      error: { type: 'authentication_error', message: 'invalid x-api-key' },
    });
    mock.setScenario('claude-x', { status: 529, times: 1 });
    const busy = await transport.send(call());
    expect(busy.status).toBe(529);
    expect(JSON.parse(await text(busy.body)).error.type).toBe('overloaded_error');
  });

  it('turns connection failures and timeouts into UpstreamFailure', async () => {
    const err = await transport.send(call({ channel: channel('http://127.0.0.1:1') })).catch((e) => e);
    expect(err.message).toMatch(/upstream connection failed/);
    expect(err.timeout).toBe(false);
    mock.setScenario('claude-x', { firstByteDelayMs: 2000, times: 1 });
    const slow = createAnthropicTransport({
      connectMs: 1000,
      firstByteMs: 200,
      idleMs: 1000,
      maxConnections: 0,
    });
    const t = await slow.send(call()).catch((e) => e);
    expect(t.timeout).toBe(true);
    await slow.close();
  });
});
