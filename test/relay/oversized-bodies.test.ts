// A body over the limit is refused with 413 `request_too_large`, and the client must be able to
// read that answer. A client sends the whole body before it reads: when the gateway answered and
// closed at once, the rest of a multi-megabyte upload met a closed socket and the SDKs reported
// a connection error (and retried the upload) instead of the 413. The gateway now reads and
// discards what is left of a refused body, up to a bound, so the answer arrives. The gateway
// runs as a process of its own: in this process the race that lost the answer never showed.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REFUSED_BODY_DRAIN_BYTES } from '../../src/http/refused-body.js';
import {
  type GatewayProcess,
  killGatewayProcesses,
  startGatewayProcess,
  waitFor,
} from '../helpers/process.js';
import { type MockProvider, startMockProvider } from '../mock-provider/server.js';
import { sdkError } from './relay-helpers.js';

const MAX_BODY = 100_000;
/** Far past what socket buffers take in before the client has to wait for the server to read. */
const BIG = 12 * 1024 * 1024;
const MASTER = 'mk-oversized-0123456789abcdef';

/**
 * As an adversary would: a raw socket that posts a chunked body for ever (up to twice the drain
 * bound) and reads nothing. Resolves once the server closed it: what was sent, and its answer.
 */
function endlessUpload(base: string, authorization: string): Promise<{ sent: number; answer: string }> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const sock = net.connect(Number(url.port), url.hostname);
    let sent = 0;
    let answer = '';
    sock.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    sock.on('error', () => {});
    sock.on('close', () => resolve({ sent, answer }));
    sock.write(
      'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n' +
        `authorization: ${authorization}\r\ntransfer-encoding: chunked\r\n\r\n`,
    );
    const size = 1024 * 1024;
    const chunk = Buffer.concat([
      Buffer.from(`${size.toString(16)}\r\n`),
      Buffer.alloc(size, 'z'),
      Buffer.from('\r\n'),
    ]);
    const pump = () => {
      while (!sock.destroyed && sent < REFUSED_BODY_DRAIN_BYTES * 2) {
        sent += size;
        if (!sock.write(chunk)) return void sock.once('drain', pump);
      }
      sock.destroy();
    };
    pump();
  });
}

describe('bodies over the limit', () => {
  const model = 'big-model';
  let g: GatewayProcess;
  let mock: MockProvider;
  let dataDir: string;
  let secret: string;
  let keyId: number;
  const openai = () => new OpenAI({ baseURL: `${g.base}/v1`, apiKey: secret, maxRetries: 0 });

  beforeAll(async () => {
    mock = await startMockProvider({ recordRequests: false });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-oversized-'));
    g = await startGatewayProcess(MASTER, {
      MOLE_DATA_DIR: dataDir,
      MOLE_MAX_BODY_BYTES: String(MAX_BODY),
      MOLE_FLUSH_INTERVAL_MS: '50',
    });
    await g.api('POST', '/api/channels', {
      name: 'mock',
      type: 'openai',
      base_url: mock.url,
      api_key: 'x',
      models: [model],
    });
    await g.api('PUT', `/api/prices/${model}`, { input: 1, output: 2 });
    const user = await g.api('POST', '/api/users', {
      username: 'big-bodies',
      password: 'big-bodies-pass',
      balance: 10,
    });
    const key = await g.api('POST', '/api/keys', { name: 'big', user_id: user.id });
    secret = key.key;
    keyId = key.id;
  });
  afterAll(async () => {
    killGatewayProcesses();
    await mock?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('each official SDK reads the 413 of a multi-megabyte body, in its own protocol', async () => {
    const text = 'x'.repeat(BIG);
    const o = await sdkError(
      openai().chat.completions.create({ model, messages: [{ role: 'user', content: text }] }),
    );
    expect([o.status, o.code]).toEqual([413, 'request_too_large']);

    const anthropic = new Anthropic({ baseURL: g.base, apiKey: secret, maxRetries: 0 });
    const a = await anthropic.messages
      .create({ model, max_tokens: 16, messages: [{ role: 'user', content: text }] })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(a).toBeInstanceOf(Anthropic.APIError);
    expect((a as InstanceType<typeof Anthropic.APIError>).status).toBe(413);
    expect((a as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({
      type: 'error',
      error: { type: 'request_too_large', code: 'request_too_large' },
    });

    const gemini = new GoogleGenAI({ apiKey: secret, httpOptions: { baseUrl: g.base } });
    const ge = await gemini.models.generateContent({ model, contents: text }).then(
      () => null,
      (e: unknown) => e as { status?: number; message?: string },
    );
    expect(ge?.status).toBe(413);
    expect(ge?.message).toContain('INVALID_ARGUMENT');

    const logs = async () =>
      (await g.api('GET', `/api/logs?key_id=${keyId}`)).data as {
        status: number;
        error_code: string;
        cost: number;
      }[];
    await waitFor(async () => (await logs()).length === 3, 10_000, 'three log rows');
    expect((await logs()).map((r) => [r.status, r.error_code, r.cost])).toEqual([
      [413, 'request_too_large', 0],
      [413, 'request_too_large', 0],
      [413, 'request_too_large', 0],
    ]);
  });

  it('the connection that carried a refused body serves the next request', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const send = (body: string) =>
        new Promise<{ status: number; socket: unknown; text: string }>((resolve, reject) => {
          const req = http.request(
            `${g.base}/v1/chat/completions`,
            {
              method: 'POST',
              agent,
              headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
            },
            (res) => {
              let text = '';
              res.setEncoding('utf8');
              res.on('data', (c: string) => (text += c));
              res.on('end', () => resolve({ status: res.statusCode!, socket: req.socket, text }));
            },
          );
          req.on('error', reject);
          req.end(body);
        });
      const big = await send(
        JSON.stringify({ model, messages: [{ role: 'user', content: 'y'.repeat(BIG) }] }),
      );
      expect(big.status).toBe(413);
      expect(JSON.parse(big.text).error.code).toBe('request_too_large');
      const small = await send(JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }] }));
      expect(small.status).toBe(200);
      expect(small.socket).toBe(big.socket);
    } finally {
      agent.destroy();
    }
  });

  it('a refused upload that goes on past the bound is cut off, after its 413; the gateway goes on serving', async () => {
    const outcome = await endlessUpload(g.base, `Bearer ${secret}`);
    expect(outcome.answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(outcome.sent).toBeGreaterThanOrEqual(REFUSED_BODY_DRAIN_BYTES);
    expect(outcome.sent).toBeLessThan(REFUSED_BODY_DRAIN_BYTES * 2);
    const after = await openai().chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'still there?' }],
    });
    expect(after.choices[0]!.message.content).toBeTruthy();
  });

  it('an unknown key with an endless upload gets its 401 and is cut off past the bound', async () => {
    const outcome = await endlessUpload(g.base, 'Bearer sk-not-a-key');
    expect(outcome.answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(outcome.sent).toBeLessThan(REFUSED_BODY_DRAIN_BYTES * 2);
  });

  it('the management API reads its 413 too', async () => {
    const r = await fetch(`${g.base}/api/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${MASTER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'z'.repeat(BIG) }),
    });
    expect(r.status).toBe(413);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('request_too_large');
  });
});
