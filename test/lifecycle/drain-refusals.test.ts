// While the gateway drains, a request that still arrives on an open connection (here one sent
// on a connection whose stream is under way) is refused in its protocol's error shape with an
// x-request-id and a retry-after, not with Fastify's bare 503.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer, userWithKey } from '../helpers/server.js';
import { type MockProvider, startMockProvider } from '../mock-provider/server.js';
import { addChannel, setPrice } from '../relay/relay-helpers.js';

/**
 * Sends `first` on a connection; once its answer begins, calls `meanwhile` and then sends
 * `second` on the same connection. Answers all it got until the connection closed.
 */
function oneConnection(url: string, first: string, meanwhile: () => void, second: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    let out = '';
    let sent = false;
    const sock = net.connect(Number(u.port), u.hostname, () => sock.write(first));
    sock.on('data', (d) => {
      out += d;
      if (!sent) {
        sent = true;
        meanwhile();
        sock.write(second);
      }
    });
    sock.on('close', () => resolve(out));
    sock.on('error', (e) => (out ? resolve(out) : reject(e)));
  });
}

const post = (path: string, headers: Record<string, string>, body: unknown) => {
  const text = JSON.stringify(body);
  const lines = Object.entries({
    ...headers,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
  });
  return `POST ${path} HTTP/1.1\r\nhost: gateway\r\n${lines.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${text}`;
};

describe('requests that arrive while the gateway drains', () => {
  let s: TestServer | null = null;
  let mock: MockProvider | null = null;
  afterEach(async () => {
    await s?.close();
    await mock?.close();
  });

  it('are refused in their protocol’s shape, after the answer under way ends whole', async () => {
    mock = await startMockProvider({ apiKey: 'up-drain' });
    mock.setScenario('slow-drain', { chunkDelayMs: 60, completionTokens: 8 });
    s = await startTestServer();
    await addChannel(s, {
      type: 'openai',
      base_url: mock.url,
      api_key: 'up-drain',
      models: ['slow-drain'],
    });
    await setPrice(s, 'slow-drain', { input: 1, output: 2 });
    const { secret } = await userWithKey(s);
    const server = s;
    const stream = post(
      '/v1/chat/completions',
      { authorization: `Bearer ${secret}` },
      {
        model: 'slow-drain',
        stream: true,
        messages: [{ role: 'user', content: 'drain' }],
      },
    );
    const anthropic = post(
      '/v1/messages',
      { 'x-api-key': secret, 'anthropic-version': '2023-06-01' },
      {
        model: 'slow-drain',
        max_tokens: 8,
        messages: [{ role: 'user', content: 'too late' }],
      },
    );
    let closing: Promise<void> = Promise.resolve();
    const raw = await oneConnection(
      s.url,
      stream,
      () => {
        closing = server.app.close();
      },
      anthropic,
    );
    await closing;
    const [first, second] = raw.split(/(?=HTTP\/1\.1 )/);
    expect(first).toMatch(/^HTTP\/1\.1 200/);
    expect(first).toContain('data: [DONE]');
    expect(second).toMatch(/^HTTP\/1\.1 503/);
    const [head, body] = second!.split('\r\n\r\n');
    expect(head).toMatch(/\r\nx-request-id: req_/i);
    expect(head).toMatch(/\r\nretry-after: 1/i);
    expect(JSON.parse(body!)).toMatchObject({
      type: 'error',
      error: { type: 'overloaded_error', message: 'The gateway is shutting down: retry the request.' },
    });
  });
});
