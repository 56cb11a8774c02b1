import { describe, expect, it } from 'vitest';
import { mockUpstreamFor, testTimeouts } from '../../../test/helpers/mock-upstream.js';
import { testChannel } from '../../../test/helpers/channel.js';
import { SseFrameParser } from '../sse.js';
import { readAll } from '../upstream-body.js';
import { geminiOrigin } from '../../channels/base-url.js';
import { createGeminiTransport, geminiUrl } from './gemini.js';
import { UpstreamFailure } from './transport.js';

const KEY = 'AIzaTransportKey';
const transport = createGeminiTransport(testTimeouts());
const upstream = mockUpstreamFor(KEY, transport);

const channel = (baseUrl: string, apiKey = KEY) =>
  testChannel({ name: 'g', type: 'gemini', baseUrl, apiKey, models: ['gemini-2.5-flash'] });

const call = (baseUrl: string, stream: boolean, model = 'gemini-2.5-flash', apiKey = KEY) =>
  transport.send({
    channel: channel(baseUrl, apiKey),
    protocol: 'gemini',
    operation: 'generate',
    model,
    body: { contents: [{ role: 'user', parts: [{ text: 'hi' }] }], generationConfig: { maxOutputTokens: 3 } },
    stream,
    signal: AbortSignal.timeout(5000),
    headers: {},
  });

describe('gemini transport', () => {
  it('speaks gemini for generate and embeddings', () => {
    expect(transport.protocols(channel(upstream.origin), 'generate')).toEqual(['gemini']);
    expect(transport.protocols(channel(upstream.origin), 'embeddings')).toEqual(['gemini']);
    expect(transport.protocols(channel(upstream.origin), 'completions')).toEqual([]);
  });

  it('builds the URL from a bare origin, tolerating a trailing / or /v1beta and a models/ prefix', () => {
    for (const suffix of ['', '/', '/v1beta', '/v1beta/'])
      expect(geminiOrigin(`https://g.example${suffix}`)).toBe('https://g.example');
    expect(geminiUrl('https://g.example', 'models/gemini-2.5-flash', 'generateContent')).toBe(
      'https://g.example/v1beta/models/gemini-2.5-flash:generateContent',
    );
    expect(geminiUrl('https://g.example/v1beta', 'tuned/x y', 'streamGenerateContent?alt=sse')).toBe(
      'https://g.example/v1beta/models/tuned%2Fx%20y:streamGenerateContent?alt=sse',
    );
  });

  it('posts a plain generate call with x-goog-api-key and reads the answer', async () => {
    const res = await call(`${upstream.origin}/`, false);
    expect(res.status).toBe(200);
    const json = JSON.parse((await readAll(res.body, 1 << 20)).toString());
    expect(json.candidates[0].finishReason).toBe('MAX_TOKENS');
    const rec = upstream.mock.requests[0]!;
    expect(rec.path).toBe('/v1beta/models/gemini-2.5-flash:generateContent');
    expect(rec.headers['x-goog-api-key']).toBe(KEY);
    expect(rec.headers.authorization).toBeUndefined();
    expect(rec.body).toEqual({
      contents: [{ role: 'user', parts: [{ text: 'hi' }] }],
      generationConfig: { maxOutputTokens: 3 },
    });
  });

  it('streams SSE frames', async () => {
    const res = await call(`${upstream.origin}/v1beta`, true, 'models/gemini-2.5-flash');
    expect(res.status).toBe(200);
    const parser = new SseFrameParser();
    const frames = [];
    await res.body.consume((chunk) => void frames.push(...parser.feed(chunk)));
    frames.push(...parser.end());
    expect(frames).toHaveLength(4);
    expect(JSON.parse(frames[3]!.data).candidates[0].finishReason).toBe('MAX_TOKENS');
    expect(upstream.mock.requests[0]!.path).toBe(
      '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse',
    );
  });

  it('passes upstream errors through as status and body; a dead upstream is an UpstreamFailure', async () => {
    const res = await call(upstream.origin, false, 'gemini-2.5-flash', 'AIzaWrong');
    expect(res.status).toBe(400);
    const body = await readAll(res.body, 1 << 20);
    expect(JSON.parse(body.toString()).error.status).toBe('INVALID_ARGUMENT');
    await expect(call('http://127.0.0.1:1', false)).rejects.toBeInstanceOf(UpstreamFailure);
  });
});
