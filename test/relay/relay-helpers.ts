// Shared helpers for the relay suites (test/relay/*.test.ts). Money is compared exactly:
// every USD amount the API returns is turned back into integer nano-USD (BigInt), and
// expected costs are computed here independently of src/billing/money.ts.
import http from 'node:http';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { expect } from 'vitest';
import { type TestJson, type TestServer, walkPages } from '../helpers/server.js';
import type { LogAttempt, LogEntry, LogPage } from '../../web/src/api-types.js';
import type { MockProvider } from '../mock-provider/server.js';
import { expectRelayError, relay } from '../foundation/util.js';

export const NANO = 1_000_000_000n;

/** USD as the API shows it (nano / 1e9) → exact integer nano-USD. */
export function nanoOf(usd: number): bigint {
  const n = Math.round(usd * 1e9);
  if (!Number.isSafeInteger(n)) throw new Error(`not a safe nano amount: ${usd}`);
  return BigInt(n);
}

/** A decimal written with at most `decimals` places → exact integer scaled by 10^decimals (via its string form). */
function scaled(v: number, decimals: number): bigint {
  const [i, f = ''] = String(v).split('.');
  if (f.length > decimals) throw new Error(`${v} has more than ${decimals} decimals`);
  return BigInt(i!) * 10n ** BigInt(decimals) + BigInt((f || '0').padEnd(decimals, '0'));
}

export interface PriceUsd {
  input: number;
  output: number;
  cached_input?: number | null;
  priority_multiplier?: number | null;
}

export interface UsageCount {
  prompt: number;
  cached?: number;
  completion: number;
}

/**
 * Expected cost in nano-USD: ceil((uncached·in + cached·cachedIn + completion·out) · multiplier / 1e6)
 * where prices are nano-USD per 1M tokens.
 */
export function expectedCostNano(u: UsageCount, price: PriceUsd, multiplier = 1): bigint {
  const inN = scaled(price.input, 9);
  const outN = scaled(price.output, 9);
  const cachedN = price.cached_input == null ? inN : scaled(price.cached_input, 9);
  const cached = BigInt(Math.min(u.cached ?? 0, u.prompt));
  const uncached = BigInt(u.prompt) - cached;
  const ppm = scaled(multiplier, 6);
  const num = (uncached * inN + cached * cachedN + BigInt(u.completion) * outN) * ppm;
  const den = 1_000_000n * 1_000_000n;
  return (num + den - 1n) / den;
}

export const uniq = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

export function client(
  s: TestServer,
  apiKey: string,
  extra: Partial<ConstructorParameters<typeof OpenAI>[0]> = {},
): OpenAI {
  return new OpenAI({ baseURL: s.url + '/v1', apiKey, maxRetries: 0, timeout: 20_000, ...extra });
}

/** A loopback port that nothing listens on (connection refused). */
export async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** An upstream base URL (with /v1) on a loopback port that nothing listens on. */
export const unreachableUrl = async (): Promise<string> => `http://127.0.0.1:${await closedPort()}/v1`;

export async function addChannel(
  s: TestServer,
  body: Record<string, unknown>,
): Promise<{ id: number; [k: string]: unknown }> {
  const r = await s.api('POST', '/api/channels', { name: uniq('ch'), ...body });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body;
}

export async function setPrice(s: TestServer, model: string, p: PriceUsd): Promise<void> {
  const r = await s.api('PUT', `/api/prices/${model}`, p);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
}

/** A channel (`fields`: type, base_url, …) serving the models of `prices` unless told otherwise, priced. */
export async function addPricedChannel(
  s: TestServer,
  fields: Record<string, unknown>,
  prices: Record<string, PriceUsd>,
): Promise<{ id: number; [k: string]: unknown }> {
  const channel = await addChannel(s, { models: Object.keys(prices), ...fields });
  for (const [model, price] of Object.entries(prices)) await setPrice(s, model, price);
  return channel;
}

/**
 * A fresh model (named after `prefix`), priced, and an openai channel serving it for each of
 * `channels` (that channel's fields: base_url, priority, …; api_key 'x' unless given), added in
 * order. Answers the model and the channels.
 */
export async function freshModel(
  s: TestServer,
  prefix: string,
  price: PriceUsd,
  ...channels: Record<string, unknown>[]
): Promise<{ model: string; channels: { id: number; [k: string]: unknown }[] }> {
  const model = uniq(prefix);
  const added = [];
  for (const fields of channels)
    added.push(await addChannel(s, { type: 'openai', api_key: 'x', models: [model], ...fields }));
  await setPrice(s, model, price);
  return { model, channels: added };
}

export async function setGroup(s: TestServer, name: string, multiplier: number): Promise<void> {
  const r = await s.api('PUT', `/api/groups/${name}`, { multiplier });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
}

/** A log entry (the API's LogEntry) as relay traffic always fills it. */
export interface LogRow extends Omit<LogEntry, 'key_name' | 'endpoint' | 'ip' | 'protocol' | 'attempts'> {
  key_name: string;
  endpoint: string;
  ip: string;
  protocol: 'openai' | 'responses' | 'anthropic' | 'gemini';
  attempts: (LogAttempt & { channel_id: number; channel_name: string })[];
}

/** A page of GET /api/logs over relay traffic. */
export type LogRowPage = Omit<LogPage, 'data'> & { data: LogRow[] };

/** Every log row matching the query (follows the cursor), newest first. */
export async function allLogs(s: TestServer, query: Record<string, string | number> = {}): Promise<LogRow[]> {
  const q = new URLSearchParams(
    Object.entries({ limit: 500, ...query }).map(([k, v]): [string, string] => [k, String(v)]),
  );
  return (await walkPages<LogRow>(s, `/api/logs?${q}`, Number.POSITIVE_INFINITY)).rows;
}

