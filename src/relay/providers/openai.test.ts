// postJson over Agent.dispatch, against a local server: what undici's request() used to give
// the relay (timeouts, aborts, limits, failures mid-body, connection reuse) still holds.
import type http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { localHttpServer } from '../../../test/helpers/local-http.js';
import { testChannel } from '../../../test/helpers/channel.js';
import { testTimeouts } from '../../../test/helpers/mock-upstream.js';
import { readAll } from '../upstream-body.js';
import { postJson, upstreamAgent } from './openai.js';
import { AttemptSignal, type UpstreamCall, UpstreamFailure } from './transport.js';

let connections = 0;
const received: { headers: http.IncomingHttpHeaders; body: string }[] = [];
const agent = upstreamAgent(testTimeouts({ firstByteMs: 300, idleMs: 300 }));

const local = localHttpServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    received.push({ headers: req.headers, body });
    switch (req.url) {
      case '/json':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
        break;
      case '/big':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(Buffer.alloc(3 * 1024 * 1024, 'a'));
        break;
      case '/cut': // part of a body, then the connection drops
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"partial"', () => res.socket?.destroy());
        break;
      case '/stream': // headers and one frame, then the body stays open
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: 1\n\n');
        break;
      // '/slow' never answers
    }
  });
});
local.server.on('connection', () => connections++);
afterAll(() => agent.close());

const call = (over: Partial<UpstreamCall> = {}): UpstreamCall => ({
  channel: testChannel({
    name: 'up',
    type: 'openai',
    baseUrl: local.url,
    apiKey: 'sk-test-key',
    models: ['m'],
  }),
  protocol: 'openai',
  operation: 'generate',
  model: 'm',
  body: { model: 'm', messages: [] },
  stream: false,
  signal: new AttemptSignal(),
  headers: {},
  ...over,
});

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a failure');
}

describe('postJson', () => {
  it('posts the JSON body with its headers and reuses the connection for the next call', async () => {
    const before = connections;
    for (let i = 0; i < 3; i++) {
      // The pool takes the connection back after the answer's end, in a later tick.
      await new Promise((r) => setImmediate(r));
      const res = await postJson(agent, `${local.url}/json`, call({ headers: { 'x-client': 'a' } }), {
        authorization: 'Bearer sk-test-key',
      });
      expect(res.status).toBe(200);
      expect((await readAll(res.body, 1024)).toString()).toBe('{"ok":true}');
    }
    expect(connections - before).toBe(1);
    const last = received[received.length - 1]!;
    expect(JSON.parse(last.body)).toEqual({ model: 'm', messages: [] });
    expect(last.headers).toMatchObject({
      'content-type': 'application/json',
      accept: 'application/json',
      authorization: 'Bearer sk-test-key',
      'x-client': 'a',
    });
  });

  it('sends a body given as JSON text or bytes exactly as given', async () => {
    const text = '{ "model": "m",  "messages": [], "z": 1, "a": 2 }';
    for (const body of [text, Buffer.from(text)]) {
      const res = await postJson(agent, `${local.url}/json`, call({ body }), {});
      await readAll(res.body, 1024);
      expect(received[received.length - 1]!.body).toBe(text);
    }
  });

  it('refuses an answer over the limit', async () => {
    const res = await postJson(agent, `${local.url}/big`, call(), {});
    const err = await rejection(readAll(res.body, 1024 * 1024));
    expect(err).toBeInstanceOf(UpstreamFailure);
    expect(err.message).toBe('upstream answer too large');
  });

  it('fails a body whose connection drops before its end', async () => {
    const res = await postJson(agent, `${local.url}/cut`, call(), {});
    expect(res.status).toBe(200);
    const err = await rejection(readAll(res.body, 1024));
    expect(err.message).toMatch(/other side closed|socket/i);
  });

  it('aborts a body being read when the attempt is aborted, and lets go of the signal', async () => {
    const signal = new AttemptSignal();
    const res = await postJson(agent, `${local.url}/stream`, call({ signal, stream: true }), {});
    expect(received[received.length - 1]!.headers.accept).toBe('text/event-stream');
    const frames: string[] = [];
    const err = await rejection(
      res.body.consume((c) => {
        frames.push(c.toString());
        signal.abort();
      }),
    );
    expect(frames).toEqual(['data: 1\n\n']);
    expect(err.name).toBe('AbortError');
    expect(signal.listenerCount('abort')).toBe(0);
  });

  it('fails a call aborted before its headers, or before it started, as an UpstreamFailure', async () => {
    const signal = new AttemptSignal();
    const arrived = local.arrivals(1);
    const pending = rejection(postJson(agent, `${local.url}/slow`, call({ signal }), {}));
    await arrived;
    signal.abort();
    expect(await pending).toBeInstanceOf(UpstreamFailure);
    expect(signal.listenerCount('abort')).toBe(0);

    const ac = new AbortController();
    ac.abort();
    const early = await rejection(postJson(agent, `${local.url}/json`, call({ signal: ac.signal }), {}));
    expect(early).toBeInstanceOf(UpstreamFailure);
  });

  it('times out waiting for headers (upstream timed out) and between body chunks', async () => {
    const slow = await rejection(postJson(agent, `${local.url}/slow`, call(), {}));
    expect(slow).toBeInstanceOf(UpstreamFailure);
    expect(slow.message).toBe('upstream timed out');
    expect((slow as UpstreamFailure).timeout).toBe(true);

    const res = await postJson(agent, `${local.url}/stream`, call({ stream: true }), {});
    const idle = await rejection(res.body.consume(() => {}));
    // relayStream reports any error named for a timeout as 'upstream timed out'.
    expect(idle.name).toBe('BodyTimeoutError');
  });

  it('fails a dead upstream as an UpstreamFailure', async () => {
    const err = await rejection(postJson(agent, 'http://127.0.0.1:1/x', call(), {}));
    expect(err).toBeInstanceOf(UpstreamFailure);
    expect(err.message).toMatch(/^upstream connection failed/);
  });
});
