// Anthropic Messages through the real gateway, on SQLite and PostgreSQL, with the official
// @anthropic-ai/sdk (and the openai SDK for the OpenAI-in → Anthropic-channel pair) against
// the mock provider: pass-through to an Anthropic channel (unknown fields, anthropic-*
// headers, 4xx bodies byte for byte), translation to and from an OpenAI channel (plain,
// stream, tool round trips), exact cost per log row, token counting, and the key rules in
// Anthropic's error shape and the contract's check order.
import Anthropic from '@anthropic-ai/sdk';
import type OpenAI from 'openai';
import { countTokens } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { countMessagesTokens } from '../../src/relay/protocols/anthropic.js';
import { backends, type TestJsonObject, type TestServer, userWithKey } from '../helpers/server.js';
import { channelTo, gatewayWithChannels } from '../helpers/gateway-channels.js';
import { WEATHER_TOOL } from '../helpers/weather-tool.js';
import { countAnthropicPromptTokens, expectedAnthropicText } from '../mock-provider/anthropic.js';
import { expectedGeminiText } from '../mock-provider/gemini.js';
import {
  CHAT_STREAM_PADDINGS,
  countChatPromptTokens,
  DEFAULT_COMPLETION_TOKENS,
  expectedChatCompletion,
  type MockProvider,
} from '../mock-provider/server.js';
import {
  addChannel,
  addPricedChannel,
  allLogs,
  client,
  type LogRow,
  nanoOf,
  rawRelay,
} from '../relay/relay-helpers.js';

const UP_KEY = 'sk-ant-upstream-secret-0001';

interface Price {
  input: number;
  output: number;
  cached_input?: number;
  cache_write?: number;
  cache_write_1h?: number;
}
const PRICES: Record<string, Price> = {
  'claude-pass': { input: 3, output: 15, cached_input: 0.3, cache_write: 3.75 },
  'claude-trans': { input: 1, output: 5, cached_input: 0.1, cache_write: 1.25 },
  'gpt-trans': { input: 2.5, output: 10, cached_input: 1.25 },
  'claude-pricey': { input: 1000, output: 1000 },
};

/** USD per 1M tokens → exact nano-USD per 1M (via the decimal string). */
function perM(usd: number): bigint {
  const [i, f = ''] = String(usd).split('.');
  return BigInt(i!) * 1_000_000_000n + BigInt((f || '0').padEnd(9, '0').slice(0, 9));
}

/**
 * ceil((uncached·in + cacheRead·cachedIn + cacheWrite·writeIn + cacheWrite1h·write1hIn
 * + output·out) / 1e6), nano-USD; `cacheWrite` excludes the hour-long writes here.
 */
function expectedCost(
  u: { input: number; cacheRead: number; cacheWrite: number; cacheWrite1h?: number; output: number },
  p: Price,
) {
  const num =
    BigInt(u.input) * perM(p.input) +
    BigInt(u.cacheRead) * perM(p.cached_input ?? p.input) +
    BigInt(u.cacheWrite) * perM(p.cache_write ?? p.input) +
    BigInt(u.cacheWrite1h ?? 0) *
      (p.cache_write_1h === undefined ? 2n * perM(p.input) : perM(p.cache_write_1h)) +
    BigInt(u.output) * perM(p.output);
  return (num + 999_999n) / 1_000_000n;
}

