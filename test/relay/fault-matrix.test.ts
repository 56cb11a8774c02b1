// The upstream fault matrix (issue 11) beyond test/relay/fallback.test.ts: answers that are
// not answers — HTML, redirects, oversized bodies, a 200 whose body or first stream event is
// an error, an error event mid-stream. Where the answer has not begun the next channel
// serves and bills on its usage; failed attempts cost nothing and show on the log row.
// Then the accounting defects found by adversarial testing (issue 11, items 3–5), each
// against a small scripted upstream: a 200 whose body is an error, a stream usage chunk
// written with whitespace, and an upstream reporting absurd usage.
import type http from 'node:http';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { backends, userWithKey } from '../helpers/server.js';
import { suiteGateway } from '../helpers/suite.js';
import { scriptedForSuite } from '../helpers/relay-suite.js';
import { countChatPromptTokens } from '../mock-provider/server.js';
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
const UPSTREAM_KEY = 'sk-upstream-credential-0123456789';
type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const chunk = (choices: unknown[]) =>
  `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices })}\n\n`;

/** JSON as Python's json.dumps writes it: a space after every ':' and ','. */
const spaced = (v: unknown) => JSON.stringify(v).replace(/":/g, '": ').replace(/,"/g, ', "');

describe.each(backends())('upstream fault matrix (%s)', (backend) => {
  const { s, mock: good } = suiteGateway({ backend }, {});
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

  describe('accounting defects', () => {
    /** An upstream that answers every request with `answer(body)`: [status, content-type, text]. */
    const answering = (answer: (body: Record<string, unknown>) => [number, string, string]) =>
      scripted((_req, res, raw) => {
        const [status, type, text] = answer(JSON.parse(raw));
        res.writeHead(status, { 'content-type': type });
        res.end(text);
      });

    /** A fresh model served (and priced) only by an upstream whose completion reports `usage`. */
    async function reportingUsage(prefix: string, usage: Record<string, unknown>) {
      const up = await answering((body) => [
        200,
        'application/json',
        JSON.stringify({
          id: 'x',
          object: 'chat.completion',
          created: 1,
          model: body.model,
          choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
          usage,
        }),
      ]);
      return (await freshModel(s, prefix, PRICE, { base_url: up.url })).model;
    }

    it('an HTTP 200 whose body is {"error": …} is a failed attempt: the next channel answers and bills', async () => {
      const bad = await answering(() => [
        200,
        'application/json',
        JSON.stringify({
          error: { message: `quota exceeded upstream for key ${UPSTREAM_KEY}`, type: 'insufficient_quota' },
        }),
      ]);
      const { model: m } = await freshModel(
        s,
        'err200',
        PRICE,
        { base_url: bad.url, api_key: UPSTREAM_KEY, priority: 10, name: 'err200' },
        { base_url: good.url, priority: 0 },
      );
      const { key, secret } = await userWithKey(s, { balance: 10 });
      const messages = [{ role: 'user' as const, content: 'hello' }];
      const out = await client(s, secret).chat.completions.create({ model: m, messages, max_tokens: 5 });
      expect(out.choices[0]!.message.content).toBeTruthy();
      const [log] = await allLogs(s, { key_id: key.id });
      expect(log!.status).toBe(200);
      expect(log!.estimated).toBe(false);
      expect(log!.attempts.map((a) => a.status)).toEqual([200, 200]);
      expect(log!.attempts[0]).toMatchObject({ channel_name: 'err200' });
      expect(log!.attempts[0]!.error).toMatch(/quota exceeded upstream/);
      // An upstream quoting the credential we sent never puts it on the log row or in a log line.
      expect(log!.attempts[0]!.error).not.toContain(UPSTREAM_KEY);
      expect(s.logs()).not.toContain(UPSTREAM_KEY);
      expect(log!.attempts[1]!.error).toBeNull();
      expect(nanoOf(log!.cost)).toBe(
        expectedCostNano(
          { prompt: out.usage!.prompt_tokens, completion: out.usage!.completion_tokens },
          PRICE,
        ),
      );
    });

    it('a stream usage chunk written with spaces is read (not estimated) and hidden from a client that did not ask', async () => {
      const up = await answering(({ model }) => {
        const chunk = (choices: unknown[], extra = {}) =>
          `data: ${spaced({ id: 'c1', object: 'chat.completion.chunk', created: 1, model, choices, ...extra })}\n\n`;
        return [
          200,
          'text/event-stream',
          chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]) +
            chunk([{ index: 0, delta: { content: 'hi there' }, finish_reason: null }]) +
            chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]) +
            chunk([], { usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 } }) +
            'data: [DONE]\n\n',
        ];
      });
      const { model: m } = await freshModel(s, 'spaced', PRICE, { base_url: up.url });
      const { key, secret } = await userWithKey(s, { balance: 10 });
      const stream = await client(s, secret).chat.completions.create({
        model: m,
        messages: [{ role: 'user', content: 'hello' }],
        stream: true,
        max_tokens: 10,
      });
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      expect(chunks.some((c) => c.usage)).toBe(false);
      expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe('hi there');
      const [log] = await allLogs(s, { key_id: key.id });
      expect(log).toMatchObject({ estimated: false, prompt_tokens: 9, completion_tokens: 3, status: 200 });
      expect(nanoOf(log!.cost)).toBe(expectedCostNano({ prompt: 9, completion: 3 }, PRICE));
    });

    it('absurd reported usage is billed at most at the admitted output cap', async () => {
      const m = await reportingUsage('absurd', {
        prompt_tokens: 7,
        completion_tokens: 5_000_000,
        total_tokens: 5_000_007,
      });
      const { key, secret } = await userWithKey(s, { balance: 100 });
      await client(s, secret).chat.completions.create({
        model: m,
        messages: [{ role: 'user', content: 'hello' }],
        max_tokens: 20,
      });
      const [log] = await allLogs(s, { key_id: key.id });
      expect(log).toMatchObject({ prompt_tokens: 7, completion_tokens: 20, estimated: false });
      expect(nanoOf(log!.cost)).toBe(expectedCostNano({ prompt: 7, completion: 20 }, PRICE));
    });

    it('unreadable usage (a string) is estimated, not billed as zero', async () => {
      const m = await reportingUsage('garbage', { prompt_tokens: 'lots', completion_tokens: 'many' });
      const messages = [{ role: 'user' as const, content: 'hello there' }];
      const { key, secret } = await userWithKey(s, { balance: 10 });
      await client(s, secret).chat.completions.create({ model: m, messages, max_tokens: 20 });
      const [log] = await allLogs(s, { key_id: key.id });
      expect(log).toMatchObject({
        estimated: true,
        prompt_tokens: countChatPromptTokens(messages),
        completion_tokens: 1,
      });
    });
  });
});
