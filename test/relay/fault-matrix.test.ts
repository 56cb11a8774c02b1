// The upstream fault matrix (issue 11) beyond test/relay/fallback.test.ts: answers that are
// not answers — HTML, redirects, oversized bodies, a 200 whose body or first stream event is
// an error, an error event mid-stream. Where the answer has not begun the next channel
// serves and bills on its usage; failed attempts cost nothing and show on the log row.
import type http from 'node:http';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { backends, userWithKey, type TestServer } from '../helpers/server.js';
import { gatewayForSuite } from '../helpers/suite.js';
import { scriptedForSuite } from '../helpers/relay-suite.js';
import { countChatPromptTokens, type MockProvider } from '../mock-provider/server.js';
import {
  allLogs,
  client,
  expectedCostNano,
  freshModel,
  nanoOf,
  readChatStream,
  streamText,
} from './relay-helpers.js';

const PRICE = { input: 1, output: 4 };
type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const chunk = (choices: unknown[]) =>
  `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices })}\n\n`;

describe.each(backends())('upstream fault matrix (%s)', (backend) => {
  let s: TestServer;
  let good: MockProvider;

  gatewayForSuite({ backend }, {}, (started, startedMock) => {
    s = started;
    good = startedMock;
  });
  const scripted = scriptedForSuite();

  /** A failing channel A (tried first) and the mock as channel B. */
  async function pairWith(handler: Handler) {
    const bad = await scripted(handler);
    const { model } = await freshModel(
      s,
      'fm',
      PRICE,
      { base_url: bad.url, priority: 10 },
      { base_url: good.url, priority: 0 },
    );
    const { key, secret } = await userWithKey(s, { balance: 5 });
    return { model, keyId: key.id as number, c: client(s, secret) };
  }

  const faults: [string, Handler][] = [
    [
      'an HTML page with 200',
      (_q, res) => {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html><body>Bad gateway</body></html>');
      },
    ],
    [
      'a redirect',
      (_q, res) => {
        res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' });
        res.end();
      },
    ],
    [
      'a 200 whose first stream event (or body) is an error',
      (req, res) => {
        const stream = req.headers.accept === 'text/event-stream';
        res.writeHead(200, { 'content-type': stream ? 'text/event-stream' : 'application/json' });
        const error = JSON.stringify({ error: { message: 'overloaded', type: 'server_error' } });
        res.end(stream ? `data: ${error}\n\n` : error);
      },
    ],
  ];

  for (const [label, handler] of faults) {
    it(`channel A answers ${label} → channel B serves, plain and stream; A's tries cost nothing`, async () => {
      const { model, keyId, c } = await pairWith(handler);
      const messages = [{ role: 'user' as const, content: 'fault matrix' }];
      const plain = await c.chat.completions.create({ model, messages, max_tokens: 5 });
      expect(plain.choices[0]!.message.content).toBeTruthy();
      const text = await streamText(
        await c.chat.completions.create({ model, messages, max_tokens: 5, stream: true }),
      );
      expect(text).toBe(plain.choices[0]!.message.content);
      const logs = await allLogs(s, { key_id: keyId });
      expect(logs).toHaveLength(2);
      for (const log of logs) {
        expect(log).toMatchObject({ status: 200, estimated: false, completion_tokens: 5 });
        expect(log.attempts).toHaveLength(2);
        expect(log.attempts[0]!.error).toBeTruthy();
        expect(log.attempts[1]).toMatchObject({ status: 200, error: null });
        expect(nanoOf(log.cost)).toBe(
          expectedCostNano({ prompt: countChatPromptTokens(messages), completion: 5 }, PRICE),
        );
      }
    });
  }

  it('an oversized answer (over 64 MiB) is a failed attempt: channel B serves', async () => {
    const { model, keyId, c } = await pairWith((_q, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const mb = Buffer.alloc(1024 * 1024, 0x20);
      let sent = 0;
      const pump = () => {
        while (sent < 66 && res.write(mb)) sent++;
        if (sent < 66) res.once('drain', pump);
        else res.end();
      };
      res.on('close', () => (sent = 66));
      pump();
    });
    const messages = [{ role: 'user' as const, content: 'big' }];
    const out = await c.chat.completions.create({ model, messages, max_tokens: 4 });
    expect(out.choices[0]!.message.content).toBeTruthy();
    const [log] = await allLogs(s, { key_id: keyId });
    expect(log!.attempts.map((a) => a.error === null)).toEqual([false, true]);
    expect(log!.attempts[0]!.error).toMatch(/too large/);
  });

  it('an error event mid-stream: the client gets an error event, billed for what was relayed (estimated)', async () => {
    const { model, keyId, c } = await pairWith((_q, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // The first events go out on their own, so the answer has begun when the error comes.
      res.write(
        chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]) +
          chunk([{ index: 0, delta: { content: ' mole' }, finish_reason: null }]) +
          chunk([{ index: 0, delta: { content: ' dig' }, finish_reason: null }]),
      );
      setTimeout(
        () =>
          res.end(
            `data: ${JSON.stringify({ error: { message: 'upstream exploded', type: 'server_error' } })}\n\n`,
          ),
        50,
      );
    });
    const stream = await c.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'cut' }],
      max_tokens: 10,
      stream: true,
    });
    const { text, error } = await readChatStream(stream);
    expect(text).toBe(' mole dig');
    expect(error).toBeInstanceOf(OpenAI.APIError);
    const [log] = await allLogs(s, { key_id: keyId });
    expect(log).toMatchObject({
      status: 200,
      error_code: 'upstream_error',
      estimated: true,
      completion_tokens: 2,
    });
    expect(log!.attempts).toHaveLength(1);
  });
});