async function newestLog(s: TestServer, keyId: number, count = 1): Promise<LogRow> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const rows = await allLogs(s, { key_id: keyId });
    if (rows.length >= count) return rows[0]!;
    if (Date.now() > deadline)
      throw new Error(`expected ${count} log rows for key ${keyId}, got ${rows.length}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const user = (content: string): Anthropic.MessageParam => ({ role: 'user', content });
const weather: Anthropic.Tool = {
  name: WEATHER_TOOL.name,
  description: WEATHER_TOOL.description,
  input_schema: WEATHER_TOOL.parameters,
};

describe.each(backends())('Anthropic Messages through the gateway (%s)', (backend) => {
  let s: TestServer;
  let mock: MockProvider;
  let origin: string;

  const sdk = (key: string) => new Anthropic({ baseURL: s.url, apiKey: key, maxRetries: 0, timeout: 20_000 });
  const openai = (key: string) => client(s, key);
  /** A call under /v1 the SDK cannot make (a string body is sent as it is). */
  const raw = (path: string, body: unknown, headers: Record<string, string>) =>
    rawRelay(s, path, { body: typeof body === 'string' ? body : JSON.stringify(body), headers });
  const lastUpstream = () => mock.requests[mock.requests.length - 1]!;

  /** The key's newest log row: its protocol, its token counts, and its cost to the nano-USD at `model`'s prices. */
  async function expectBilled(
    keyId: number,
    model: string,
    protocol: string,
    u: { prompt: number; cacheRead: number; cacheWrite?: number },
  ) {
    const { prompt, cacheRead, cacheWrite = 0 } = u;
    const row = await newestLog(s, keyId);
    expect(row).toMatchObject({
      protocol,
      prompt_tokens: prompt,
      cached_tokens: cacheRead,
      cache_write_tokens: cacheWrite,
      completion_tokens: DEFAULT_COMPLETION_TOKENS,
    });
    const input = prompt - cacheRead - cacheWrite;
    expect(nanoOf(row.cost)).toBe(
      expectedCost({ input, cacheRead, cacheWrite, output: DEFAULT_COMPLETION_TOKENS }, PRICES[model]!),
    );
    return row;
  }

  /** A pass-through stream the upstream fails: the text the SDK read first, and the error it threw. */
  async function failedStream(secret: string, content: string) {
    const stream = sdk(secret).messages.stream({
      model: 'claude-pass',
      max_tokens: 50,
      messages: [user(content)],
    });
    const texts: string[] = [];
    stream.on('text', (t) => texts.push(t));
    const err = await stream.finalMessage().catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    return { texts, err };
  }

  /** Asks `model` about the weather: its tool call, and the conversation that answers the call. */
  async function weatherCall(c: Anthropic, model: string) {
    const first = await c.messages.create({
      model,
      max_tokens: 200,
      tools: [weather],
      messages: [user('Weather in Paris?')],
    });
    expect(first.stop_reason).toBe('tool_use');
    const call = first.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock;
    expect(call).toMatchObject({ name: 'get_weather', input: { city: 'mole', days: 1 } });
    const round: Anthropic.MessageParam[] = [
      user('Weather in Paris?'),
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'sunny' }] },
    ];
    return { first, call, round };
  }

  /** A stream of `model` the SDK reads (its text events make the message) and a weather tool call. */
  async function streamAndToolCall(c: Anthropic, model: string) {
    const stream = c.messages.stream({ model, max_tokens: 50, messages: [user('Hi')] });
    const texts: string[] = [];
    stream.on('text', (t) => texts.push(t));
    const streamed = await stream.finalMessage();
    expect(texts.join('')).toBe((streamed.content[0] as Anthropic.TextBlock).text);
    const { first: toolAnswer } = await weatherCall(c, model);
    return { streamed, toolAnswer };
  }

  gatewayWithChannels(
    { backend },
    {
      apiKey: UP_KEY,
      channels: [
        {
          type: 'anthropic',
          models: ['claude-pass', 'claude-trans', 'claude-pricey'],
          model_map: { 'claude-pass': 'claude-upstream-1' },
        },
        // The OpenAI side of the mock checks Bearer credentials against the same key.
        { type: 'openai', models: ['gpt-trans'] },
      ],
      prices: PRICES,
    },
    (g) => {
      ({ s, mock, origin } = g);
    },
  );

  // ── pass-through: Anthropic in → Anthropic channel ───────────────────────────────────────

  describe('pass-through to an Anthropic channel', () => {
    it('plain: the mock sees the body as sent (model mapped, unknown fields kept) and anthropic-* headers verbatim', async () => {
      const { secret } = await userWithKey(s);
      const messages = [user('Tell me about tunnels.')];
      const body = {
        model: 'claude-pass',
        max_tokens: 64,
        system: 'You are a mole.',
        messages,
        context_management: { edits: [{ type: 'clear_tool_uses_20250919' }] },
        metadata: { user_id: 'u-1' },
      };
      const beta = 'context-management-2025-06-27,interleaved-thinking-2025-05-14';
      const { data: m, response } = await sdk(secret)
        .messages.create(body as Anthropic.MessageCreateParamsNonStreaming, {
          headers: { 'anthropic-beta': beta, 'anthropic-custom-flag': 'yes' },
        })
        .withResponse();
      expect(response.headers.get('x-request-id')).toBeTruthy();
      expect((m.content[0] as Anthropic.TextBlock).text).toBe(expectedAnthropicText(messages));
      expect(m.stop_reason).toBe('end_turn');
      expect(m.usage).toMatchObject({
        input_tokens: countAnthropicPromptTokens(body),
        output_tokens: DEFAULT_COMPLETION_TOKENS,
      });
      const up = lastUpstream();
      expect(up.path).toBe('/v1/messages');
      expect(up.body).toEqual({ ...body, model: 'claude-upstream-1' });
      expect(up.headers['anthropic-beta']).toBe(beta);
      expect(up.headers['anthropic-custom-flag']).toBe('yes');
      // The SDK's own anthropic-version reaches the upstream; the channel's key replaces the client's.
      expect(up.headers['anthropic-version']).toMatch(/^\d{4}-\d\d-\d\d$/);
      expect(up.headers['x-api-key']).toBe(UP_KEY);
      expect(JSON.stringify(up.headers)).not.toContain(secret);
    });

    it('the SDK’s models.list and models.retrieve get Anthropic’s shape', async () => {
      const { secret } = await userWithKey(s);
      const ids: string[] = [];
      for await (const m of sdk(secret).models.list()) {
        expect(m).toMatchObject({ type: 'model', display_name: m.id, created_at: expect.any(String) });
        ids.push(m.id);
      }
      expect(ids).toContain('claude-pass');
      expect(await sdk(secret).models.retrieve('claude-pass')).toMatchObject({
        type: 'model',
        id: 'claude-pass',
      });
      const missing = await sdk(secret)
        .models.retrieve('claude-nowhere')
        .catch((e) => e);
      expect(missing).toBeInstanceOf(Anthropic.NotFoundError);
      expect(missing.error).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    });

    it('server and beta tools are the upstream’s to check (an mcp_toolset has no name); a custom tool needs one', async () => {
      const { secret } = await userWithKey(s);
      const tools = [{ type: 'mcp_toolset', mcp_server_name: 'ex' }];
      const body = { model: 'claude-pass', max_tokens: 16, messages: [user('Hi')], tools };
      const before = mock.requests.length;
      await raw('/messages', body, { 'x-api-key': secret, 'anthropic-beta': 'mcp-client-2025-11-20' });
      expect(mock.requests.length).toBe(before + 1);
      expect((lastUpstream().body as { tools: unknown }).tools).toEqual(tools);
      const unnamed = await raw(
        '/messages',
        { ...body, tools: [{ input_schema: { type: 'object' } }] },
        {
          'x-api-key': secret,
        },
      );
      expect(unnamed.status).toBe(400);
      expect(unnamed.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
      expect((unnamed.json as { error: { message: string } }).error.message).toContain('tools.0.name');
      expect(mock.requests.length).toBe(before + 1);
    });

    it('a body whose model goes unchanged reaches the channel byte for byte; a repeated key never does', async () => {
      const { secret } = await userWithKey(s);
      // Spacing, key order and escapes JSON.stringify would not keep.
      const sent =
        '{ "max_tokens" : 8,\n "messages": [{"role":"user","content":"raw \\"bytes\\" \\u00e9"}], "model":"claude-trans" }';
      const a = await raw('/messages', sent, { 'x-api-key': secret });
      expect(a.status, a.text).toBe(200);
      expect(lastUpstream().rawBody).toBe(sent);
      // Mapped, the body is rebuilt with the upstream's name.
      const mapped = sent.replace('claude-trans', 'claude-pass');
      expect((await raw('/messages', mapped, { 'x-api-key': secret })).status).toBe(200);
      expect(lastUpstream().body).toEqual({ ...JSON.parse(mapped), model: 'claude-upstream-1' });
      // JSON.parse keeps the last "model"; an upstream keeping the first must not see another.
      const twice = `{"model":"claude-pricey",${sent.slice(1)}`;
      expect((await raw('/messages', twice, { 'x-api-key': secret })).status).toBe(200);
      expect(lastUpstream().rawBody).toBe(JSON.stringify(JSON.parse(twice)));
    });

    it('?beta=true (the SDK beta client, as Claude Code posts) and x-api-key credentials work', async () => {
      const { secret } = await userWithKey(s);
      const m = await sdk(secret).beta.messages.create({
        model: 'claude-pass',
        max_tokens: 8,
        messages: [user('Hi')],
        betas: ['context-management-2025-06-27'],
      });
      expect(m.usage.output_tokens).toBe(8);
      expect(lastUpstream().headers['anthropic-beta']).toBe('context-management-2025-06-27');
      const r = await raw(
        '/messages?beta=true',
        { model: 'claude-pass', max_tokens: 4, messages: [user('Hi')] },
        { 'x-api-key': secret, 'anthropic-version': '2023-06-01' },
      );
      expect(r.status).toBe(200);
      expect(r.json.usage.output_tokens).toBe(4);
      expect(lastUpstream().headers['anthropic-version']).toBe('2023-06-01');
    });

    it('stream: the SDK stream helper and its final message; the log row is the stream', async () => {
      const { secret, key } = await userWithKey(s);
      const messages = [user('Stream me a tunnel.')];
      const stream = sdk(secret).messages.stream({ model: 'claude-pass', max_tokens: 100, messages });
      const texts: string[] = [];
      stream.on('text', (t) => texts.push(t));
      const m = await stream.finalMessage();
      expect(texts).toHaveLength(DEFAULT_COMPLETION_TOKENS);
      expect(texts.join('')).toBe(expectedAnthropicText(messages));
      expect(m.usage.output_tokens).toBe(DEFAULT_COMPLETION_TOKENS);
      const row = await newestLog(s, key.id);
      expect(row).toMatchObject({ stream: true, status: 200, protocol: 'anthropic', model: 'claude-pass' });
      expect(row.upstream_model).toBe('claude-upstream-1');
      expect(row.completion_tokens).toBe(DEFAULT_COMPLETION_TOKENS);
    });

    it('a tool round trip (plain and streamed)', async () => {
      const { secret } = await userWithKey(s);
      const c = sdk(secret);
      const { round } = await weatherCall(c, 'claude-pass');
      const second = await c.messages
        .stream({ model: 'claude-pass', max_tokens: 200, tools: [weather], messages: round })
        .finalMessage();
      expect(second.stop_reason).toBe('end_turn');
      expect((second.content[0] as Anthropic.TextBlock).text).toBe(expectedAnthropicText(round));
      const streamedCall = await c.messages
        .stream({ model: 'claude-pass', max_tokens: 200, tools: [weather], messages: [user('Again?')] })
        .finalMessage();
      expect(streamedCall.content[0]).toMatchObject({ type: 'tool_use', input: { city: 'mole', days: 1 } });
    });

    it("an upstream 400 reaches the client byte for byte (Claude Code's recovery reads its wording)", async () => {
      const { secret } = await userWithKey(s);
      mock.setScenario('claude-upstream-1', {
        status: 400,
        errorMessage: 'messages.1.content.0.thinking.signature: Invalid `signature` in `thinking` block',
        spacedJson: true,
        times: 1,
      });
      const r = await raw(
        '/messages',
        { model: 'claude-pass', max_tokens: 8, messages: [user('Hi')] },
        { 'x-api-key': secret, 'anthropic-version': '2023-06-01' },
      );
      expect(r.status).toBe(400);
      // Spaced JSON (the mock's, not something the gateway re-serialised), exactly as sent.
      expect(r.text).toMatch(
        /^\{"type": "error", "error": \{"type": "invalid_request_error", "message": "messages\.1\.content\.0\.thinking\.signature: Invalid `signature` in `thinking` block"\}, "request_id": "req_[a-z0-9]+"\}$/,
      );
      // And through the SDK: the error class and the upstream's wording.
      mock.setScenario('claude-upstream-1', { status: 400, errorMessage: 'prompt is too long', times: 1 });
      const err = await sdk(secret)
        .messages.create({ model: 'claude-pass', max_tokens: 8, messages: [user('Hi')] })
        .catch((e) => e);
      expect(err).toBeInstanceOf(Anthropic.BadRequestError);
      expect(err.error.error.message).toBe('prompt is too long');
    });

    it('an error event before anything reached the client fails over: 502 in Anthropic shape', async () => {
      const { secret } = await userWithKey(s);
      mock.setScenario('claude-upstream-1', { midStreamError: 3, times: 1 });
      const { err } = await failedStream(secret, 'Hi');
      expect(err.status).toBe(502);
      expect(err.error).toMatchObject({
        type: 'error',
        error: { type: 'overloaded_error', code: 'upstream_error' },
      });
    });

    it('an error event after the answer began ends the stream with an event: error frame', async () => {
      const { secret, key } = await userWithKey(s);
      mock.setScenario('claude-upstream-1', { midStreamError: 3, chunkDelayMs: 30, times: 1 });
      const { texts, err } = await failedStream(secret, 'Hi');
      expect(err.error).toMatchObject({
        type: 'error',
        error: { type: 'overloaded_error', code: 'upstream_error' },
      });
      expect(texts).toHaveLength(3);
      const row = await newestLog(s, key.id);
      expect(row).toMatchObject({ status: 200, error_code: 'upstream_error', stream: true });
    });

    it('exact cost per log row: uncached input, cache reads, cache writes and output at their prices', async () => {
      const { secret, key } = await userWithKey(s);
      mock.setScenario('claude-upstream-1', { cachedTokens: 7, cacheWriteTokens: 5 });
      try {
        const messages = [user('Cache this long prompt about moles and their tunnels.')];
        const m = await sdk(secret).messages.create({ model: 'claude-pass', max_tokens: 30, messages });
        const prompt = countAnthropicPromptTokens({ messages });
        expect(m.usage).toMatchObject({
          input_tokens: prompt - 12,
          cache_read_input_tokens: 7,
          cache_creation_input_tokens: 5,
        });
        const row = await expectBilled(key.id, 'claude-pass', 'anthropic', {
          prompt,
          cacheRead: 7,
          cacheWrite: 5,
        });
        expect(row.estimated).toBe(false);

        const st = await sdk(secret)
          .messages.stream({ model: 'claude-pass', max_tokens: 30, messages })
          .finalMessage();
        expect(st.usage.cache_read_input_tokens).toBe(7);
        const srow = await newestLog(s, key.id, 2);
        expect(srow).toMatchObject({
          stream: true,
          prompt_tokens: prompt,
          cached_tokens: 7,
          cache_write_tokens: 5,
        });
        expect(srow.cost).toBe(row.cost);
      } finally {
        mock.clearScenarios();
      }
    });

    it('cache writes kept for an hour: reported as such and billed at their own price', async () => {
      const { secret, key } = await userWithKey(s);
      mock.setScenario('claude-upstream-1', { cachedTokens: 7, cacheWriteTokens: 5 });
      const hour = { type: 'ephemeral', ttl: '1h' } as const;
      const body = {
        model: 'claude-pass',
        max_tokens: 30,
        system: [
          { type: 'text' as const, text: 'You are a mole who remembers for an hour.', cache_control: hour },
        ],
        messages: [user('Cache this long prompt about moles and their tunnels.')],
      };
      const prompt = countAnthropicPromptTokens(body);
      const cost = (p: Price) =>
        expectedCost(
          {
            input: prompt - 12,
            cacheRead: 7,
            cacheWrite: 0,
            cacheWrite1h: 5,
            output: DEFAULT_COMPLETION_TOKENS,
          },
          p,
        );
      try {
        const m = await sdk(secret).messages.create(body);
        expect(m.usage).toMatchObject({
          cache_creation_input_tokens: 5,
          cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 5 },
        });
        // No hour price set: twice the input price, as Anthropic bills them.
        const row = await newestLog(s, key.id);
        expect(row).toMatchObject({
          prompt_tokens: prompt,
          cached_tokens: 7,
          cache_write_tokens: 5,
          cache_write_1h_tokens: 5,
        });
        expect(nanoOf(row.cost)).toBe(cost(PRICES['claude-pass']!));

        const priced = { ...PRICES['claude-pass']!, cache_write_1h: 5.5 };
        const put = await s.api('PUT', '/api/prices/claude-pass', priced);
        expect(put.body).toMatchObject({ cache_write: 3.75, cache_write_1h: 5.5 });
        const st = await sdk(secret).messages.stream(body).finalMessage();
        expect(st.usage.cache_creation).toMatchObject({ ephemeral_1h_input_tokens: 5 });
        const srow = await newestLog(s, key.id, 2);
        expect(srow).toMatchObject({ stream: true, cache_write_tokens: 5, cache_write_1h_tokens: 5 });
        expect(nanoOf(srow.cost)).toBe(cost(priced));
        expect(cost(priced)).not.toBe(cost(PRICES['claude-pass']!));

        // Cut mid-way: the output is estimated, the input as message_start reported it.
        mock.setScenario('claude-upstream-1', { cachedTokens: 7, cacheWriteTokens: 5, cutAfterChunks: 2 });
        await sdk(secret)
          .messages.stream(body)
          .finalMessage()
          .catch(() => null);
        const cut = await newestLog(s, key.id, 3);
        expect(cut).toMatchObject({
          estimated: true,
          cached_tokens: 7,
          cache_write_tokens: 5,
          cache_write_1h_tokens: 5,
        });
        const cutOutput = cut.completion_tokens;
        expect(nanoOf(cut.cost)).toBe(
          expectedCost(
            { input: prompt - 12, cacheRead: 7, cacheWrite: 0, cacheWrite1h: 5, output: cutOutput },
            priced,
          ),
        );
      } finally {
        mock.clearScenarios();
        await s.api('PUT', '/api/prices/claude-pass', PRICES['claude-pass']);
      }
    });

    it('admission holds an hour-long cache write at its price: a quota it would pass is refused', async () => {
      const hour = { type: 'ephemeral', ttl: '1h' } as const;
      const system = [{ type: 'text' as const, text: 'A system prompt worth caching.', cache_control: hour }];
      const body = { model: 'claude-pass', max_tokens: 30, system, messages: [user('Dig.')] };
      const { secret: counter } = await userWithKey(s);
      // The gateway's own count, as admission takes it.
      const prompt = (await sdk(counter).messages.countTokens(body)).input_tokens;
      // Room for every input token at the (5-minute) cache-write price, 3.75 USD/1M, not at 6.
      const quotaNano = prompt * 3_750 + 30 * 15_000;
      const { secret } = await userWithKey(s, { key: { quota: quotaNano / 1e9 } });
      const r = await raw('/messages', body, { 'x-api-key': secret });
      expect([r.status, r.json.error.type]).toEqual([429, 'rate_limit_error']);
      const fiveMinutes = { ...body, system: [{ ...system[0]!, cache_control: { type: 'ephemeral' } }] };
      const ok = await raw('/messages', fiveMinutes, { 'x-api-key': secret });
      expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    });

    it("count_tokens is one of the key's requests: rpm refuses the one past it, in Anthropic's shape", async () => {
      const { secret, key } = await userWithKey(s, { key: { rpm: 2 } });
      const body = { model: 'claude-pass', messages: [user('Count me.')] };
      for (let i = 0; i < 2; i++)
        expect((await sdk(secret).messages.countTokens(body)).input_tokens).toBeGreaterThan(0);
      const r = await raw('/messages/count_tokens', body, { 'x-api-key': secret });
      expect([r.status, r.json.error.type]).toEqual([429, 'rate_limit_error']);
      expect(r.headers.get('retry-after')).toBeTruthy();
      // And the key's next message is refused too: the counts were its requests this minute.
      const m = await raw('/messages', { ...body, max_tokens: 5 }, { 'x-api-key': secret });
      expect(m.status).toBe(429);
      const rows = await allLogs(s, { key_id: key.id });
      expect(rows.map((x) => x.status).sort()).toEqual([200, 200, 429, 429]);
      for (const row of rows) expect(row.cost).toBe(0);
    });

    it('count_tokens answers the local count and bills nothing', async () => {
      const { secret, key } = await userWithKey(s);
      const body = { model: 'claude-pass', messages: [user('How many tokens?')], tools: [weather] };
      const r = await sdk(secret).messages.countTokens(body);
      expect(r.input_tokens).toBe(countMessagesTokens(body));
      const rows = await allLogs(s, { key_id: key.id });
      for (const row of rows) expect(row.cost).toBe(0);
      // Its refusals speak Anthropic too: a bad body, a model the key may not use.
      const bad = await raw(
        '/messages/count_tokens',
        { model: 'claude-pass', messages: [] },
        { 'x-api-key': secret },
      );
      expect(bad.status).toBe(400);
      expect(bad.json).toMatchObject({
        type: 'error',
        error: { type: 'invalid_request_error', code: 'invalid_request' },
      });
      const { secret: narrow } = await userWithKey(s, { key: { models: ['gpt-trans'] } });
      const denied = await sdk(narrow)
        .messages.countTokens(body)
        .catch((e) => e);
      expect(denied).toBeInstanceOf(Anthropic.PermissionDeniedError);
      expect(denied.error.error.code).toBe('model_not_allowed');
    });
  });

  // ── translation: Anthropic in → OpenAI channel (Claude Code on any OpenAI model) ──────────

  describe('Anthropic in → OpenAI channel', () => {
    it('plain: system and messages translated; text, stop reason and usage in Anthropic terms', async () => {
      const { secret, key } = await userWithKey(s);
      mock.setScenario('gpt-trans', { cachedTokens: 4, times: 1 });
      const m = await sdk(secret).messages.create({
        model: 'gpt-trans',
        max_tokens: 77,
        system: 'You are a mole.',
        messages: [user('Dig a tunnel.')],
        // Gone from the SDK's types with API version 2026-10-21, still sent by older clients.
        temperature: 0.5,
        stop_sequences: ['END'],
      } as Anthropic.MessageCreateParamsNonStreaming);
      const up = lastUpstream();
      expect(up.path).toBe('/v1/chat/completions');
      expect(up.headers.authorization).toBe(`Bearer ${UP_KEY}`);
      const sent = up.body as { messages: unknown[]; temperature?: number; stop?: unknown };
      expect(sent.messages).toEqual([
        { role: 'system', content: 'You are a mole.' },
        expect.objectContaining({ role: 'user' }),
      ]);
      expect(sent.temperature).toBe(0.5);
      expect(JSON.stringify(sent)).toContain('77');
      expect(m.content).toEqual([{ type: 'text', text: expectedChatCompletion(sent.messages) }]);
      expect(m.stop_reason).toBe('end_turn');
      expect(m.model).toBe('gpt-trans');
      const prompt = countChatPromptTokens(sent.messages);
      expect(m.usage).toMatchObject({
        input_tokens: prompt - 4,
        cache_read_input_tokens: 4,
        output_tokens: DEFAULT_COMPLETION_TOKENS,
      });
      await expectBilled(key.id, 'gpt-trans', 'anthropic', { prompt, cacheRead: 4 });
    });

    it('images cross both ways: base64 and URL sources ⇄ image_url parts', async () => {
      const { secret } = await userWithKey(s);
      const png =
        'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
      await sdk(secret).messages.create({
        model: 'gpt-trans',
        max_tokens: 10,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is this?' },
              { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } },
              { type: 'image', source: { type: 'url', url: 'https://example.com/mole.jpg' } },
            ],
          },
        ],
      });
      const parts = JSON.stringify((lastUpstream().body as { messages: unknown[] }).messages);
      expect(parts).toContain(`data:image/png;base64,${png}`);
      expect(parts).toContain('https://example.com/mole.jpg');

      await openai(secret).chat.completions.create({
        model: 'claude-trans',
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'And this?' },
              { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } },
              { type: 'image_url', image_url: { url: 'https://example.com/mole.jpg' } },
            ],
          },
        ],
      });
      const sent = lastUpstream().body as { messages: { content: unknown[] }[] };
      expect(sent.messages[0]!.content).toEqual([
        { type: 'text', text: 'And this?' },
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } },
        { type: 'image', source: { type: 'url', url: 'https://example.com/mole.jpg' } },
      ]);
    });

    it('max_tokens reached → stop_reason max_tokens', async () => {
      const { secret } = await userWithKey(s);
      const m = await sdk(secret).messages.create({
        model: 'gpt-trans',
        max_tokens: 5,
        messages: [user('Go')],
      });
      expect(m.stop_reason).toBe('max_tokens');
      expect(m.usage.output_tokens).toBe(5);
    });

    it.each(CHAT_STREAM_PADDINGS)(
      "stream: Anthropic's complete event sequence from an OpenAI stream%s, read by the SDK",
      async (_, scenario) => {
        mock.setScenario('gpt-trans', { ...scenario, times: 1 });
        const { secret, key } = await userWithKey(s);
        const stream = sdk(secret).messages.stream({
          model: 'gpt-trans',
          max_tokens: 100,
          messages: [user('Stream it.')],
        });
        const texts: string[] = [];
        const events: string[] = [];
        stream.on('text', (t) => texts.push(t));
        stream.on('streamEvent', (e) => events.push(e.type));
        const m = await stream.finalMessage();
        const sent = lastUpstream().body as { messages: unknown[]; stream?: boolean };
        expect(sent.stream).toBe(true);
        expect(texts.join('')).toBe(expectedChatCompletion(sent.messages));
        expect(events[0]).toBe('message_start');
        expect(events.at(-1)).toBe('message_stop');
        expect(events).toContain('content_block_start');
        expect(events).toContain('content_block_stop');
        expect(events).toContain('message_delta');
        expect(m.stop_reason).toBe('end_turn');
        expect(m.usage).toMatchObject({
          input_tokens: countChatPromptTokens(sent.messages),
          output_tokens: DEFAULT_COMPLETION_TOKENS,
        });
        const row = await newestLog(s, key.id);
        expect(row).toMatchObject({
          stream: true,
          completion_tokens: DEFAULT_COMPLETION_TOKENS,
          estimated: false,
        });
      },
    );

    it('a Claude Code-shaped request (cache_control, thinking, beta fields, ?beta=true) streams from an OpenAI model', async () => {
      const { secret } = await userWithKey(s);
      const res = await fetch(`${s.url}/v1/messages?beta=true`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${secret}`,
          'anthropic-version': '2023-06-01',
          'anthropic-beta':
            'claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27',
          'x-claude-code-session-id': 'sess-1',
        },
        body: JSON.stringify({
          model: 'gpt-trans',
          max_tokens: 200,
          stream: true,
          system: [
            { type: 'text', text: "You are Claude Code, Anthropic's official CLI for Claude." },
            { type: 'text', text: 'Be concise.', cache_control: { type: 'ephemeral' } },
          ],
          messages: [
            {
              role: 'user',
              content: [{ type: 'text', text: 'List the files.', cache_control: { type: 'ephemeral' } }],
            },
          ],
          tools: [{ ...weather, cache_control: { type: 'ephemeral' } }],
          tool_choice: { type: 'none' },
          thinking: { type: 'adaptive' },
          context_management: { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] },
          output_config: { effort: 'high' },
          metadata: { user_id: 'user_abc' },
        }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const text = await res.text();
      const names = [...text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
      expect(names[0]).toBe('message_start');
      expect(names.slice(-2)).toEqual(['message_delta', 'message_stop']);
      const sent = lastUpstream();
      expect(sent.path).toBe('/v1/chat/completions');
      expect(JSON.stringify(sent.body)).not.toContain('context_management');
      expect(sent.headers['anthropic-beta']).toBeUndefined();
      const body = sent.body as { messages: { role: string }[] };
      expect(body.messages.at(-1)!.role).toBe('user');
      expect(body.messages.slice(0, -1).every((m) => m.role === 'system' || m.role === 'developer')).toBe(
        true,
      );
    });

    it("an agent's growing conversation: message_start counts every turn's whole prompt exactly", async () => {
      // A coding agent resends its system prompt, tools and history every turn; the gateway
      // counts repeated long texts from a cache. Each turn's count must still be exact: the
      // chat overheads (3 + 4 a message) and each text as gpt-tokenizer counts it.
      const { secret } = await userWithKey(s);
      const words = (seed: number, n: number) =>
        Array.from({ length: n }, (_, i) => `w${(seed * 7919 + i * 104729) % 9973} 語${i % 10}`).join(' ');
      const system = words(1, 400);
      const tools: Anthropic.Tool[] = [{ ...weather, description: words(2, 200) }];
      const count = (t: string) => countTokens(t, { disallowedSpecial: new Set() });
      const history: Anthropic.MessageParam[] = [];
      for (let turn = 0; turn < 4; turn++) {
        if (turn > 0) history.push({ role: 'assistant', content: words(100 + turn, 150) });
        history.push(user(words(200 + turn, 300)));
        const body = { model: 'gpt-trans', max_tokens: 16, system, tools, messages: history };
        const expected =
          3 +
          4 +
          count(system) +
          history.reduce((n, m) => n + 4 + count(m.content as string), 0) +
          count(JSON.stringify(tools));
        let started: number | undefined;
        const stream = sdk(secret).messages.stream(body);
        stream.on('streamEvent', (e) => {
          if (e.type === 'message_start') started = e.message.usage.input_tokens;
        });
        await stream.finalMessage();
        expect(started, `turn ${turn}`).toBe(expected);
        expect((await sdk(secret).messages.countTokens(body)).input_tokens).toBe(expected);
      }
    });

    it("the SDK's beta client (Claude Code's path) reads the translated stream, tool call included", async () => {
      const { secret } = await userWithKey(s);
      const stream = sdk(secret).beta.messages.stream({
        model: 'gpt-trans',
        max_tokens: 100,
        betas: ['interleaved-thinking-2025-05-14'],
        tools: [weather],
        messages: [user('Weather in Rome?')],
      });
      const json: string[] = [];
      stream.on('inputJson', (d) => json.push(d));
      const m = await stream.finalMessage();
      expect(lastUpstream().path).toBe('/v1/chat/completions');
      expect(m.stop_reason).toBe('tool_use');
      expect(m.content.find((b) => b.type === 'tool_use')).toMatchObject({
        name: 'get_weather',
        input: { city: 'mole', days: 1 },
      });
      expect(JSON.parse(json.join(''))).toEqual({ city: 'mole', days: 1 });
      const text = await sdk(secret)
        .beta.messages.stream({ model: 'gpt-trans', max_tokens: 100, messages: [user('Plain words.')] })
        .finalMessage();
      const sent = lastUpstream().body as { messages: unknown[] };
      expect(text.content).toEqual([{ type: 'text', text: expectedChatCompletion(sent.messages) }]);
    });

    it('a tool round trip, plain and streamed (Claude Code on an OpenAI-compatible model)', async () => {
      const { secret } = await userWithKey(s);
      const c = sdk(secret);
      const { call, round } = await weatherCall(c, 'gpt-trans');
      const sentTools = (lastUpstream().body as { tools: unknown }).tools;
      expect(sentTools).toEqual([
        {
          type: 'function',
          function: expect.objectContaining({ name: 'get_weather', parameters: weather.input_schema }),
        },
      ]);
      expect(call.id).toMatch(/^call_/);

      const second = await c.messages.create({
        model: 'gpt-trans',
        max_tokens: 200,
        tools: [weather],
        messages: round,
      });
      const sent = lastUpstream().body as { messages: TestJsonObject[] };
      expect(sent.messages.at(-2)).toMatchObject({
        role: 'assistant',
        tool_calls: [{ id: call.id, type: 'function', function: { name: 'get_weather' } }],
      });
      expect(JSON.parse(sent.messages.at(-2)!.tool_calls[0].function.arguments)).toEqual({
        city: 'mole',
        days: 1,
      });
      expect(sent.messages.at(-1)).toMatchObject({ role: 'tool', tool_call_id: call.id });
      expect(second.stop_reason).toBe('end_turn');
      expect((second.content[0] as Anthropic.TextBlock).text).toBe(expectedChatCompletion(sent.messages));

      const streamed = c.messages.stream({
        model: 'gpt-trans',
        max_tokens: 200,
        tools: [weather],
        messages: [user('Weather in Oslo?')],
      });
      const json: string[] = [];
      streamed.on('inputJson', (d) => json.push(d));
      const sm = await streamed.finalMessage();
      expect(sm.stop_reason).toBe('tool_use');
      const scall = sm.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock;
      expect(scall).toMatchObject({ name: 'get_weather', input: { city: 'mole', days: 1 } });
      expect(JSON.parse(json.join(''))).toEqual({ city: 'mole', days: 1 });
    });
  });

  // ── translation: OpenAI chat in → Anthropic channel ───────────────────────────────────────

  describe('OpenAI chat in → Anthropic channel', () => {
    it('response_format reaches Claude as an instruction after the system prompt', async () => {
      const { secret } = await userWithKey(s);
      const schema = { type: 'object', properties: { depth: { type: 'number' } }, required: ['depth'] };
      await openai(secret).chat.completions.create({
        model: 'claude-trans',
        max_tokens: 20,
        messages: [
          { role: 'system', content: 'You are a mole.' },
          { role: 'user', content: 'How deep?' },
        ],
        response_format: { type: 'json_schema', json_schema: { name: 'burrow', schema, strict: true } },
      });
      const sent = lastUpstream().body as TestJsonObject;
      expect(sent.system).toEqual([
        { type: 'text', text: 'You are a mole.' },
        { type: 'text', text: expect.stringContaining(`named "burrow"`) },
      ]);
      expect(sent.system[1].text).toContain(JSON.stringify(schema));
    });

    it('plain: an Anthropic body upstream; text, finish reason and usage in OpenAI terms', async () => {
      const { secret, key } = await userWithKey(s);
      mock.setScenario('claude-trans', { cachedTokens: 5, cacheWriteTokens: 3, times: 1 });
      const r = await openai(secret).chat.completions.create({
        model: 'claude-trans',
        max_tokens: 90,
        messages: [
          { role: 'system', content: 'You are a mole.' },
          { role: 'user', content: 'Dig.' },
        ],
      });
      const up = lastUpstream();
      expect(up.path).toBe('/v1/messages');
      expect(up.headers['x-api-key']).toBe(UP_KEY);
      expect(up.headers['anthropic-version']).toBe('2023-06-01');
      const sent = up.body as TestJsonObject;
      expect(sent).toMatchObject({ model: 'claude-trans', max_tokens: 90, system: 'You are a mole.' });
      expect(sent.messages).toHaveLength(1);
      expect(sent.messages[0].role).toBe('user');
      expect(r.choices[0]!.message.content).toBe(expectedAnthropicText(sent.messages));
      expect(r.choices[0]!.finish_reason).toBe('stop');
      const prompt = countAnthropicPromptTokens(sent);
      expect(r.usage).toMatchObject({
        prompt_tokens: prompt,
        completion_tokens: DEFAULT_COMPLETION_TOKENS,
        prompt_tokens_details: { cached_tokens: 5 },
      });
      await expectBilled(key.id, 'claude-trans', 'openai', { prompt, cacheRead: 5, cacheWrite: 3 });
    });

    it('thinking on the Anthropic side is output: reasoning tokens inside completion_tokens, on the log row too', async () => {
      const { secret, key } = await userWithKey(s);
      mock.setScenario('claude-trans', { reasoningTokens: 5, times: 2 });
      const r = await openai(secret).chat.completions.create({
        model: 'claude-trans',
        messages: [{ role: 'user', content: 'Think first.' }],
      });
      expect(r.usage).toMatchObject({
        completion_tokens: DEFAULT_COMPLETION_TOKENS + 5,
        completion_tokens_details: { reasoning_tokens: 5 },
      });
      const row = (await newestLog(s, key.id)) as LogRow & { reasoning_tokens: number };
      expect(row).toMatchObject({ completion_tokens: DEFAULT_COMPLETION_TOKENS + 5, reasoning_tokens: 5 });
      // Pass-through keeps Anthropic's own numbers, and the log reads thinking_tokens.
      const m = await sdk(secret).messages.create({
        model: 'claude-trans',
        max_tokens: 100,
        messages: [user('Think first.')],
      });
      expect(m.content.map((b) => b.type)).toEqual(['thinking', 'text']);
      const prow = (await newestLog(s, key.id, 2)) as LogRow & { reasoning_tokens: number };
      expect(prow).toMatchObject({ completion_tokens: DEFAULT_COMPLETION_TOKENS + 5, reasoning_tokens: 5 });
    });

    it('stream: the openai stream helper and its final completion (usage chunk on request)', async () => {
      const { secret } = await userWithKey(s);
      const stream = openai(secret).chat.completions.stream({
        model: 'claude-trans',
        messages: [{ role: 'user', content: 'Stream, please.' }],
        stream_options: { include_usage: true },
      });
      const deltas: string[] = [];
      stream.on('content.delta', (d) => deltas.push(d.delta));
      const final = await stream.finalChatCompletion();
      const sent = lastUpstream().body as TestJsonObject;
      expect(sent.stream).toBe(true);
      expect(typeof sent.max_tokens).toBe('number'); // Anthropic requires it: the default cap
      expect(deltas.join('')).toBe(expectedAnthropicText(sent.messages));
      expect(final.choices[0]!.message.content).toBe(expectedAnthropicText(sent.messages));
      expect(final.choices[0]!.finish_reason).toBe('stop');
      expect(final.usage).toMatchObject({
        prompt_tokens: countAnthropicPromptTokens(sent),
        completion_tokens: DEFAULT_COMPLETION_TOKENS,
      });
    });

    it('a tool round trip, plain and streamed', async () => {
      const { secret } = await userWithKey(s);
      const c = openai(secret);
      const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            description: 'Weather',
            parameters: weather.input_schema as never,
          },
        },
      ];
      const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
        { role: 'user', content: 'Weather in Paris?' },
      ];
      const first = await c.chat.completions.create({ model: 'claude-trans', messages, tools });
      const sent = lastUpstream().body as TestJsonObject;
      expect(sent.tools).toEqual([
        { name: 'get_weather', description: 'Weather', input_schema: weather.input_schema },
      ]);
      expect(first.choices[0]!.finish_reason).toBe('tool_calls');
      const call = first.choices[0]!.message
        .tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
      expect(call.id).toMatch(/^toolu_/);
      expect(call.function.name).toBe('get_weather');
      expect(JSON.parse(call.function.arguments)).toEqual({ city: 'mole', days: 1 });

      const round: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
        ...messages,
        first.choices[0]!.message as OpenAI.Chat.Completions.ChatCompletionMessageParam,
        { role: 'tool', tool_call_id: call.id, content: 'sunny' },
      ];
      const second = await c.chat.completions.create({ model: 'claude-trans', messages: round, tools });
      const sent2 = lastUpstream().body as TestJsonObject;
      expect(sent2.messages.at(-2)).toEqual({
        role: 'assistant',
        content: [{ type: 'tool_use', id: call.id, name: 'get_weather', input: { city: 'mole', days: 1 } }],
      });
      expect(sent2.messages.at(-1)).toMatchObject({
        role: 'user',
        content: [{ type: 'tool_result', tool_use_id: call.id }],
      });
      expect(second.choices[0]!.finish_reason).toBe('stop');
      expect(second.choices[0]!.message.content).toBe(expectedAnthropicText(sent2.messages));

      const streamed = await c.chat.completions
        .stream({ model: 'claude-trans', messages: [{ role: 'user', content: 'Oslo?' }], tools })
        .finalChatCompletion();
      expect(streamed.choices[0]!.finish_reason).toBe('tool_calls');
      const scall = streamed.choices[0]!.message
        .tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
      expect(JSON.parse(scall.function.arguments)).toEqual({ city: 'mole', days: 1 });
    });
  });

  // ── any other channel type: Anthropic in → Gemini ───────────────────────────────────────────

  describe('Anthropic in → Gemini channel', () => {
    it('plain, stream and a tool call reach the SDK from a Gemini channel', async () => {
      await addPricedChannel(s, channelTo(mock, UP_KEY, { type: 'gemini', models: ['claude-on-gemini'] }), {
        'claude-on-gemini': { input: 1, output: 2 },
      });
      const { secret } = await userWithKey(s);
      const c = sdk(secret);
      const m = await c.messages.create({
        model: 'claude-on-gemini',
        max_tokens: 50,
        system: 'Be brief.',
        messages: [user('Hi')],
      });
      expect(lastUpstream().path).toMatch(/^\/v1beta\/models\/claude-on-gemini:generateContent/);
      const gbody = lastUpstream().body as Record<string, unknown>;
      expect((m.content[0] as Anthropic.TextBlock).text).toBe(expectedGeminiText(gbody));
      expect(m.stop_reason).toBe('end_turn');
      expect(m.usage.output_tokens).toBe(DEFAULT_COMPLETION_TOKENS);
      const { streamed } = await streamAndToolCall(c, 'claude-on-gemini');
      expect(streamed.usage.output_tokens).toBe(DEFAULT_COMPLETION_TOKENS);
    });
  });

  // ── failures and fallback across protocols ───────────────────────────────────────────────

  describe('failures and fallback', () => {
    it('an overloaded Anthropic channel (529) falls back to an OpenAI channel: the answer is translated', async () => {
      await addChannel(s, {
        type: 'anthropic',
        base_url: `${origin}/`,
        api_key: UP_KEY,
        models: ['claude-fb'],
        model_map: { 'claude-fb': 'claude-fb-up' },
        priority: 10,
      });
      await addPricedChannel(s, channelTo(mock, UP_KEY, { type: 'openai', models: ['claude-fb'] }), {
        'claude-fb': { input: 1, output: 2 },
      });
      const { secret, key } = await userWithKey(s);
      mock.setScenario('claude-fb-up', { status: 529, times: 1 });
      const m = await sdk(secret).messages.create({
        model: 'claude-fb',
        max_tokens: 40,
        messages: [user('Hi')],
      });
      const up = lastUpstream();
      expect(up.path).toBe('/v1/chat/completions');
      expect(mock.requests.at(-2)!.path).toBe('/v1/messages');
      expect((m.content[0] as Anthropic.TextBlock).text).toBe(
        expectedChatCompletion((up.body as { messages: unknown[] }).messages),
      );
      const row = (await newestLog(s, key.id)) as LogRow & { attempts: { status: number | null }[] };
      expect(row.attempts.map((a) => a.status)).toEqual([529, 200]);
      expect(row).toMatchObject({ protocol: 'anthropic', status: 200 });
    });

    it("a channel's bad key is never the client's answer: 502 in Anthropic shape, the upstream body not leaked", async () => {
      await addPricedChannel(
        s,
        channelTo(mock, 'sk-ant-wrong-key-xyz', { type: 'anthropic', models: ['claude-badkey'] }),
        { 'claude-badkey': { input: 1, output: 2 } },
      );
      const { secret } = await userWithKey(s);
      const r = await raw(
        '/messages',
        { model: 'claude-badkey', max_tokens: 8, messages: [user('Hi')] },
        { 'x-api-key': secret },
      );
      expect(r.status).toBe(502);
      expect(r.json).toMatchObject({
        type: 'error',
        error: { type: 'overloaded_error', code: 'upstream_error' },
      });
      expect(r.text).not.toContain('invalid x-api-key');
      expect(r.text).not.toContain('sk-ant-wrong-key-xyz');
    });

    it('a pass-through stream cut mid-way ends with event: error and bills an estimate', async () => {
      const { secret, key } = await userWithKey(s);
      mock.setScenario('claude-upstream-1', { cutAfterChunks: 4, chunkDelayMs: 20, times: 1 });
      const { texts, err } = await failedStream(secret, 'Cut');
      expect(err.error).toMatchObject({ error: { code: 'upstream_error' } });
      expect(texts).toHaveLength(4);
      const row = await newestLog(s, key.id);
      expect(row).toMatchObject({ stream: true, error_code: 'upstream_error' });
      expect(row.completion_tokens).toBeGreaterThanOrEqual(4);
      expect(row.cost).toBeGreaterThan(0);
    });

    // Anthropic always sends a usage object; a compatible upstream that fills it with zeros has
    // not counted, and the answer must not go free.
    it('an upstream reporting zero tokens is counted locally: plain, stream and translated', async () => {
      const { secret, key } = await userWithKey(s);
      mock.setScenario('claude-trans', { omitUsage: true, times: 3 });
      const messages = [user('Count me, please.')];
      await sdk(secret).messages.create({ model: 'claude-trans', max_tokens: 50, messages });
      await sdk(secret).messages.stream({ model: 'claude-trans', max_tokens: 50, messages }).finalMessage();
      await openai(secret).chat.completions.create({
        model: 'claude-trans',
        max_tokens: 50,
        messages: [{ role: 'user', content: 'Count me, please.' }],
      });
      await newestLog(s, key.id, 3);
      const rows = await allLogs(s, { key_id: key.id });
      expect(rows.map((r) => [r.protocol, r.stream])).toEqual([
        ['openai', false],
        ['anthropic', true],
        ['anthropic', false],
      ]);
      for (const r of rows) {
        expect(r).toMatchObject({
          status: 200,
          estimated: true,
          completion_tokens: DEFAULT_COMPLETION_TOKENS,
        });
        expect(r.prompt_tokens).toBeGreaterThan(0);
        expect(r.cost).toBeGreaterThan(0);
      }
    });
  });

  // ── the offline mock channel ─────────────────────────────────────────────────────────────

  describe('the offline mock channel', () => {
    it('answers the Anthropic SDK: plain, stream helper, tool call', async () => {
      await addPricedChannel(s, { type: 'mock' }, { 'claude-offline': { input: 1, output: 2 } });
      const { secret, key } = await userWithKey(s);
      const c = sdk(secret);
      const before = mock.requests.length;
      const m = await c.messages.create({ model: 'claude-offline', max_tokens: 50, messages: [user('Hi')] });
      expect(m.type).toBe('message');
      expect((m.content[0] as Anthropic.TextBlock).text).toMatch(/mole/);
      expect(m.stop_reason).toBe('end_turn');
      expect(m.usage.output_tokens).toBeGreaterThan(0);
      const { toolAnswer } = await streamAndToolCall(c, 'claude-offline');
      expect(toolAnswer.content[0]!.type).toBe('tool_use');
      expect(mock.requests.length).toBe(before); // nothing left the process
      const row = await newestLog(s, key.id, 3);
      expect(row).toMatchObject({ protocol: 'anthropic', status: 200 });
    });
  });

  // ── key rules in Anthropic's error shape, in the contract's order ─────────────────────────

  describe("key rules, in Anthropic's error shape", () => {
    const body = { model: 'claude-pass', max_tokens: 8, messages: [user('Hi')] };
    function expectAnthropicError(
      r: { status: number; json: unknown; headers: Headers },
      status: number,
      type: string,
      code: string,
    ) {
      expect(r.status, JSON.stringify(r.json)).toBe(status);
      expect(r.json).toMatchObject({ type: 'error', error: { type, code } });
      const json = r.json as { error: { message: unknown }; request_id: unknown };
      expect(typeof json.error.message).toBe('string');
      expect(json.request_id).toBe(r.headers.get('x-request-id'));
    }

    it('missing and invalid keys → 401 authentication_error', async () => {
      const missing = await raw('/messages', body, {});
      expectAnthropicError(missing, 401, 'authentication_error', 'missing_api_key');
      expect((missing.json as { error: { message: string } }).error.message).toContain('x-api-key');
      expectAnthropicError(
        await raw('/messages', body, { 'x-api-key': 'sk-not-a-real-key' }),
        401,
        'authentication_error',
        'invalid_api_key',
      );
      const err = await sdk('sk-not-a-real-key')
        .messages.create(body)
        .catch((e) => e);
      expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
      expect(err.error.error.code).toBe('invalid_api_key');
    });

    it('disabled key → 401 key_disabled (before the model rules)', async () => {
      const { secret, key } = await userWithKey(s, { key: { models: ['something-else'] } });
      await s.api('PATCH', `/api/keys/${key.id}`, { status: 'disabled' });
      const r = await raw('/messages', body, { 'x-api-key': secret });
      expectAnthropicError(r, 401, 'authentication_error', 'key_disabled');
    });

    it('IP not allowed → 403 permission_error (before the model rules)', async () => {
      const { secret } = await userWithKey(s, {
        key: { allowed_ips: ['10.9.8.7'], models: ['something-else'] },
      });
      const r = await raw('/messages', body, { authorization: `Bearer ${secret}` });
      expectAnthropicError(r, 403, 'permission_error', 'ip_not_allowed');
    });

    it('model not allowed → 403, model not found → 404 not_found_error', async () => {
      const { secret } = await userWithKey(s, { key: { models: ['gpt-trans'] } });
      const e1 = await sdk(secret)
        .messages.create(body)
        .catch((e) => e);
      expect(e1).toBeInstanceOf(Anthropic.PermissionDeniedError);
      expect(e1.error).toMatchObject({
        type: 'error',
        error: { type: 'permission_error', code: 'model_not_allowed' },
      });
      const { secret: s2 } = await userWithKey(s);
      const r = await raw('/messages', { ...body, model: 'claude-nowhere' }, { 'x-api-key': s2 });
      expectAnthropicError(r, 404, 'not_found_error', 'model_not_found');
      const e2 = await sdk(s2)
        .messages.create({ ...body, model: 'claude-nowhere' })
        .catch((e) => e);
      expect(e2).toBeInstanceOf(Anthropic.NotFoundError);
    });

    it('insufficient quota → 429 rate_limit_error with code insufficient_quota, x-should-retry: false', async () => {
      const { secret } = await userWithKey(s, { key: { quota: 0.01 } });
      const r = await raw('/messages', { ...body, model: 'claude-pricey' }, { 'x-api-key': secret });
      expectAnthropicError(r, 429, 'rate_limit_error', 'insufficient_quota');
      expect(r.headers.get('x-should-retry')).toBe('false');
      expect(mock.requests.some((q) => (q.body as { model?: string })?.model === 'claude-pricey')).toBe(
        false,
      );
    });

    it('a client mistake → 400 invalid_request_error naming the field, logged under its model', async () => {
      const { key, secret } = await userWithKey(s);
      const r = await raw(
        '/messages',
        { model: 'claude-pass', messages: [user('Hi')] },
        { 'x-api-key': secret },
      );
      expectAnthropicError(r, 400, 'invalid_request_error', 'invalid_request');
      expect(r.json.error.message).toContain('max_tokens');
      await s.services.flush();
      const rows = await allLogs(s, { key_id: key.id });
      expect(rows.map((row) => [row.status, row.model])).toEqual([[400, 'claude-pass']]);
      const bad = await raw('/messages', '{not json', { 'x-api-key': secret });
      expectAnthropicError(bad, 400, 'invalid_request_error', 'invalid_request');
    });
  });
});
