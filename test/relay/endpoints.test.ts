// The relay endpoints through the official `openai` SDK, against the real gateway and the
// independent mock upstream, on SQLite and PostgreSQL: chat (plain, stream with and without
// include_usage), completions, embeddings (float and base64), /v1/models filtering,
// model_map, the built-in offline `mock` channel type, and /v1/key.
import type OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { backends, userWithKey, type TestServer } from '../helpers/server.js';
import { relaySuite } from '../helpers/relay-suite.js';
import {
  CHAT_STREAM_PADDINGS,
  countChatPromptTokens,
  countTextTokens,
  expectedChatCompletion,
  expectedTextCompletion,
  type MockProvider,
} from '../mock-provider/server.js';
import {
  addChannel,
  allLogs,
  client,
  expectedCostNano,
  expectExactBill,
  logByRequestId,
  nanoOf,
  rawRelay,
  sdkError,
  setGroup,
  setPrice,
  uniq,
} from './relay-helpers.js';

/** A JSON body the mock upstream recorded: its fields are read and asserted on. */
type Sent = Record<string, unknown>;

const UPSTREAM_KEY = 'upstream-cred-' + 'e'.repeat(24);
const CHAT_PRICE = { input: 0.15, output: 0.6 };
const CMP_PRICE = { input: 1.5, output: 2 };
const EMB_PRICE = { input: 0.02, output: 0 };

