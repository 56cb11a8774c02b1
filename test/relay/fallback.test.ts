// Channels under failure, on SQLite and PostgreSQL: fallback before the first byte (5xx, 429,
// connection refused, first-byte timeout, garbage), all channels failed (502, cost 0, hold
// refunded), upstream 401 disabling a channel (audited), cool-down, streams that break after
// the first byte (SSE error event, partial billing flagged estimated), missing usage, client
// disconnects, weighted choice within a priority tier.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { backends, startTestServer, userWithKey, type TestServer } from '../helpers/server.js';
import type { AuditPage } from '../../web/src/api-types.js';
import {
  countChatPromptTokens,
  countTextTokens,
  expectedChatCompletion,
  startMockProvider,
  type MockProvider,
} from '../mock-provider/server.js';
import {
  addChannel,
  allLogs,
  balanceNano,
  client,
  expectedCostNano,
  expectExactBill,
  freshModel,
  keyJson,
  logByRequestId,
  NANO,
  nanoOf,
  readChatStream,
  sdkError,
  setPrice,
  streamText,
  sumCost,
  uniq,
  unreachableUrl,
  waitFor,
  type LogRow,
} from './relay-helpers.js';

const CRED_A = 'cred-a-' + 'a'.repeat(20);
const CRED_B = 'cred-b-' + 'b'.repeat(20);
const PRICE = { input: 2, output: 8 };
const FIRST_BYTE_MS = 1500; // generous: a normal answer must never hit it on a loaded machine

