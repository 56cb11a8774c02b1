// Streaming edge cases, on SQLite and PostgreSQL: long streams under backpressure, client
// disconnects while the upstream is fast, upstreams that put a running `usage` in every chunk,
// and admission for prompts the tokenizer alone would under-count (images, names).
import type http from 'node:http';
import { describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { backends, userWithKey } from '../helpers/server.js';
import { suiteGateway } from '../helpers/suite.js';
import { scriptedForSuite } from '../helpers/relay-suite.js';
import { countChatPromptTokens, countTextTokens, startMockProvider } from '../mock-provider/server.js';
import {
  allLogs,
  balanceNano,
  client,
  expectedCostNano,
  freshModel,
  keyJson,
  nanoOf,
  readChatStream,
  sdkError,
  sumCost,
  waitFor,
} from './relay-helpers.js';

const PRICE = { input: 1, output: 4 };

/**
 * An upstream like vLLM with continuous usage stats: every content chunk carries the running
 * `usage`. It sends `chunks` one-token words and then drops the connection.
 */
function runningUsage(chunks: number) {
  const words = Array.from({ length: chunks }, (_, i) => [' mole', ' dig', ' soil', ' dark'][i % 4]!);
  const handler = (_req: unknown, res: http.ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const head = (choices: unknown[], completion: number) =>
      `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 1, model: 'm', choices, usage: { prompt_tokens: 11, completion_tokens: completion, total_tokens: 11 + completion } })}\n\n`;
    let out = head([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }], 0);
    for (const [i, w] of words.entries()) out += head([{ index: 0, delta: { content: w } }], i + 1);
    res.write(out, () => setTimeout(() => res.socket?.destroy(), 20));
  };
  return { handler, text: words.join('') };
}

/** An upstream that reports far more usage than any admission bound (plain JSON answers). */
const overrun =
  (promptTokens: number) =>
  (_req: unknown, res: http.ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        id: 'x',
        object: 'chat.completion',
        created: 1,
        model: 'm',
        choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: promptTokens, completion_tokens: 1, total_tokens: promptTokens + 1 },
      }),
    );
  };