export async function logByRequestId(s: TestServer, keyId: number, requestId: string): Promise<LogRow> {
  const rows = await allLogs(s, { key_id: keyId });
  const row = rows.find((r) => r.request_id === requestId);
  expect(row, `log row for ${requestId}`).toBeTruthy();
  return row!;
}

/**
 * The log row of the request `answer` answered: it matches `fields` and is billed exactly (not
 * estimated) for its prompt and completion tokens at `price`. Answers the row.
 */
export async function expectExactBill(
  s: TestServer,
  keyId: number,
  answer: { headers: Headers },
  price: PriceUsd,
  fields: Partial<LogRow> & { prompt_tokens: number; completion_tokens: number },
): Promise<LogRow> {
  const log = await logByRequestId(s, keyId, answer.headers.get('x-request-id')!);
  expect(log).toMatchObject({ ...fields, estimated: false });
  expect(nanoOf(log.cost)).toBe(
    expectedCostNano({ prompt: fields.prompt_tokens, completion: fields.completion_tokens }, price),
  );
  return log;
}

/** Polls until `fn` returns a truthy value (or throws after timeoutMs). */
export async function waitFor<T>(
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * What a chat completion stream carried until it ended or broke: its content pieces (the
 * non-empty deltas), their text, and what broke it (or null).
 */
export async function readChatStream(
  stream: AsyncIterable<OpenAI.ChatCompletionChunk>,
): Promise<{ pieces: string[]; text: string; error: unknown }> {
  const pieces: string[] = [];
  let error: unknown = null;
  try {
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta?.content;
      if (piece) pieces.push(piece);
    }
  } catch (err) {
    error = err;
  }
  return { pieces, text: pieces.join(''), error };
}

/** The whole text of a chat completion stream (throws what breaks it). */
export async function streamText(stream: AsyncIterable<OpenAI.ChatCompletionChunk>): Promise<string> {
  const { text, error } = await readChatStream(stream);
  if (error) throw error;
  return text;
}

/** GET /v1/key with `secret` as a page on `origin` sends it. */
export const relayFrom = (s: TestServer, secret: string, origin: string) =>
  relay(s, secret, { headers: { origin } });

/** `secret` used from `origin` is refused (its key does not allow that origin); answers the refusal. */
export async function expectOriginRefused(s: TestServer, secret: string, origin: string) {
  const r = await relayFrom(s, secret, origin);
  expectRelayError(r, 403, 'browser_origin_not_allowed');
  return r;
}

/** Catches an SDK error (or fails the test if the call succeeded). */
export async function sdkError(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await p;
  } catch (err) {
    if (err instanceof OpenAI.APIError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

/** Raw relay call (for what the SDK cannot send: malformed bodies, odd headers). */
export async function rawRelay(
  s: TestServer,
  path: string,
  opts: {
    key?: string;
    body?: string | Buffer;
    method?: string;
    headers?: Record<string, string>;
    signal?: AbortSignal;
  } = {},
) {
  const res = await fetch(s.url + '/v1' + path, {
    method: opts.method ?? 'POST',
    ...(opts.signal ? { signal: opts.signal } : {}),
    headers: {
      'content-type': 'application/json',
      ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}),
      ...opts.headers,
    },
    ...(opts.body !== undefined ? { body: opts.body } : {}),
  });
  const text = await res.text();
  let json: TestJson = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** The OpenAI error shape, with the given code. */
export function expectOpenAIError(body: unknown, code: string): void {
  expect(body, 'error body').toBeTruthy();
  const { error } = body as { error?: { code?: unknown; message?: unknown; type?: unknown } };
  expect(error).toBeTruthy();
  expect(error!.code).toBe(code);
  expect(typeof error!.message).toBe('string');
  expect((error!.message as string).length).toBeGreaterThan(0);
  expect(typeof error!.type).toBe('string');
  expect('param' in error!).toBe(true);
}

export async function keyJson(s: TestServer, keyId: number) {
  const r = await s.api('GET', `/api/keys/${keyId}`);
  expect(r.status).toBe(200);
  return r.body as { used: number; quota: number | null; status: string };
}

/** Balance after a flush (GET /api/logs flushes pending spend first). */
export async function balanceNano(s: TestServer, userId: number): Promise<bigint> {
  await s.api('GET', '/api/logs?limit=1');
  const r = await s.api('GET', `/api/users/${userId}`);
  expect(r.status).toBe(200);
  return nanoOf(r.body.balance);
}

export const sumCost = (rows: LogRow[]) => rows.reduce((a, r) => a + nanoOf(r.cost), 0n);

/** A scripted upstream on a random loopback port: `handler` answers each request once its body is read. */
export async function startScriptedUpstream(
  handler: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/v1`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * Runs `calls` at once while `model`'s upstream answers are held back, until every call is
 * either answered (a refusal) or waiting upstream; then lets the held ones finish. What was
 * admitted keeps its place the whole time, however slow the machine, and nobody waits out a
 * fixed delay.
 */
export async function withUpstreamHeld<T>(
  mock: MockProvider,
  model: string,
  calls: Array<() => Promise<T>>,
): Promise<T[]> {
  const upstream = () =>
    mock.requests.filter((r) => (r.body as { model?: string } | undefined)?.model === model).length;
  const before = upstream();
  let open = () => {};
  mock.setScenario(model, {
    holdUntil: new Promise<void>((r) => {
      open = r;
    }),
  });
  let settled = 0;
  try {
    const pending = calls.map((c) =>
      c().finally(() => {
        settled++;
      }),
    );
    await waitFor(
      async () => settled + upstream() - before >= calls.length,
      30_000,
      'every call answered or upstream',
    );
    open();
    return await Promise.all(pending);
  } finally {
    open();
  }
}