describe.each(backends())('relay endpoints (%s)', (backend) => {
  let s: TestServer;
  let mock: MockProvider;
  let channelId: number;

  relaySuite(
    { backend },
    {
      apiKey: UPSTREAM_KEY,
      prices: {
        'chat-a': CHAT_PRICE,
        'chat-b': CHAT_PRICE,
        'cmp-a': CMP_PRICE,
        'emb-a': EMB_PRICE,
        'mapped-a': CHAT_PRICE,
      },
      channel: { model_map: { 'mapped-a': 'gpt-4o-upstream-name' } },
    },
    (started) => {
      ({ s, mock } = started);
      channelId = started.channel.id;
    },
  );

  const lastUpstream = (path: string) => [...mock.requests].reverse().find((r) => r.path === path)!;

  /** A user with $10 and a key: the key, and an OpenAI SDK client on it. */
  async function fundedClient() {
    const { key, secret } = await userWithKey(s, { balance: 10 });
    return { key, c: client(s, secret) };
  }

  it('chat, plain: answer, usage and exact billing; request id matches the log; client credentials never reach the upstream', async () => {
    const { key, secret } = await userWithKey(s, { balance: 10 });
    const messages = [
      { role: 'system' as const, content: 'You are terse.' },
      { role: 'user' as const, content: 'Say something about moles.' },
    ];
    const { data, response } = await client(s, secret, {
      defaultHeaders: { cookie: 'session=abc', 'x-custom': 'private' },
    })
      .chat.completions.create({ model: 'chat-a', messages, max_tokens: 10 })
      .withResponse();
    expect(data.choices[0]!.message.content).toBe(expectedChatCompletion(messages, 10));
    const promptTokens = countChatPromptTokens(messages);
    expect(data.usage).toMatchObject({ prompt_tokens: promptTokens, completion_tokens: 10 });

    const up = lastUpstream('/v1/chat/completions');
    expect(up.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(up.headers.cookie).toBeUndefined();
    expect(up.headers['x-custom']).toBeUndefined();
    expect(JSON.stringify(up.headers)).not.toContain(secret);

    const requestId = response.headers.get('x-request-id');
    expect(requestId).toBeTruthy();
    const log = await expectExactBill(s, key.id, response, CHAT_PRICE, {
      model: 'chat-a',
      upstream_model: 'chat-a',
      channel_id: channelId,
      endpoint: '/v1/chat/completions',
      stream: false,
      status: 200,
      error_code: null,
      prompt_tokens: promptTokens,
      cached_tokens: 0,
      completion_tokens: 10,
      key_id: key.id,
      key_name: key.name,
    });
    expect(log.ip).toBe('127.0.0.1');
  });

  it.each(CHAT_STREAM_PADDINGS)(
    'chat, stream without include_usage%s: no usage reaches the client, yet billing is exact from the injected usage chunk',
    async (_, scenario) => {
      mock.setScenario('chat-a', { ...scenario, times: 1 });
      const { key, c } = await fundedClient();
      const messages = [{ role: 'user' as const, content: 'stream me a short line' }];
      const { data: stream, response } = await c.chat.completions
        .create({ model: 'chat-a', messages, stream: true, max_tokens: 7 })
        .withResponse();
      expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      let text = '';
      let chunks = 0;
      for await (const c of stream) {
        chunks++;
        text += c.choices[0]?.delta?.content ?? '';
        expect(c.usage ?? null, 'no usage chunk unless asked').toBeNull();
        expect(c.choices.length, 'no usage-only (choices: []) chunk unless asked').toBeGreaterThan(0);
        // Pass-through: the upstream's bytes, padding and all.
        expect('obfuscation' in c).toBe('obfuscation' in scenario);
      }
      expect(chunks).toBeGreaterThan(7);
      expect(text).toBe(expectedChatCompletion(messages, 7));

      const up = lastUpstream('/v1/chat/completions');
      expect((up.body as Sent).stream).toBe(true);
      expect((up.body as Sent).stream_options).toEqual({ include_usage: true });

      const log = await expectExactBill(s, key.id, response, CHAT_PRICE, {
        stream: true,
        status: 200,
        error_code: null,
        prompt_tokens: countChatPromptTokens(messages),
        completion_tokens: 7,
      });
      expect(log.ttft_ms).not.toBeNull();
    },
  );

  it('chat, stream with include_usage: the usage chunk reaches the client and matches the bill', async () => {
    const { key, c } = await fundedClient();
    const messages = [{ role: 'user' as const, content: 'stream with usage please' }];
    const { data: stream, response } = await c.chat.completions
      .create({
        model: 'chat-b',
        messages,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    let text = '';
    const usages: Array<{ prompt_tokens: number; completion_tokens: number }> = [];
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      if (c.usage) {
        expect(c.choices).toEqual([]);
        usages.push(c.usage);
      }
    }
    expect(text).toBe(expectedChatCompletion(messages, 16));
    const promptTokens = countChatPromptTokens(messages);
    expect(usages).toHaveLength(1);
    expect(usages[0]).toMatchObject({ prompt_tokens: promptTokens, completion_tokens: 16 });
    expect((lastUpstream('/v1/chat/completions').body as Sent).stream_options).toEqual({
      include_usage: true,
    });

    await expectExactBill(s, key.id, response, CHAT_PRICE, {
      model: 'chat-b',
      stream: true,
      prompt_tokens: promptTokens,
      completion_tokens: 16,
    });
  });

  it('completions, plain and stream: exact text and billing', async () => {
    const { key, c } = await fundedClient();
    const prompt = 'Once upon a time a mole';
    const { data, response } = await c.completions
      .create({ model: 'cmp-a', prompt, max_tokens: 5 })
      .withResponse();
    expect(data.choices[0]!.text).toBe(expectedTextCompletion(prompt, 5));
    const p = countTextTokens(prompt);
    expect(data.usage).toMatchObject({ prompt_tokens: p, completion_tokens: 5 });
    await expectExactBill(s, key.id, response, CMP_PRICE, {
      endpoint: '/v1/completions',
      stream: false,
      prompt_tokens: p,
      completion_tokens: 5,
    });

    const { data: stream, response: r2 } = await c.completions
      .create({ model: 'cmp-a', prompt, stream: true })
      .withResponse();
    let text = '';
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      expect(chunk.usage ?? null).toBeNull();
    }
    expect(text).toBe(expectedTextCompletion(prompt, 16));
    expect((lastUpstream('/v1/completions').body as Sent).stream_options).toEqual({ include_usage: true });
    await expectExactBill(s, key.id, r2, CMP_PRICE, {
      stream: true,
      prompt_tokens: p,
      completion_tokens: 16,
    });
  });

  it('embeddings: float, SDK default (base64 on the wire, floats to the caller) and explicit base64 agree; billed on input tokens', async () => {
    const { key, c } = await fundedClient();
    const input = ['the mole digs', 'a tunnel under the garden'];

    const { data: asFloat, response: r1 } = await c.embeddings
      .create({ model: 'emb-a', input, encoding_format: 'float' })
      .withResponse();
    expect((lastUpstream('/v1/embeddings').body as Sent).encoding_format).toBe('float');
    expect(asFloat.data).toHaveLength(2);
    expect(asFloat.data[0]!.embedding).toHaveLength(1536);
    expect(typeof asFloat.data[0]!.embedding[0]).toBe('number');

    const asDefault = await c.embeddings.create({ model: 'emb-a', input });
    expect((lastUpstream('/v1/embeddings').body as Sent).encoding_format).toBe('base64');
    expect(asDefault.data.map((d) => d.embedding)).toEqual(asFloat.data.map((d) => d.embedding));

    const asB64 = await c.embeddings.create({ model: 'emb-a', input, encoding_format: 'base64' });
    const raw = asB64.data[1]!.embedding as unknown as string;
    expect(typeof raw).toBe('string');
    const buf = Buffer.from(raw, 'base64');
    const decoded = Array.from({ length: buf.length / 4 }, (_, i) => buf.readFloatLE(i * 4));
    expect(decoded).toEqual(asFloat.data[1]!.embedding);

    const p = countTextTokens(input[0]!) + countTextTokens(input[1]!);
    expect(asFloat.usage.prompt_tokens).toBe(p);
    await expectExactBill(s, key.id, r1, EMB_PRICE, {
      endpoint: '/v1/embeddings',
      prompt_tokens: p,
      completion_tokens: 0,
    });
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows).toHaveLength(3);
    for (const r of rows)
      expect(nanoOf(r.cost)).toBe(expectedCostNano({ prompt: p, completion: 0 }, EMB_PRICE));
  });

  it('model_map: the upstream receives the mapped name; the log keeps both', async () => {
    const { key, c } = await fundedClient();
    const { response } = await c.chat.completions
      .create({ model: 'mapped-a', messages: [{ role: 'user', content: 'map me' }] })
      .withResponse();
    expect((lastUpstream('/v1/chat/completions').body as Sent).model).toBe('gpt-4o-upstream-name');
    const log = await logByRequestId(s, key.id, response.headers.get('x-request-id')!);
    expect(log).toMatchObject({
      model: 'mapped-a',
      upstream_model: 'gpt-4o-upstream-name',
      channel_id: channelId,
    });
  });

  it('/v1/models lists only what the key may use: its allowlist (with wildcards) and its group', async () => {
    const vip = uniq('vip');
    await addChannel(s, { type: 'mock', models: ['vip-only'], groups: [vip] });
    await setPrice(s, 'vip-only', { input: 1, output: 1 });

    const plain = await userWithKey(s);
    const ids = (await client(s, plain.secret).models.list()).data.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining(['chat-a', 'chat-b', 'cmp-a', 'emb-a', 'mapped-a']));
    expect(ids).not.toContain('vip-only');
    for (const m of (await client(s, plain.secret).models.list()).data) expect(m.object).toBe('model');

    const limited = await userWithKey(s, { key: { models: ['chat-*', 'emb-a'] } });
    const limitedIds = (await client(s, limited.secret).models.list()).data.map((m) => m.id).sort();
    expect(limitedIds).toEqual(['chat-a', 'chat-b', 'emb-a']);

    const vipUser = await userWithKey(s, { group: vip });
    const vipIds = (await client(s, vipUser.secret).models.list()).data.map((m) => m.id);
    expect(vipIds).toEqual(expect.arrayContaining(['vip-only', 'chat-a']));
    // A key may name a group of its own, overriding its owner's.
    const vipKey = await userWithKey(s, { key: { group: vip, models: ['vip-*'] } });
    expect((await client(s, vipKey.secret).models.list()).data.map((m) => m.id)).toEqual(['vip-only']);
    const r = await client(s, vipKey.secret).chat.completions.create({
      model: 'vip-only',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(r.choices[0]!.message.content).toBeTruthy();
  });

  it('/v1/models leaves out models that are served but not priced (they would be refused); models.retrieve answers for usable models only', async () => {
    const unpriced = uniq('unpriced');
    await addChannel(s, { type: 'mock', models: [unpriced] });
    const { key, secret } = await userWithKey(s);
    const c = client(s, secret);
    expect((await c.models.list()).data.map((m) => m.id)).not.toContain(unpriced);
    await setPrice(s, unpriced, { input: 0, output: 0 });
    expect((await c.models.list()).data.map((m) => m.id)).toContain(unpriced);

    const got = await c.models.retrieve('chat-a');
    expect(got).toMatchObject({ id: 'chat-a', object: 'model' });
    const missing = await sdkError(c.models.retrieve('no-such-model'));
    expect([missing.status, missing.code]).toEqual([404, 'model_not_found']);
    const limited = await userWithKey(s, { key: { models: ['chat-a'] } });
    const hidden = await sdkError(client(s, limited.secret).models.retrieve('chat-b'));
    expect([hidden.status, hidden.code]).toEqual([404, 'model_not_found']);
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows.find((r) => r.error_code === 'model_not_found')).toMatchObject({
      model: 'no-such-model',
      cost: 0,
      status: 404,
    });
  });

  it('a channel serving a wildcard lists the priced models it matches: /v1/models, retrieve, Gemini, /api/models', async () => {
    const prefix = uniq('wild');
    const [priced, unpriced] = [`${prefix}-x`, `${prefix}-y`];
    await addChannel(s, { type: 'mock', models: [`${prefix}-*`] });
    await setPrice(s, priced, { input: 1, output: 1 });
    const { secret } = await userWithKey(s);
    const c = client(s, secret);
    const ids = (await c.models.list()).data.map((m) => m.id);
    expect(ids).toContain(priced);
    expect(ids).not.toContain(unpriced);
    expect(await c.models.retrieve(priced)).toMatchObject({ id: priced });
    const gemini = await fetch(`${s.url}/v1beta/models`, { headers: { 'x-goog-api-key': secret } });
    expect(await gemini.text()).toContain(`models/${priced}`);
    const listed = await s.api('GET', '/api/models?group=default');
    expect(listed.body.data).toContainEqual({ id: priced, priced: true });
  });

  it('a model served only by channels that cannot do the operation: 400, tried nowhere, not retried', async () => {
    const m = uniq('msg-only');
    const origin = mock.url.replace(/\/v1$/, '');
    await addChannel(s, { type: 'anthropic', base_url: origin, api_key: UPSTREAM_KEY, models: [m] });
    await setPrice(s, m, { input: 1, output: 1 });
    const { key, c } = await fundedClient();
    mock.reset();
    const emb = await sdkError(c.embeddings.create({ model: m, input: 'hi' }));
    expect([emb.status, emb.code, emb.param]).toEqual([400, 'invalid_request', 'model']);
    expect(emb.message).toContain('not served for embeddings');
    const cmp = await sdkError(c.completions.create({ model: m, prompt: 'hi' }));
    expect([cmp.status, cmp.code]).toEqual([400, 'invalid_request']);
    expect(mock.requests).toHaveLength(0);
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows.map((r) => [r.status, r.error_code, r.cost])).toEqual([
      [400, 'invalid_request', 0],
      [400, 'invalid_request', 0],
    ]);
    // Generation through the same channel works.
    const ok = await c.chat.completions.create({ model: m, messages: [{ role: 'user', content: 'hi' }] });
    expect(ok.choices[0]!.message.content).toBeTruthy();
  });

  it('a model named like an Object property ("constructor") is served as itself', async () => {
    await addChannel(s, { type: 'mock', models: ['constructor'] });
    await setPrice(s, 'constructor', { input: 1, output: 1 });
    const { c } = await fundedClient();
    const r = await c.chat.completions.create({
      model: 'constructor',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(r.choices[0]!.message.content).toBeTruthy();
  });

  it('a pass-through sends the client’s bytes; a stream gains stream_options, a capless body its cap', async () => {
    const { secret } = await userWithKey(s, { balance: 10 });
    // Spacing and key order JSON.stringify would not keep: the upstream sees them as sent.
    const plain =
      '{ "messages" : [ {"role":"user","content":"raw \\"bytes\\""} ],\n "max_tokens": 4, "model": "chat-a" }';
    const a = await rawRelay(s, '/chat/completions', { key: secret, body: plain });
    expect(a.status, a.text).toBe(200);
    expect(lastUpstream('/v1/chat/completions').rawBody).toBe(plain);
    const stream =
      '{"model":"chat-a","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"hi"}]}';
    const b = await rawRelay(s, '/chat/completions', { key: secret, body: stream });
    expect(b.status, b.text).toBe(200);
    expect(lastUpstream('/v1/chat/completions').rawBody).toBe(
      `${stream.slice(0, -1)},"stream_options":{"include_usage":true}}`,
    );
    // No cap of its own: the one admission held is appended, after a stream's usage switch.
    const capless = '{ "model": "chat-a", "stream": true, "messages": [{"role":"user","content":"hi"}] }';
    const d = await rawRelay(s, '/chat/completions', { key: secret, body: capless });
    expect(d.status, d.text).toBe(200);
    expect(lastUpstream('/v1/chat/completions').rawBody).toMatch(
      /^\{ "model": "chat-a", "stream": true, "messages": \[\{"role":"user","content":"hi"\}\] ,"stream_options":\{"include_usage":true\},"max_completion_tokens":\d+\}$/,
    );
    // A repeated key is never forwarded as sent: the upstream gets the one model checked here.
    const twice =
      '{"model":"chat-b","max_tokens":4,"messages":[{"role":"user","content":"hi"}],"model":"chat-a"}';
    const c = await rawRelay(s, '/chat/completions', { key: secret, body: twice });
    expect(c.status, c.text).toBe(200);
    expect(lastUpstream('/v1/chat/completions').rawBody).toBe(JSON.stringify(JSON.parse(twice)));
  });

  it('embeddings with a stray stream: true are answered as JSON and do not count against the channel', async () => {
    const { key, secret } = await userWithKey(s, { balance: 10 });
    for (let i = 0; i < 4; i++) {
      const r = await rawRelay(s, '/embeddings', {
        key: secret,
        body: JSON.stringify({ model: 'emb-a', input: `stray ${i}`, stream: true }),
      });
      expect(r.status, r.text).toBe(200);
      expect(r.json.data[0].embedding).toHaveLength(1536);
    }
    expect((await s.api('GET', `/api/channels/${channelId}`)).body.cooling_down_until).toBeNull();
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows.map((r) => [r.status, r.stream])).toEqual(Array(4).fill([200, false]));
  });

  it('the built-in mock channel type serves chat, streams, completions and embeddings offline, billed exactly from its usage', async () => {
    const model = uniq('mole-offline');
    const emb = uniq('mole-emb');
    const ch = await addChannel(s, { type: 'mock', models: [model, emb] });
    const price = { input: 3, output: 7 };
    await setPrice(s, model, price);
    await setPrice(s, emb, price);
    await setGroup(s, 'offline-x2', 2);
    const { key, secret } = await userWithKey(s, { balance: 5, group: 'offline-x2' });
    const c = client(s, secret);
    const before = mock.requests.length;

    const chat = await c.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'offline hello' }],
      max_tokens: 5,
    });
    expect(chat.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(chat.usage!.completion_tokens).toBe(5);
    let streamed = '';
    let usage: OpenAI.CompletionUsage | null = null;
    for await (const x of await c.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'offline stream' }],
      stream: true,
      stream_options: { include_usage: true },
    })) {
      streamed += x.choices[0]?.delta?.content ?? '';
      if (x.usage) usage = x.usage;
    }
    expect(streamed.length).toBeGreaterThan(0);
    expect(usage).toBeTruthy();
    const cmp = await c.completions.create({ model, prompt: 'offline prompt' });
    expect(cmp.choices[0]!.text.length).toBeGreaterThan(0);
    const e = await c.embeddings.create({ model: emb, input: 'offline embedding' });
    expect(e.data[0]!.embedding.length).toBeGreaterThan(0);
    expect(mock.requests.length, 'no network upstream was called').toBe(before);

    const rows = await allLogs(s, { key_id: key.id });
    expect(rows).toHaveLength(4);
    for (const r of rows) {
      expect(r).toMatchObject({ status: 200, channel_id: ch.id, estimated: false, error_code: null });
      expect(nanoOf(r.cost)).toBe(
        expectedCostNano(
          { prompt: r.prompt_tokens, cached: r.cached_tokens, completion: r.completion_tokens },
          price,
          2,
        ),
      );
      expect(r.prompt_tokens).toBeGreaterThan(0);
    }
    const chatLog = rows.find((r) => r.endpoint === '/v1/chat/completions' && !r.stream)!;
    expect(chatLog.prompt_tokens).toBe(chat.usage!.prompt_tokens);
    expect(chatLog.completion_tokens).toBe(5);
  });

  it('/v1/key shows the presenting key, its limits and spend, never the secret', async () => {
    const { key, secret } = await userWithKey(s, { balance: 10, key: { quota: 2, models: ['chat-a'] } });
    await client(s, secret).chat.completions.create({
      model: 'chat-a',
      messages: [{ role: 'user', content: 'spend a little' }],
    });
    const res = await fetch(s.url + '/v1/key', { headers: { authorization: `Bearer ${secret}` } });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain(secret);
    const body = JSON.parse(text);
    expect(body).toMatchObject({ id: key.id, status: 'active', models: ['chat-a'], quota: 2 });
    const logs = await allLogs(s, { key_id: key.id, model: 'chat-a' });
    expect(nanoOf(body.used)).toBe(nanoOf(logs[0]!.cost));
    expect(nanoOf(body.remaining)).toBe(2n * 1_000_000_000n - nanoOf(logs[0]!.cost));
  });
});