describe.each(backends())('streaming edge cases (%s)', (backend) => {
  const { s, mock } = suiteGateway({ backend }, {});
  const scripted = scriptedForSuite();

  const model = async () => (await freshModel(s, 'st', PRICE, { base_url: mock.url })).model;

  it('a long stream to a slow reader: every token arrives, billed exactly, and the relay does not pile up listeners', async () => {
    const m = await model();
    const TOKENS = 12_000;
    mock.setScenario(m, { completionTokens: TOKENS });
    const { key, secret } = await userWithKey(s, { balance: 100 });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const messages = [{ role: 'user' as const, content: 'a very long answer please' }];
      const { data, response } = await client(s, secret)
        .chat.completions.create({ model: m, messages, stream: true, max_tokens: TOKENS })
        .withResponse();
      let n = 0;
      for await (const ch of data) {
        if (ch.choices[0]?.delta?.content) n++;
        // read slowly now and then, so the gateway's writes meet backpressure
        if (n % 500 === 0) await new Promise((r) => setTimeout(r, 15));
      }
      expect(n).toBe(TOKENS);
      const [log] = await allLogs(s, { key_id: key.id });
      expect(log).toMatchObject({
        request_id: response.headers.get('x-request-id'),
        completion_tokens: TOKENS,
        estimated: false,
        status: 200,
      });
      expect(nanoOf(log!.cost)).toBe(
        expectedCostNano({ prompt: countChatPromptTokens(messages), completion: TOKENS }, PRICE),
      );
      // Node emits a warning on process.nextTick: by the next turn of the loop any has come.
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.includes('MaxListenersExceeded'))).toEqual([]);
  });

  it('client disconnects while a fast upstream streams: each request is logged, billed for what was relayed, and its hold released', async () => {
    const m = await model();
    const { key, secret } = await userWithKey(s, { balance: 100, key: { quota: 5 } });
    for (let i = 0; i < 4; i++) {
      // Back to back (the whole answer may fit in socket buffers before the gateway notices),
      // then paced by 2 ms per chunk (the gateway is mid-stream when the client leaves).
      mock.setScenario(m, { completionTokens: 5_000, ...(i >= 2 ? { chunkDelayMs: 2 } : {}) });
      const ac = new AbortController();
      const stream = await client(s, secret).chat.completions.create(
        { model: m, messages: [{ role: 'user', content: `hang up ${i}` }], stream: true, max_tokens: 5_000 },
        { signal: ac.signal },
      );
      let n = 0;
      try {
        for await (const ch of stream) if (ch.choices[0]?.delta?.content && ++n === 3 + i) ac.abort();
      } catch (err) {
        expect(err).toBeInstanceOf(OpenAI.APIUserAbortError);
      }
      await waitFor(
        async () => (await allLogs(s, { key_id: key.id })).length === i + 1,
        10_000,
        `log row ${i}`,
      );
    }
    const rows = (await allLogs(s, { key_id: key.id })).reverse();
    for (const [i, r] of rows.entries()) {
      if (i >= 2 || r.status !== 200)
        expect(r).toMatchObject({ status: 499, error_code: 'client_closed', estimated: true });
      else expect(r).toMatchObject({ completion_tokens: 5_000, estimated: false, error_code: null });
      expect(r.completion_tokens).toBeGreaterThanOrEqual(3);
      expect(nanoOf(r.cost)).toBe(
        expectedCostNano({ prompt: r.prompt_tokens, completion: r.completion_tokens }, PRICE),
      );
    }
    expect(nanoOf((await keyJson(s, key.id)).used)).toBe(sumCost(rows));
    // Nothing is still held: the rest of the quota admits a request whose worst case needs nearly all of it.
    mock.clearScenarios();
    const left = 5_000_000_000n - sumCost(rows);
    const maxTokens = Number((left * 1_000_000n) / 4_000_000_000n) - 200; // output at 4 USD / 1M
    const ok = await client(s, secret).chat.completions.create({
      model: m,
      messages: [{ role: 'user', content: 'after' }],
      max_tokens: maxTokens,
    });
    expect(ok.choices[0]!.message.content).toBeTruthy();
  });

  it('an upstream that puts a running usage in every chunk and then drops: billed for the tokens relayed, estimated', async () => {
    const running = runningUsage(7);
    const up = await scripted(running.handler);
    const { model: m } = await freshModel(s, 'run', PRICE, { base_url: up.url });
    const { key, secret } = await userWithKey(s, { balance: 10 });
    const { data, response } = await client(s, secret)
      .chat.completions.create({ model: m, messages: [{ role: 'user', content: 'go' }], stream: true })
      .withResponse();
    const { text, error } = await readChatStream(data);
    expect(text).toBe(running.text);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    const [log] = await allLogs(s, { key_id: key.id });
    expect(log!.request_id).toBe(response.headers.get('x-request-id'));
    const completion = countTextTokens(running.text);
    expect(completion).toBe(7);
    expect(log).toMatchObject({
      estimated: true,
      prompt_tokens: 11,
      completion_tokens: completion,
      error_code: 'upstream_error',
    });
    expect(nanoOf(log!.cost)).toBe(expectedCostNano({ prompt: 11, completion }, PRICE));
  });

  it('an upstream reporting more usage than was held cannot push spend past the key quota or the balance; used = sum of logs', async () => {
    const up = await scripted(overrun(1_000_000));
    const { model: m } = await freshModel(s, 'over', PRICE, { base_url: up.url }); // 1M prompt tokens = 1 USD
    const quotaCapped = await userWithKey(s, { balance: 10, key: { quota: 0.25 } });
    const balanceCapped = await userWithKey(s, { balance: 0.4 });
    for (const u of [quotaCapped, balanceCapped]) {
      for (let i = 0; i < 3; i++) {
        await client(s, u.secret)
          .chat.completions.create({
            model: m,
            messages: [{ role: 'user', content: 'small prompt' }],
            max_tokens: 1,
          })
          .catch((err) => {
            expect(err.code).toBe('insufficient_quota');
          });
      }
    }
    const q = await allLogs(s, { key_id: quotaCapped.key.id });
    const used = nanoOf((await keyJson(s, quotaCapped.key.id)).used);
    expect(used).toBeLessThanOrEqual(250_000_000n);
    expect(used).toBe(sumCost(q));
    const b = await allLogs(s, { key_id: balanceCapped.key.id });
    const left = await balanceNano(s, balanceCapped.user.id);
    expect(left).toBeGreaterThanOrEqual(0n);
    expect(400_000_000n - left).toBe(sumCost(b));
  });

  it('a ledger failure while settling (shared ledger unreachable) neither retries on another channel nor breaks the answer', async () => {
    const b = await startMockProvider();
    try {
      const {
        model: m,
        channels: [chA],
      } = await freshModel(
        s,
        'settle',
        PRICE,
        { base_url: mock.url, priority: 2 },
        { base_url: b.url, priority: 1 },
      );
      const { key, secret } = await userWithKey(s, { balance: 10 });
      const ledger = s.services.ledger as { settle: (...a: unknown[]) => Promise<number> };
      const original = ledger.settle;
      ledger.settle = async () => {
        throw new Error('shared ledger unreachable');
      };
      const before = mock.requests.length;
      try {
        for (let i = 0; i < 2; i++) {
          const plain = await client(s, secret).chat.completions.create({
            model: m,
            messages: [{ role: 'user', content: `plain ${i}` }],
            max_tokens: 4,
          });
          expect(plain.choices[0]!.message.content).toBeTruthy();
          let pieces = 0;
          for await (const ch of await client(s, secret).chat.completions.create({
            model: m,
            messages: [{ role: 'user', content: `stream ${i}` }],
            stream: true,
            max_tokens: 4,
          })) {
            if (ch.choices[0]?.delta?.content) pieces++;
          }
          expect(pieces).toBe(4);
        }
      } finally {
        ledger.settle = original;
      }
      expect(mock.requests.length - before, 'one upstream call per request').toBe(4);
      expect(b.requests, 'never retried elsewhere').toHaveLength(0);
      expect((await s.api('GET', `/api/channels/${chA!.id}`)).body.cooling_down_until).toBeNull();
      const rows = await allLogs(s, { key_id: key.id });
      expect(rows.map((r) => [r.status, r.channel_id])).toEqual(Array(4).fill([200, chA!.id]));
      expect(nanoOf((await keyJson(s, key.id)).used)).toBe(sumCost(rows));
      expect(s.logs()).toContain('settling failed');
    } finally {
      await b.close();
    }
  });

  it('images and names count towards the worst case: a quota one nano-USD short of the real cost refuses the request', async () => {
    const m = await model();
    const messages = [
      {
        role: 'user' as const,
        name: 'alice',
        content: [
          { type: 'text' as const, text: 'what is in these pictures?' },
          { type: 'image_url' as const, image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          {
            type: 'image_url' as const,
            image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' as const },
          },
        ],
      },
    ];
    // What the upstream bills (the mock: 85 tokens per image part, 1 + name tokens for a name).
    const real = expectedCostNano({ prompt: countChatPromptTokens(messages), completion: 5 }, PRICE);
    mock.setScenario(m, { completionTokens: 5 });
    const tight = await userWithKey(s, { balance: 100, key: { quota: Number(real - 1n) / 1e9 } });
    const err = await sdkError(
      client(s, tight.secret).chat.completions.create({ model: m, messages, max_tokens: 5 }),
    );
    expect([err.status, err.code]).toEqual([429, 'insufficient_quota']);
    expect(nanoOf((await keyJson(s, tight.key.id)).used)).toBe(0n);
    // With room, it is served and billed exactly on the upstream's count.
    const roomy = await userWithKey(s, { balance: 100, key: { quota: 1 } });
    const ok = await client(s, roomy.secret).chat.completions.create({ model: m, messages, max_tokens: 5 });
    expect(ok.usage!.prompt_tokens).toBe(countChatPromptTokens(messages));
    const [log] = await allLogs(s, { key_id: roomy.key.id });
    expect(nanoOf(log!.cost)).toBe(real);
    expect(nanoOf((await keyJson(s, roomy.key.id)).used)).toBe(real);
  });
});