describe.each(backends())('channels under failure (%s)', (backend) => {
  let s: TestServer;
  let a: MockProvider;
  let b: MockProvider;

  beforeAll(async () => {
    s = await startTestServer({
      backend,
      env: { MOLE_UPSTREAM_FIRST_BYTE_TIMEOUT_MS: String(FIRST_BYTE_MS) },
    });
    a = await startMockProvider({ apiKey: CRED_A });
    b = await startMockProvider({ apiKey: CRED_B });
  });
  afterAll(async () => {
    await s?.close();
    await a?.close();
    await b?.close();
  });

  /** A fresh model served by channel A (priority 10) and channel B (priority 0), priced. */
  async function pair(opts: { aBase?: string; aKey?: string; onlyA?: boolean } = {}) {
    const {
      model,
      channels: [chA, chB = null],
    } = await freshModel(
      s,
      'fb',
      PRICE,
      { base_url: opts.aBase ?? a.url, api_key: opts.aKey ?? CRED_A, priority: 10 },
      ...(opts.onlyA ? [] : [{ base_url: b.url, api_key: CRED_B, priority: 0 }]),
    );
    return { model, chA: chA!, chB };
  }
  const hits = (m: MockProvider, model: string) =>
    m.requests.filter((r) => (r.body as { model?: string } | undefined)?.model === model).length;
  const msgs = (text: string) => [{ role: 'user' as const, content: text }];

  /** A fresh key asks `model` once and gets an answer; answers the key's secret and its log row. */
  async function askOnce(model: string, text: string) {
    const { key, secret } = await userWithKey(s, { balance: 5 });
    const r = await client(s, secret).chat.completions.create({ model, messages: msgs(text), max_tokens: 3 });
    expect(r.choices[0]!.message.content).toBeTruthy();
    const [log] = await allLogs(s, { key_id: key.id });
    return { secret, log: log! };
  }

  for (const [label, scenario] of [
    ['HTTP 500', { status: 500 }],
    ['HTTP 429', { status: 429 }],
    ['HTTP 503', { status: 503 }],
    ['a first byte later than the timeout', { firstByteDelayMs: FIRST_BYTE_MS * 3 }],
    ['a socket that hangs up', { hangMs: 10 }],
  ] as const) {
    it(`channel A answers ${label} → channel B serves, plain and stream; billed on B's usage`, async () => {
      const { model, chB } = await pair();
      a.setScenario(model, scenario);
      const { key, secret } = await userWithKey(s, { balance: 5 });
      const c = client(s, secret);
      const messages = msgs('fallback please');
      const { data, response } = await c.chat.completions
        .create({ model, messages, max_tokens: 6 })
        .withResponse();
      expect(data.choices[0]!.message.content).toBe(expectedChatCompletion(messages, 6));
      const text = await streamText(
        await c.chat.completions.create({ model, messages, max_tokens: 6, stream: true }),
      );
      expect(text).toBe(expectedChatCompletion(messages, 6));
      expect(hits(a, model)).toBe(2);
      expect(hits(b, model)).toBe(2);
      await expectExactBill(s, key.id, response, PRICE, {
        status: 200,
        channel_id: chB!.id,
        error_code: null,
        prompt_tokens: countChatPromptTokens(messages),
        completion_tokens: 6,
      });
    });
  }

  it('channel A refuses connections (closed port) → channel B serves', async () => {
    const { model, chB } = await pair({ aBase: await unreachableUrl() });
    const { log } = await askOnce(model, 'refused');
    expect(log).toMatchObject({ status: 200, channel_id: chB!.id });
  });

  it('every channel fails → 502 upstream_error, logged with cost 0, the hold fully refunded', async () => {
    const { model } = await pair();
    a.setScenario(model, { status: 500 });
    b.setScenario(model, { status: 503 });
    const { key, user, secret } = await userWithKey(s, { balance: 2, key: { quota: 1 } });
    const err = await sdkError(
      client(s, secret).chat.completions.create({ model, messages: msgs('doomed'), max_tokens: 1000 }),
    );
    expect([err.status, err.code]).toEqual([502, 'upstream_error']);
    expect(err.message).not.toContain(CRED_A);
    const serr = await sdkError(
      (async () => {
        for await (const _ of await client(s, secret).chat.completions.create({
          model,
          messages: msgs('doomed'),
          stream: true,
        })) {
          /* never */
        }
      })(),
    );
    expect([serr.status, serr.code]).toEqual([502, 'upstream_error']);
    expect([hits(a, model), hits(b, model)]).toEqual([2, 2]);
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows).toHaveLength(2);
    for (const r of rows)
      expect(r).toMatchObject({
        status: 502,
        error_code: 'upstream_error',
        cost: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
      });
    expect((await keyJson(s, key.id)).used).toBe(0);
    expect(await balanceNano(s, user.id)).toBe(2n * NANO);
    // The full quota is admissible again: a request whose worst case needs all of it goes through.
    a.clearScenarios();
    b.clearScenarios();
    const ok = await client(s, secret).chat.completions.create({
      model: model,
      messages: msgs('now it works'),
      max_tokens: 5,
    });
    expect(ok.choices[0]!.message.content).toBeTruthy();
  });

  it('upstream 401 disables the channel (status, reason, audit channel.disable); traffic moves to B', async () => {
    const { model, chA, chB } = await pair({ aKey: 'wrong-credential-for-a' });
    const { secret, log } = await askOnce(model, 'auth fails upstream');
    expect(log.channel_id).toBe(chB!.id);
    const ch = await waitFor(
      async () => {
        const g = await s.api('GET', `/api/channels/${chA.id}`);
        return g.body.status === 'disabled' ? g.body : null;
      },
      10_000,
      'channel A disabled',
    );
    expect(ch.disabled_reason).toMatch(/401/);
    expect(JSON.stringify(ch)).not.toContain('wrong-credential-for-a');
    const listed = (await s.api('GET', '/api/channels')).body.data.find(
      (c: { id: number }) => c.id === chA.id,
    );
    expect(listed.status).toBe('disabled');
    const audit = await waitFor(
      async () => {
        const rows = (await s.api<AuditPage>('GET', '/api/audit?limit=500')).body.data;
        return rows.find((x) => x.action === 'channel.disable' && x.changes?.channel_id === chA.id);
      },
      10_000,
      'channel.disable audit row',
    );
    expect(audit.actor).toBe('system');
    expect(JSON.stringify(audit)).not.toContain('wrong-credential-for-a');
    const before = hits(a, model);
    for (let i = 0; i < 3; i++)
      await client(s, secret).chat.completions.create({ model, messages: msgs(`after ${i}`), max_tokens: 2 });
    expect(hits(a, model), 'a disabled channel gets no traffic').toBe(before);
  });

  it('many requests in flight when the upstream starts answering 401: the channel is disabled once, with one audit row', async () => {
    const { model, chA } = await pair({ aKey: 'revoked-credential-for-a' });
    a.setScenario(model, { firstByteDelayMs: 500 });
    const { secret } = await userWithKey(s, { balance: 5 });
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        client(s, secret).chat.completions.create({ model, messages: msgs(`burst ${i}`), max_tokens: 2 }),
      ),
    );
    expect(
      results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => String(r.reason)),
      'all served by B',
    ).toEqual([]);
    expect(hits(a, model), 'several requests met the 401').toBeGreaterThanOrEqual(2);
    // Every request has been answered, so each one's report of the 401 has been made.
    await s.services.channels.settled();
    expect((await s.api('GET', `/api/channels/${chA.id}`)).body.status).toBe('disabled');
    const rows = (await s.api<AuditPage>('GET', '/api/audit?limit=500')).body.data.filter(
      (x) => x.action === 'channel.disable' && x.changes?.channel_id === chA.id,
    );
    expect(rows).toHaveLength(1);
  });

  it('repeated failures put a channel in cool-down (audited); healthy channels are tried first meanwhile', async () => {
    const { model, chA, chB } = await pair();
    a.setScenario(model, { status: 500, times: 3 });
    const { key, secret } = await userWithKey(s, { balance: 5 });
    const c = client(s, secret);
    for (let i = 0; i < 3; i++)
      await c.chat.completions.create({ model, messages: msgs(`cool ${i}`), max_tokens: 2 });
    expect(hits(a, model)).toBe(3);
    const ch = (await s.api('GET', `/api/channels/${chA.id}`)).body;
    expect(ch.status).toBe('active');
    expect(ch.cooling_down_until).not.toBeNull();
    // A would answer now, but it is cooling down: B (lower priority) is tried first.
    for (let i = 0; i < 3; i++)
      await c.chat.completions.create({ model, messages: msgs(`during ${i}`), max_tokens: 2 });
    expect(hits(a, model)).toBe(3);
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows.every((r) => r.channel_id === chB!.id)).toBe(true);
    const audit = await waitFor(async () =>
      (await s.api<AuditPage>('GET', '/api/audit?limit=500')).body.data.find(
        (x) => x.action === 'channel.cooldown' && x.changes?.channel_id === chA.id,
      ),
    );
    expect(audit).toBeTruthy();
  });

  it('an upstream 400 (the request itself is bad) is passed on, not retried elsewhere, and costs nothing', async () => {
    const { model } = await pair();
    a.setScenario(model, {
      status: 400,
      errorMessage: 'Invalid value for temperature.',
      errorCode: 'invalid_value',
    });
    const { key, secret } = await userWithKey(s, { balance: 5 });
    const err = await sdkError(
      client(s, secret).chat.completions.create({ model, messages: msgs('bad'), temperature: 1 }),
    );
    expect(err.status).toBe(400);
    expect(err.message).toContain('Invalid value for temperature.');
    expect(hits(b, model)).toBe(0);
    const [log] = await allLogs(s, { key_id: key.id });
    expect(log).toMatchObject({ status: 400, cost: 0, error_code: 'invalid_value' });
    expect((await keyJson(s, key.id)).used).toBe(0);
  });

  async function expectPartialBill(
    keyId: number,
    answer: { headers: Headers },
    messages: Array<{ role: 'user'; content: string }>,
    completion: number,
    extra: Partial<LogRow> = {},
  ) {
    const log = await logByRequestId(s, keyId, answer.headers.get('x-request-id')!);
    expect(log).toMatchObject({
      stream: true,
      estimated: true,
      completion_tokens: completion,
      prompt_tokens: countChatPromptTokens(messages),
      ...extra,
    });
    expect(nanoOf(log.cost)).toBe(
      expectedCostNano({ prompt: countChatPromptTokens(messages), completion }, PRICE),
    );
    expect(nanoOf((await keyJson(s, keyId)).used)).toBe(nanoOf(log.cost));
    return log;
  }

  /**
   * A fresh pair (or channel A alone) with A playing `scenario`; a new key streams `text` from
   * it and reads to the end or the break. Answers the pair, the key, the request and what it read.
   */
  async function streamWhile(
    scenario: Parameters<MockProvider['setScenario']>[1],
    text: string,
    opts: {
      onlyA?: boolean;
      request?: { max_tokens?: number; stream_options?: { include_usage: boolean } };
    } = {},
  ) {
    const channels = await pair({ onlyA: opts.onlyA });
    a.setScenario(channels.model, scenario);
    const { key, secret } = await userWithKey(s, { balance: 5 });
    const messages = msgs(text);
    const { data, response } = await client(s, secret)
      .chat.completions.create({ model: channels.model, messages, stream: true, ...opts.request })
      .withResponse();
    return { ...channels, key, messages, response, ...(await readChatStream(data)) };
  }

  for (const includeUsage of [false, true]) {
    it(`a stream cut after 5 chunks (include_usage=${includeUsage}): the client gets an SSE error event, billed for the 5 tokens produced, estimated; no fallback after the first byte`, async () => {
      const { model, key, messages, response, pieces, error } = await streamWhile(
        { cutAfterChunks: 5 },
        'cut me off',
        includeUsage ? { request: { stream_options: { include_usage: true } } } : {},
      );
      expect(pieces.join('')).toBe(expectedChatCompletion(messages, 5));
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect((error as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ code: 'upstream_error' });
      expect(hits(b, model), 'no second channel once bytes reached the client').toBe(0);
      await expectPartialBill(key.id, response, messages, 5, {
        error_code: 'upstream_error',
      });
    });
  }

  it('a stream that stalls after 4 chunks and then drops is billed for 4 tokens', async () => {
    const { key, messages, response, pieces, error } = await streamWhile(
      { cutAfterChunks: 4, hangMs: 200 },
      'stall then drop',
      { onlyA: true },
    );
    expect(pieces).toHaveLength(4);
    expect(error).toBeTruthy();
    await expectPartialBill(key.id, response, messages, 4);
  });

  it('garbage in the SSE stream after 3 chunks ends the stream with an error event, billed for 3 tokens', async () => {
    // Spaced chunks, so the stream has begun when the garbage arrives. (Garbage in the very
    // first network chunk is caught before any byte reaches the client: that falls back.)
    const { key, messages, response, pieces, error } = await streamWhile(
      { garbageAfterChunks: 3, chunkDelayMs: 30 },
      'garbage ahead',
    );
    expect(pieces.join('')).toBe(expectedChatCompletion(messages, 3));
    expect(error).toBeInstanceOf(OpenAI.APIError);
    await expectPartialBill(key.id, response, messages, 3, {
      error_code: 'upstream_error',
    });
  });

  it('garbage before any content reached the client → falls back to channel B, served in full and billed exactly', async () => {
    const { chB, key, messages, response, pieces, error } = await streamWhile(
      { garbageAfterChunks: 0 },
      'garbage first',
      { request: { max_tokens: 8 } },
    );
    expect(error).toBeNull();
    expect(pieces.join('')).toBe(expectedChatCompletion(messages, 8));
    await expectExactBill(s, key.id, response, PRICE, {
      channel_id: chB!.id,
      prompt_tokens: countChatPromptTokens(messages),
      completion_tokens: 8,
    });
  });

  it('an upstream that reports no usage: counted locally and flagged estimated (stream and plain)', async () => {
    const { model } = await pair({ onlyA: true });
    a.setScenario(model, { omitUsage: true, completionTokens: 9 });
    const { key, secret } = await userWithKey(s, { balance: 5 });
    const c = client(s, secret);
    const messages = msgs('no usage from upstream');
    const { data, response } = await c.chat.completions
      .create({ model, messages, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    const { pieces, error } = await readChatStream(data);
    expect(error).toBeNull();
    expect(pieces).toHaveLength(9);
    const log = await logByRequestId(s, key.id, response.headers.get('x-request-id')!);
    expect(log).toMatchObject({
      estimated: true,
      status: 200,
      error_code: null,
      completion_tokens: 9,
      prompt_tokens: countChatPromptTokens(messages),
    });
    expect(nanoOf(log.cost)).toBe(
      expectedCostNano({ prompt: countChatPromptTokens(messages), completion: 9 }, PRICE),
    );

    const { data: plain, response: r2 } = await c.chat.completions.create({ model, messages }).withResponse();
    expect(plain.usage).toBeUndefined();
    const log2 = await logByRequestId(s, key.id, r2.headers.get('x-request-id')!);
    expect(log2).toMatchObject({
      estimated: true,
      status: 200,
      completion_tokens: countTextTokens(plain.choices[0]!.message.content!),
    });
    expect(log2.completion_tokens).toBe(9);
    expect(nanoOf(log2.cost)).toBe(expectedCostNano({ prompt: log2.prompt_tokens, completion: 9 }, PRICE));
    const rows = await allLogs(s, { key_id: key.id });
    expect(nanoOf((await keyJson(s, key.id)).used)).toBe(sumCost(rows));
  });

  it('the client disconnects mid-stream: the upstream is aborted and what was produced is billed (estimated)', async () => {
    const { model } = await pair({ onlyA: true });
    // A full answer would take 200 × 100 ms = 20 s.
    a.setScenario(model, { chunkDelayMs: 100, completionTokens: 200 });
    const { key, secret } = await userWithKey(s, { balance: 5 });
    const messages = msgs('I will hang up on you');
    const ac = new AbortController();
    const started = Date.now();
    const stream = await client(s, secret).chat.completions.create(
      { model, messages, stream: true },
      { signal: ac.signal },
    );
    let seen = 0;
    const err = await (async () => {
      try {
        for await (const ch of stream) {
          if (ch.choices[0]?.delta?.content && ++seen === 3) ac.abort();
        }
      } catch (e) {
        return e;
      }
      return null;
    })();
    // The SDK ends the iteration quietly (or with its abort error) once aborted.
    expect(err === null || err instanceof OpenAI.APIUserAbortError).toBe(true);
    expect(ac.signal.aborted).toBe(true);
    // The log row is written when the gateway stops relaying, which it does only by aborting
    // the upstream: well before the 20 s the full answer would take.
    const log = await waitFor(
      async () => (await allLogs(s, { key_id: key.id }))[0],
      10_000,
      'the partial log row',
    );
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(log).toMatchObject({ stream: true, estimated: true, status: 499, error_code: 'client_closed' });
    expect(log.completion_tokens).toBeGreaterThanOrEqual(3);
    expect(log.completion_tokens).toBeLessThan(200);
    expect(nanoOf(log.cost)).toBe(
      expectedCostNano({ prompt: countChatPromptTokens(messages), completion: log.completion_tokens }, PRICE),
    );
    expect(nanoOf((await keyJson(s, key.id)).used)).toBe(nanoOf(log.cost));
  });

  it('the client gives up before the first byte: logged 499 at cost 0, nothing held, no fallback, the channel not blamed', async () => {
    const { model, chA } = await pair();
    a.setScenario(model, { firstByteDelayMs: FIRST_BYTE_MS / 2 + 200, times: 3 });
    const { key, user, secret } = await userWithKey(s, { balance: 1, key: { quota: 0.5 } });
    // Three times: three channel failures would put A in cool-down.
    for (let i = 0; i < 3; i++) {
      const err = await sdkError(
        client(s, secret, { timeout: 150 }).chat.completions.create({
          model,
          messages: msgs(`too slow for me ${i}`),
          max_tokens: 10,
        }),
      );
      expect(err).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
    }
    const rows = await waitFor(
      async () => {
        const r = await allLogs(s, { key_id: key.id });
        return r.length === 3 ? r : null;
      },
      10_000,
      'the 499 rows',
    );
    for (const log of rows) expect(log).toMatchObject({ status: 499, error_code: 'client_closed', cost: 0 });
    // A 499 row is written once the attempts have stopped: no channel is tried after it.
    expect(hits(b, model), 'no other channel is tried for a client that left').toBe(0);
    expect((await s.api('GET', `/api/channels/${chA.id}`)).body.cooling_down_until).toBeNull();
    expect((await keyJson(s, key.id)).used).toBe(0);
    expect(await balanceNano(s, user.id)).toBe(NANO);
  });

  it('within one priority tier, traffic follows the weights (1:3 over 80 requests); a higher tier always wins when healthy', async () => {
    const model = uniq('w');
    /** A channel at A in the upper tier that sends the model upstream as `<model>-<tier>`. */
    const upperTier = (tier: string, weight: number) =>
      addChannel(s, {
        type: 'openai',
        base_url: a.url,
        api_key: CRED_A,
        models: [model],
        model_map: { [model]: `${model}-${tier}` },
        weight,
        priority: 5,
      });
    const light = await upperTier('light', 1);
    const heavy = await upperTier('heavy', 3);
    const low = await addChannel(s, {
      type: 'openai',
      base_url: b.url,
      api_key: CRED_B,
      models: [model],
      priority: 1,
      weight: 1000,
    });
    await setPrice(s, model, PRICE);
    const { key, secret } = await userWithKey(s, { balance: 50 });
    const c = client(s, secret);
    const N = 80;
    for (let i = 0; i < N; i += 8) {
      await Promise.all(
        Array.from({ length: 8 }, (_, j) =>
          c.chat.completions.create({ model, messages: msgs(`w ${i + j}`), max_tokens: 1 }),
        ),
      );
    }
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows).toHaveLength(N);
    const count = (id: number) => rows.filter((r) => r.channel_id === id).length;
    expect(count(low.id), 'the lower tier is never used while the higher one is healthy').toBe(0);
    const nHeavy = count(heavy.id);
    const nLight = count(light.id);
    expect(nHeavy + nLight).toBe(N);
    // Expected 60 / 20; binomial sd ≈ 3.9, so these bounds are ~4 sd wide.
    expect(nHeavy).toBeGreaterThanOrEqual(45);
    expect(nHeavy).toBeLessThanOrEqual(75);
    // The log names the upstream model each channel was sent.
    for (const r of rows)
      expect(r.upstream_model).toBe(r.channel_id === heavy.id ? `${model}-heavy` : `${model}-light`);
    expect(
      a.requests.filter((r) => (r.body as { model?: unknown } | undefined)?.model === `${model}-heavy`),
    ).toHaveLength(nHeavy);
  });
});
