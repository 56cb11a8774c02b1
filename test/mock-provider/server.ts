/**
 * Mock OpenAI-compatible upstream provider.
 *
 * The only fake in our test suites: the gateway under test forwards to it over
 * real loopback HTTP. It speaks the OpenAI wire protocol (JSON bodies, SSE
 * streams, error envelopes) and is cheap enough to be the upstream of
 * benchmarks (plain node:http, keep-alive, small caches on the hot path).
 *
 * Token accounting (see README.md for the full rule):
 *  - every generated content chunk is exactly ONE o200k token (gpt-tokenizer
 *    default export), so N streamed content chunks == N completion tokens and
 *    `countTokens(fullText) === completion_tokens`;
 *  - chat prompt_tokens = 3 + Σ per message (3 + tok(role) + tok(text content)
 *    + [name: 1 + tok(name)]) + [tools: tok(JSON.stringify(tools))];
 *  - legacy/embeddings prompt tokens = tok(string) or length of a token array.
 */
import http from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { countTokens } from 'gpt-tokenizer';
import {
  argsFromSchema,
  type ContentCount,
  countContent,
  invalidRequest,
  isJsonObject,
  type MockKit,
  OpenAiRequestError,
  openAiAuthError,
  openAiErrorJson,
  openAiHeaders,
  playScenario,
  requiredParam,
  sendOpenAiRequestError,
  sendOpenAiScenarioError,
} from './kit.js';
import { anthropicRoutes } from './anthropic.js';
import { geminiRoutes } from './gemini.js';
import { responsesRoutes } from './responses.js';

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

export interface Scenario {
  /** Respond with this HTTP status and an OpenAI-shaped error body. */
  status?: number;
  /** Override the error envelope produced for `status`. */
  errorMessage?: string;
  errorType?: string;
  errorCode?: string | null;
  /** `retry-after` header (seconds). Defaults to 1 for status 429; omitted otherwise. */
  retryAfterSeconds?: number;
  /** Extra response headers (applied to success and error responses alike). */
  headers?: Record<string, string>;
  /** Apply this scenario to the next N matching requests only, then drop it. */
  times?: number;
  /** Delay before response headers are sent. */
  firstByteDelayMs?: number;
  /**
   * Send nothing until this settles (then wait firstByteDelayMs, if any): a gate the test
   * opens once it has seen what it waits for, instead of a delay long enough to cover it.
   */
  holdUntil?: Promise<unknown>;
  /** Streaming: delay between consecutive SSE events. */
  chunkDelayMs?: number;
  /** Streaming: destroy the socket after N content chunks (no finish chunk, no [DONE]). */
  cutAfterChunks?: number;
  /** Streaming: after N content chunks emit `data: {broken` (not JSON), then continue normally. */
  garbageAfterChunks?: number;
  /**
   * Without `cutAfterChunks` (or non-streaming): send nothing at all for hangMs, then destroy the socket.
   * With `cutAfterChunks` on a stream: send the N chunks, stall hangMs, then destroy the socket.
   */
  hangMs?: number;
  /** Completion tokens to generate per choice (default 16), still capped by max_tokens. */
  completionTokens?: number;
  /** Report usage.prompt_tokens_details.cached_tokens (clamped to prompt_tokens). */
  cachedTokens?: number;
  /** Omit `usage` from non-stream responses, and the usage chunk from streams. */
  omitUsage?: boolean;
  /** Anthropic: report this many cache-write input tokens (`cache_creation_input_tokens`). */
  cacheWriteTokens?: number;
  /**
   * Gemini: report this many `thoughtsTokenCount` (output the visible text leaves out).
   * Anthropic: think this many tokens first (a thinking block; counted in output_tokens).
   */
  reasoningTokens?: number;
  /**
   * Gemini: act as Gemini 3 does with thought signatures: each answer's function call part
   * carries a `thoughtSignature`, and a history whose model turn sends a function call back
   * without its signature (or with one this mock did not give) is refused with 400
   * INVALID_ARGUMENT.
   */
  thoughtSignatures?: boolean;
  /**
   * Answer HTTP 200 whose body is the protocol's error (Gemini: or whose only stream frame
   * is; Anthropic: plain requests).
   */
  errorInBody?: boolean;
  /** Streams: after N content chunks send the protocol's error frame (Anthropic: `event: error`), then end. */
  midStreamError?: number;
  /** Anthropic: write JSON with a space after ':' and ',' (like Python's json.dumps). */
  spacedJson?: boolean;
  /**
   * Chat streams: pad every chunk as api.openai.com does unless the request's
   * `stream_options.include_obfuscation` is false: a last member `"obfuscation"` holding 1–16
   * random letters and digits.
   */
  obfuscation?: boolean;
  /**
   * When the request offers the provider's own search tool (Anthropic `web_search_<version>`,
   * Responses `web_search*`, Gemini `googleSearch`): run this many searches before answering
   * (default 1), within the request's bound (`max_uses`, `max_tool_calls`); each is reported
   * as the provider reports a billed search.
   */
  webSearches?: number;
  /**
   * OpenAI chat and Responses: the `service_tier` the answer says it was served at, whatever
   * was asked (`default` for a priority request OpenAI downgraded).
   */
  serviceTier?: string;
}

/** A chat stream as the mock sends it, and padded as api.openai.com pads it: `it.each` rows. */
export const CHAT_STREAM_PADDINGS: ReadonlyArray<readonly [string, Scenario]> = [
  ['', {}],
  [', padded as api.openai.com pads it', { obfuscation: true }],
];

export interface RecordedRequest {
  method: string;
  /** Path including query string, e.g. `/v1/chat/completions`. */
  path: string;
  /** Node's header object: names are lowercase. */
  headers: IncomingHttpHeaders;
  /** Parsed JSON body; `undefined` when empty or not valid JSON. */
  body: unknown;
  /** Raw request body as text. */
  rawBody: string;
  /** Date.now() at which the body was fully received. */
  receivedAt: number;
}

export interface MockProviderOptions {
  /** Port to listen on; 0 (default) = random free port. */
  port?: number;
  /** Interface to bind; default 127.0.0.1 (loopback only). */
  host?: string;
  /** If set, require `Authorization: Bearer <apiKey>`; otherwise answer 401 like OpenAI. */
  apiKey?: string;
  /** Extra model ids listed by GET /v1/models (any model id is accepted for generation). */
  models?: string[];
  /** Record requests into `requests` (default true). Turn off for long benchmarks. */
  recordRequests?: boolean;
}

export interface MockProvider {
  /** Base URL including `/v1`, e.g. `http://127.0.0.1:41234/v1`. */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  /** Every request received, in arrival order (cleared by reset()). */
  readonly requests: RecordedRequest[];
  /** Set a scenario for requests whose body `model` equals `model`; `'*'` = default for all models. */
  setScenario(model: string, scenario: Scenario): void;
  clearScenarios(): void;
  /** Clear recorded requests AND scenarios. */
  reset(): void;
  /** Stop listening, destroy all open sockets, cancel pending timers. */
  close(): Promise<void>;
}

export const DEFAULT_COMPLETION_TOKENS = 16;
export const DEFAULT_MODELS: readonly string[] = [
  'gpt-4o-mini',
  'gpt-4o',
  'gpt-4.1-mini',
  'o4-mini',
  'gpt-3.5-turbo-instruct',
  'text-embedding-3-small',
  'text-embedding-3-large',
  'text-embedding-ada-002',
];

// ---------------------------------------------------------------------------
// Deterministic text generation: one o200k token per piece
// ---------------------------------------------------------------------------

const WORD_CANDIDATES =
  'mole dig soil earth dark under ground worm root deep path small fast quiet warm hill grass stone water ' +
  'light night day home safe gate way road token stream data key nose paw garden field rain sun moon cool ' +
  'soft slow bright north south east west river lake tree leaf seed rock sand mud den nest hole trail map ' +
  'route relay gateway bill count mark note line word byte cache queue proxy model steady busy little';
const FIRST_CANDIDATES = 'The A Dig Under Deep Small Quiet Warm Soft Slow Bright Little Moles';

function buildVocab(): { spaced: string[]; first: string[] } {
  const spaced = WORD_CANDIDATES.split(' ')
    .map((w) => ' ' + w)
    .filter((w) => countTokens(w) === 1);
  const first = FIRST_CANDIDATES.split(' ').filter((w) => countTokens(w) === 1);
  if (spaced.length < 32 || first.length < 4) {
    throw new Error('mock-provider: tokenizer vocabulary check failed (gpt-tokenizer changed?)');
  }
  return { spaced, first };
}
const VOCAB = buildVocab();

/** 32-bit FNV-1a over UTF-16 code units. */
export function hashText(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Deterministic completion pieces for a seed: `count` strings, each exactly
 * one token (the first has no leading space, the rest do).
 */
export function generatePieces(seed: number, count: number): string[] {
  const out = new Array<string>(count);
  let x = seed >>> 0;
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const list = i === 0 ? VOCAB.first : VOCAB.spaced;
    out[i] = list[(x >>> 8) % list.length]!;
  }
  return out;
}

/** What a mock model writes for a request: `count` pieces, seeded by the request's seed text. */
export const piecesFor = (seedText: string, count: number): string[] =>
  generatePieces(hashText(seedText), count);

// ---------------------------------------------------------------------------
// Token counting (cached: benchmarks repeat the same prompts)
// ---------------------------------------------------------------------------

const TOKEN_CACHE_MAX = 10_000;
const tokenCache = new Map<string, number>();

/** gpt-tokenizer (o200k_base) token count of a string, memoised. */
export function countTextTokens(text: string): number {
  if (text.length === 0) return 0;
  let n = tokenCache.get(text);
  if (n === undefined) {
    n = countTokens(text);
    if (tokenCache.size >= TOKEN_CACHE_MAX) tokenCache.clear();
    tokenCache.set(text, n);
  }
  return n;
}

/** Image parts count as a flat 85 tokens (OpenAI's low-detail cost). */
const IMAGE_PART_TOKENS = 85;

/** A chat message's text, and 85 tokens per image part. */
const contentText = (content: unknown): ContentCount =>
  countContent(content, (p) =>
    typeof p.text === 'string'
      ? { text: p.text, extra: 0 }
      : { text: '', extra: p.type === 'image_url' || p.type === 'input_image' ? IMAGE_PART_TOKENS : 0 },
  );

interface ChatMessageLike {
  role?: unknown;
  content?: unknown;
  name?: unknown;
  tool_calls?: unknown;
  tool_call_id?: unknown;
}

/**
 * prompt_tokens for a chat request (OpenAI cookbook rule for gpt-4o-family):
 *   3 (reply priming)
 *   + for each message: 3 + tok(role) + tok(text of content) + 85 per image part
 *       + (name ? 1 + tok(name) : 0)
 *       + for each tool_call: tok(function.name) + tok(function.arguments)
 *   + (tools ? tok(JSON.stringify(tools)) : 0)
 * where tok = gpt-tokenizer default (o200k_base) count; text of array content =
 * concatenation of its parts' `text` fields.
 */
export function countChatPromptTokens(messages: readonly unknown[], tools?: unknown): number {
  let total = 3;
  for (const m of messages) {
    if (!m || typeof m !== 'object') continue;
    const msg = m as ChatMessageLike;
    total += 3;
    if (typeof msg.role === 'string') total += countTextTokens(msg.role);
    const { text, extra } = contentText(msg.content);
    total += countTextTokens(text) + extra;
    if (typeof msg.name === 'string') total += 1 + countTextTokens(msg.name);
    if (Array.isArray(msg.tool_calls)) {
      for (const tc of msg.tool_calls) {
        const fn = (tc as { function?: { name?: unknown; arguments?: unknown } } | null)?.function;
        if (fn) {
          if (typeof fn.name === 'string') total += countTextTokens(fn.name);
          if (typeof fn.arguments === 'string') total += countTextTokens(fn.arguments);
        }
      }
    }
  }
  if (Array.isArray(tools) && tools.length > 0) total += countTextTokens(JSON.stringify(tools));
  return total;
}

/** Seed text for a chat request: message text contents joined by "\n". */
export function chatSeedText(messages: readonly unknown[]): string {
  let s = '';
  for (const m of messages) {
    if (m && typeof m === 'object') s += contentText((m as ChatMessageLike).content).text + '\n';
  }
  return s;
}

/**
 * The exact completion text the mock produces for a chat request with these
 * messages (choice `index`, `tokens` tokens). Useful for assertions.
 */
export function expectedChatCompletion(
  messages: readonly unknown[],
  tokens = DEFAULT_COMPLETION_TOKENS,
  index = 0,
): string {
  return generatePieces(hashText(chatSeedText(messages)) + index, tokens).join('');
}

/** Same for the legacy /completions endpoint with a single string prompt. */
export function expectedTextCompletion(
  prompt: string,
  tokens = DEFAULT_COMPLETION_TOKENS,
  index = 0,
): string {
  return generatePieces(hashText(prompt) + index, tokens).join('');
}

// ---------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------

interface EmbeddingEntry {
  floats: number[];
  base64: string;
}
const EMBED_CACHE_MAX = 2_000;
const embedCache = new Map<string, EmbeddingEntry>();

export function makeEmbedding(key: string, dims: number): EmbeddingEntry {
  const cacheKey = dims + ':' + key;
  const hit = embedCache.get(cacheKey);
  if (hit) return hit;
  // mulberry32 PRNG seeded by the input hash, then L2-normalised.
  let a = hashText(key);
  const raw = new Float64Array(dims);
  let norm = 0;
  for (let i = 0; i < dims; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const v = ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
    raw[i] = v;
    norm += v * v;
  }
  norm = Math.sqrt(norm) || 1;
  const buf = Buffer.allocUnsafe(dims * 4);
  const floats = new Array<number>(dims);
  for (let i = 0; i < dims; i++) {
    const f = Math.fround(raw[i]! / norm);
    floats[i] = f;
    buf.writeFloatLE(f, i * 4);
  }
  const entry = { floats, base64: buf.toString('base64') };
  if (embedCache.size >= EMBED_CACHE_MAX) embedCache.clear();
  embedCache.set(cacheKey, entry);
  return entry;
}

// ---------------------------------------------------------------------------
// Validation helpers
// ---------------------------------------------------------------------------

type Json = Record<string, unknown>;

const CHAT_ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);

function optPositiveInt(
  body: Json,
  key: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw invalidRequest(
      `Invalid type for '${key}': expected an integer, but got ${typeof v === 'number' ? 'a decimal' : typeof v} instead.`,
      key,
      'invalid_type',
    );
  }
  if (v < min)
    throw invalidRequest(
      `Invalid '${key}': integer below minimum value. Expected a value >= ${min}, but got ${v} instead.`,
      key,
      'integer_below_min_value',
    );
  if (v > max)
    throw invalidRequest(
      `Invalid '${key}': integer above maximum value. Expected a value <= ${max}, but got ${v} instead.`,
      key,
      'integer_above_max_value',
    );
  return v;
}

/**
 * A `string | string[] | number[] | number[][]` field (a prompt, an embeddings input) as its
 * list of texts and token arrays, or null when it is none of those (or an empty array).
 * `isToken` says which numbers are tokens.
 */
function textsOrTokens(v: unknown, isToken: (x: unknown) => boolean): Array<string | number[]> | null {
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v) || v.length === 0) return null;
  if (v.every(isToken)) return [v as number[]];
  if (v.every((x) => typeof x === 'string' || (Array.isArray(x) && x.every(isToken))))
    return v as Array<string | number[]>;
  return null;
}

/** Prompt tokens of a text (counted) or of a token array (its length). */
const inputTokens = (x: string | number[]): number => (typeof x === 'string' ? countTextTokens(x) : x.length);

function requireModel(body: Json): string {
  const model = body.model;
  if (model === undefined || model === null || model === '')
    throw invalidRequest('you must provide a model parameter');
  if (typeof model !== 'string')
    throw invalidRequest(
      `Invalid type for 'model': expected a string, but got ${typeof model} instead.`,
      'model',
      'invalid_type',
    );
  return model;
}

function streamFlags(body: Json): { stream: boolean; includeUsage: boolean } {
  const s = body.stream;
  if (s !== undefined && s !== null && typeof s !== 'boolean') {
    throw invalidRequest(
      `Invalid type for 'stream': expected a boolean, but got ${typeof s} instead.`,
      'stream',
      'invalid_type',
    );
  }
  const stream = s === true;
  const so = body.stream_options;
  if (so !== undefined && so !== null) {
    if (!stream)
      throw invalidRequest(
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        'stream_options',
        null,
      );
    if (typeof so !== 'object')
      throw invalidRequest(
        "Invalid type for 'stream_options': expected an object.",
        'stream_options',
        'invalid_type',
      );
  }
  const includeUsage = stream && !!so && typeof so === 'object' && (so as Json).include_usage === true;
  return { stream, includeUsage };
}

/** Whether a chat stream is padded: the scenario says so and the request did not turn it off. */
/**
 * The `service_tier` an OpenAI answer says it was served at: the scenario's, else the one
 * asked for when it is `priority` or `flex` (OpenAI serves those), else `default`.
 */
export function servedTier(s: Scenario, body: Json): string {
  if (s.serviceTier !== undefined) return s.serviceTier;
  return body.service_tier === 'priority' || body.service_tier === 'flex' ? body.service_tier : 'default';
}

function obfuscated(s: Scenario, body: Json): boolean {
  const so = body.stream_options;
  return s.obfuscation === true && !(isJsonObject(so) && so.include_obfuscation === false);
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** 1–16 random letters and digits: an `obfuscation` value. */
function obfuscationValue(): string {
  let v = '';
  for (let n = 1 + Math.floor(Math.random() * 16); n > 0; n--) v += ALNUM[Math.floor(Math.random() * 62)];
  return v;
}

function maxTokensCap(body: Json): number {
  const a = optPositiveInt(body, 'max_tokens', 1);
  const b = optPositiveInt(body, 'max_completion_tokens', 1);
  let cap = Infinity;
  if (a !== undefined) cap = a;
  if (b !== undefined && b < cap) cap = b;
  return cap;
}

/**
 * Chat tool use (the rule every mock protocol shares): with tools declared, `tool_choice`
 * not "none" and the last message a user turn, the answer is ONE call of the first declared
 * tool (or the forced one), arguments = each `required` property of its schema as "mole" /
 * 1 / true / {}. Returns null when the mock answers text.
 */
export function chatToolCall(body: Json): { name: string; arguments: string } | null {
  const tools = Array.isArray(body.tools) ? (body.tools as unknown[]) : [];
  const fns = tools
    .map((t) => (t && typeof t === 'object' ? (t as Json).function : undefined))
    .filter((f): f is Json => !!f && typeof f === 'object' && typeof (f as Json).name === 'string');
  if (fns.length === 0) return null;
  const tc = body.tool_choice;
  if (tc === 'none') return null;
  const msgs = body.messages as ChatMessageLike[];
  if (msgs[msgs.length - 1]?.role !== 'user') return null;
  let fn = fns[0]!;
  if (tc && typeof tc === 'object') {
    const forced = ((tc as Json).function as Json | undefined)?.name;
    fn = fns.find((f) => f.name === forced) ?? fn;
  }
  return { name: fn.name as string, arguments: JSON.stringify(argsFromSchema(fn.parameters)) };
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

interface ScenarioSlot {
  s: Scenario;
  remaining: number; // Infinity when `times` is unset
}

interface Frame {
  data: string;
  /** role = leading role chunk; content = exactly one token; tail = finish/usage chunks. */
  kind: 'role' | 'content' | 'tail';
}

const GARBAGE = 'data: {broken\n\n';

const JSON_CT = 'application/json';
const SSE_CT = 'text/event-stream; charset=utf-8';
const MAX_BODY = 64 * 1024 * 1024;
const NO_SCENARIO: Scenario = Object.freeze({});

export async function startMockProvider(opts: MockProviderOptions = {}): Promise<MockProvider> {
  const host = opts.host ?? '127.0.0.1';
  const apiKey = opts.apiKey;
  const record = opts.recordRequests !== false;
  const modelIds = [...new Set([...DEFAULT_MODELS, ...(opts.models ?? [])])];
  const modelSet = new Set(modelIds);
  const modelsBody = JSON.stringify({
    object: 'list',
    data: modelIds.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'moleapi-mock' })),
  });

  const requests: RecordedRequest[] = [];
  const scenarios = new Map<string, ScenarioSlot>();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let seq = 0;
  const idPrefix = Math.random().toString(36).slice(2, 8);
  const nextId = () => idPrefix + (++seq).toString(36);

  function pickScenario(model: string): Scenario {
    if (scenarios.size === 0) return NO_SCENARIO;
    let key = model;
    let slot = scenarios.get(model);
    if (!slot) {
      key = '*';
      slot = scenarios.get('*');
    }
    if (!slot) return NO_SCENARIO;
    if (--slot.remaining <= 0) scenarios.delete(key);
    return slot.s;
  }

  /** setTimeout bound to the response: cancelled when the client goes away or the server closes. */
  function later(res: ServerResponse, ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      timers.delete(t);
      res.off('close', cancel);
      if (!res.destroyed) fn();
    }, ms);
    const cancel = () => {
      clearTimeout(t);
      timers.delete(t);
    };
    timers.add(t);
    res.once('close', cancel);
  }

  function destroySocket(res: ServerResponse): void {
    res.socket?.destroy();
    res.destroy();
  }

  const baseHeaders = (reqId: string, s: Scenario, contentType: string): http.OutgoingHttpHeaders =>
    openAiHeaders('req_' + reqId, s, contentType);

  function sendJson(
    res: ServerResponse,
    status: number,
    body: string,
    headers: http.OutgoingHttpHeaders,
  ): void {
    headers['content-length'] = Buffer.byteLength(body);
    res.writeHead(status, headers);
    res.end(body);
  }

  /** Apply delay/hang/status parts of a scenario, then call `respond`. */
  function run(res: ServerResponse, s: Scenario, model: string, stream: boolean, respond: () => void): void {
    playScenario(kit, res, s, stream, () => sendOpenAiScenarioError(kit, res, s, model), respond);
  }

  /** Write SSE frames honouring chunkDelayMs / garbageAfterChunks / cutAfterChunks / hangMs. */
  function sendStream(res: ServerResponse, s: Scenario, reqId: string, frames: Frame[]): void {
    const cutAt = s.cutAfterChunks;
    const garbageAt = s.garbageAfterChunks;

    // Number of frames to send: all of them, or (cut) everything up to the
    // cutAt-th content frame (the last content frame if there are fewer; only
    // the role frames if cutAt is 0 / there is no content at all).
    let sendCount = frames.length;
    const cut = cutAt !== undefined;
    if (cut) {
      sendCount = 0;
      let seen = 0;
      for (let i = 0; i < frames.length; i++) {
        const k = frames[i]!.kind;
        if (k === 'tail') break;
        if (k === 'content' && seen >= cutAt) break;
        if (k === 'content') seen++;
        sendCount = i + 1;
      }
    }
    const out: string[] = [];
    if (garbageAt === 0) out.push(GARBAGE);
    let seen = 0;
    for (let i = 0; i < sendCount; i++) {
      const f = frames[i]!;
      out.push(f.data);
      if (f.kind === 'content' && ++seen === garbageAt) out.push(GARBAGE);
    }
    if (!cut) out.push('data: [DONE]\n\n');

    res.writeHead(200, baseHeaders(reqId, s, SSE_CT));
    res.flushHeaders();
    // No frames at all can only be a cut before the first one.
    writeFrames(res, s, out, cut || out.length === 0);
  }

  function writeFrames(res: ServerResponse, s: Scenario, out: string[], cut: boolean): void {
    const kill = () => {
      if (s.hangMs !== undefined && s.hangMs > 0) later(res, s.hangMs, () => destroySocket(res));
      else setImmediate(() => destroySocket(res));
    };
    const delay = s.chunkDelayMs ?? 0;
    if (out.length === 0) {
      if (cut) kill();
      else res.end();
      return;
    }
    if (delay <= 0) {
      if (cut) res.write(out.join(''), kill);
      else res.end(out.join(''));
      return;
    }
    let i = 0;
    const step = () => {
      const data = out[i++]!;
      if (i < out.length) {
        res.write(data);
        later(res, delay, step);
      } else if (cut) res.write(data, kill);
      else res.end(data);
    };
    step();
  }

  // -------------------------------------------------------------------------
  // Endpoint handlers
  // -------------------------------------------------------------------------

  /** A chat.completion answer (both the text and the tool-call kind). */
  function sendChatCompletion(
    res: ServerResponse,
    s: Scenario,
    reqId: string,
    model: string,
    choices: unknown[],
    usage: Json | undefined,
    tier: string,
  ): void {
    const created = Math.floor(Date.now() / 1000);
    const out: Json = { id: 'chatcmpl-' + reqId, object: 'chat.completion', created, model, choices };
    if (usage) out.usage = usage;
    out.service_tier = tier;
    out.system_fingerprint = 'fp_mole';
    sendJson(res, 200, JSON.stringify(out), baseHeaders(reqId, s, JSON_CT));
  }

  /**
   * Streamed chunks: each is `head` (the chunk's shared fields up to `"choices":`), its choices,
   * and with include_usage `"usage":null`; a final usage chunk has `choices: []`. `padded`: each
   * ends in a random `obfuscation` member.
   */
  function chunkFrames(head: string, includeUsage: boolean, padded = false) {
    const tail = includeUsage ? ',"usage":null' : '';
    const end = () => (padded ? `,"obfuscation":"${obfuscationValue()}"}` : '}');
    return {
      frame: (choices: string, kind: Frame['kind']): Frame => ({
        data: `data: ${head}${choices}${tail}${end()}\n\n`,
        kind,
      }),
      usage: (usage: Json | undefined): Frame[] =>
        includeUsage && usage
          ? [{ data: `data: ${head}[],"usage":${JSON.stringify(usage)}${end()}\n\n`, kind: 'tail' }]
          : [],
    };
  }

  /** chat.completion.chunk frames; every chunk shares id/created/model. */
  function chatChunks(reqId: string, model: string, includeUsage: boolean, padded: boolean, tier: string) {
    const created = Math.floor(Date.now() / 1000);
    const chunks = chunkFrames(
      `{"id":"chatcmpl-${reqId}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"service_tier":${JSON.stringify(tier)},"system_fingerprint":"fp_mole","choices":`,
      includeUsage,
      padded,
    );
    return {
      frame: chunks.frame,
      /** Each of `n` choices' finish chunk, then the usage chunk (with include_usage). */
      ending: (n: number, finishReason: string, usage: Json | undefined): Frame[] => [
        ...Array.from({ length: n }, (_, c) =>
          chunks.frame(
            `[{"index":${c},"delta":{},"logprobs":null,"finish_reason":"${finishReason}"}]`,
            'tail',
          ),
        ),
        ...chunks.usage(usage),
      ],
    };
  }

  function handleChat(res: ServerResponse, body: Json): void {
    const model = requireModel(body);
    const messages = requiredParam(body, 'messages');
    if (!Array.isArray(messages))
      throw invalidRequest(
        "Invalid type for 'messages': expected an array of objects, but got a " +
          typeof messages +
          ' instead.',
        'messages',
        'invalid_type',
      );
    if (messages.length === 0) {
      throw invalidRequest(
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        'messages',
        'empty_array',
      );
    }
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as ChatMessageLike | null;
      if (!m || typeof m !== 'object' || Array.isArray(m)) {
        throw invalidRequest(
          `Invalid type for 'messages[${i}]': expected an object, but got ${m === null ? 'null' : typeof m} instead.`,
          `messages[${i}]`,
          'invalid_type',
        );
      }
      if (m.role === undefined)
        throw invalidRequest(
          `Missing required parameter: 'messages[${i}].role'.`,
          `messages[${i}].role`,
          'missing_required_parameter',
        );
      if (typeof m.role !== 'string' || !CHAT_ROLES.has(m.role)) {
        throw invalidRequest(
          `Invalid value: '${String(m.role)}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.`,
          `messages[${i}].role`,
          'invalid_value',
        );
      }
      const c = m.content;
      if (m.role !== 'assistant' && (c === undefined || c === null)) {
        throw invalidRequest(
          `Missing required parameter: 'messages[${i}].content'.`,
          `messages[${i}].content`,
          'missing_required_parameter',
        );
      }
      if (c !== undefined && c !== null && typeof c !== 'string' && !Array.isArray(c)) {
        throw invalidRequest(
          `Invalid type for 'messages[${i}].content': expected one of a string or array of objects, but got ${typeof c} instead.`,
          `messages[${i}].content`,
          'invalid_type',
        );
      }
      // OpenAI holds a history's tool call ids to 40 characters.
      const ids = [
        ...(Array.isArray(m.tool_calls)
          ? m.tool_calls.map((t, j) => [`tool_calls[${j}].id`, t?.id] as const)
          : []),
        ['tool_call_id', m.tool_call_id] as const,
      ];
      for (const [at, id] of ids)
        if (typeof id === 'string' && id.length > 40)
          throw invalidRequest(
            `Invalid 'messages[${i}].${at}': string too long. Expected a string with maximum length 40, but got a string with length ${id.length} instead.`,
            `messages[${i}].${at}`,
            'string_above_max_length',
          );
    }
    // OpenAI's rule for a function's name.
    if (Array.isArray(body.tools))
      body.tools.forEach((t, i) => {
        const name = isJsonObject(t) && isJsonObject(t.function) ? t.function.name : undefined;
        if (typeof name === 'string' && !/^[a-zA-Z0-9_-]{1,64}$/.test(name))
          throw invalidRequest(
            name.length > 64
              ? `Invalid 'tools[${i}].function.name': string too long. Expected a string with maximum length 64, but got a string with length ${name.length} instead.`
              : `Invalid 'tools[${i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.`,
            `tools[${i}].function.name`,
            name.length > 64 ? 'string_above_max_length' : 'invalid_value',
          );
      });
    const { stream, includeUsage } = streamFlags(body);
    const cap = maxTokensCap(body);
    const n = optPositiveInt(body, 'n', 1, 128) ?? 1;

    const s = pickScenario(model);
    run(res, s, model, stream, () => {
      const tool = chatToolCall(body);
      if (tool) {
        sendChatToolCall(res, s, body, model, tool, stream, includeUsage, n);
        return;
      }
      const want = s.completionTokens ?? DEFAULT_COMPLETION_TOKENS;
      const count = Math.max(0, Math.min(want, cap));
      const finishReason = want > cap ? 'length' : 'stop';
      const seed = hashText(chatSeedText(messages));
      const promptTokens = countChatPromptTokens(messages, body.tools);
      const usage = s.omitUsage ? undefined : makeUsage(promptTokens, count * n, s.cachedTokens, true);
      const reqId = nextId();

      if (!stream) {
        const choices = new Array(n);
        for (let c = 0; c < n; c++) {
          choices[c] = {
            index: c,
            message: {
              role: 'assistant',
              content: generatePieces(seed + c, count).join(''),
              refusal: null,
              annotations: [],
            },
            logprobs: null,
            finish_reason: finishReason,
          };
        }
        sendChatCompletion(res, s, reqId, model, choices, usage, servedTier(s, body));
        return;
      }

      const chunks = chatChunks(reqId, model, includeUsage, obfuscated(s, body), servedTier(s, body));
      const frames: Frame[] = [];
      const pieces: string[][] = [];
      for (let c = 0; c < n; c++) {
        pieces.push(generatePieces(seed + c, count));
        frames.push(
          chunks.frame(
            `[{"index":${c},"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]`,
            'role',
          ),
        );
      }
      for (let t = 0; t < count; t++) {
        for (let c = 0; c < n; c++) {
          frames.push(
            chunks.frame(
              `[{"index":${c},"delta":{"content":${JSON.stringify(pieces[c]![t])}},"logprobs":null,"finish_reason":null}]`,
              'content',
            ),
          );
        }
      }
      frames.push(...chunks.ending(n, finishReason, usage));
      sendStream(res, s, reqId, frames);
    });
  }

  /** One tool call per choice; completion tokens = tok(name) + tok(arguments). */
  function sendChatToolCall(
    res: ServerResponse,
    s: Scenario,
    body: Json,
    model: string,
    tool: { name: string; arguments: string },
    stream: boolean,
    includeUsage: boolean,
    n: number,
  ): void {
    const messages = body.messages as unknown[];
    const perChoice = countTextTokens(tool.name) + countTextTokens(tool.arguments);
    const promptTokens = countChatPromptTokens(messages, body.tools);
    const usage = s.omitUsage ? undefined : makeUsage(promptTokens, perChoice * n, s.cachedTokens, true);
    const reqId = nextId();
    const callId = (c: number) => `call_${reqId}${c}`;
    if (!stream) {
      const choices = Array.from({ length: n }, (_, c) => ({
        index: c,
        message: {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: callId(c), type: 'function', function: { name: tool.name, arguments: tool.arguments } },
          ],
          refusal: null,
          annotations: [],
        },
        logprobs: null,
        finish_reason: 'tool_calls',
      }));
      sendChatCompletion(res, s, reqId, model, choices, usage, servedTier(s, body));
      return;
    }
    const chunks = chatChunks(reqId, model, includeUsage, obfuscated(s, body), servedTier(s, body));
    const frames: Frame[] = [];
    const half = Math.ceil(tool.arguments.length / 2);
    for (let c = 0; c < n; c++) {
      const start = {
        index: 0,
        id: callId(c),
        type: 'function',
        function: { name: tool.name, arguments: '' },
      };
      frames.push(
        chunks.frame(
          `[{"index":${c},"delta":{"role":"assistant","content":null,"tool_calls":[${JSON.stringify(start)}]},"logprobs":null,"finish_reason":null}]`,
          'role',
        ),
      );
      for (const part of [tool.arguments.slice(0, half), tool.arguments.slice(half)])
        frames.push(
          chunks.frame(
            `[{"index":${c},"delta":{"tool_calls":[{"index":0,"function":{"arguments":${JSON.stringify(part)}}}]},"logprobs":null,"finish_reason":null}]`,
            'content',
          ),
        );
    }
    frames.push(...chunks.ending(n, 'tool_calls', usage));
    sendStream(res, s, reqId, frames);
  }

  function handleCompletions(res: ServerResponse, body: Json): void {
    const model = requireModel(body);
    const prompts = textsOrTokens(requiredParam(body, 'prompt'), (x) => typeof x === 'number');
    if (prompts === null)
      throw invalidRequest(
        "Invalid type for 'prompt': expected a string, an array of strings, or an array of token arrays.",
        'prompt',
        'invalid_type',
      );
    const { stream, includeUsage } = streamFlags(body);
    // Legacy completions default max_tokens is 16.
    const capRaw = maxTokensCap(body);
    const cap = body.max_tokens === undefined || body.max_tokens === null ? Math.min(capRaw, 16) : capRaw;
    const n = optPositiveInt(body, 'n', 1, 128) ?? 1;
    // best_of candidates are generated (and counted in usage); the best n come back.
    const bestOf = optPositiveInt(body, 'best_of', 1, 20) ?? n;
    if (bestOf < n) throw invalidRequest('best_of must be greater than or equal to n.', 'best_of');
    if (stream && bestOf > 1)
      throw invalidRequest('Cannot stream results with best_of greater than 1.', 'best_of');

    const s = pickScenario(model);
    run(res, s, model, stream, () => {
      const want = s.completionTokens ?? DEFAULT_COMPLETION_TOKENS;
      const count = Math.max(0, Math.min(want, cap));
      const finishReason = want > cap ? 'length' : 'stop';
      let promptTokens = 0;
      const seeds: number[] = [];
      for (const p of prompts) {
        promptTokens += inputTokens(p);
        seeds.push(hashText(typeof p === 'string' ? p : p.join(',')));
      }
      const nChoices = prompts.length * n;
      const usage = s.omitUsage
        ? undefined
        : makeUsage(promptTokens, count * prompts.length * Math.max(n, bestOf), s.cachedTokens, false);
      const reqId = nextId();
      const id = 'cmpl-' + reqId;
      const created = Math.floor(Date.now() / 1000);
      const choiceSeeds: number[] = [];
      for (const sd of seeds) for (let c = 0; c < n; c++) choiceSeeds.push(sd + c);

      if (!stream) {
        const choices = choiceSeeds.map((sd, index) => ({
          text: generatePieces(sd, count).join(''),
          index,
          logprobs: null,
          finish_reason: finishReason,
        }));
        const out: Json = { id, object: 'text_completion', created, model, choices };
        if (usage) out.usage = usage;
        out.system_fingerprint = 'fp_mole';
        sendJson(res, 200, JSON.stringify(out), baseHeaders(reqId, s, JSON_CT));
        return;
      }
      const chunks = chunkFrames(
        `{"id":"${id}","object":"text_completion","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":"fp_mole","choices":`,
        includeUsage,
      );
      const pieces = choiceSeeds.map((sd) => generatePieces(sd, count));
      const frames: Frame[] = [];
      for (let t = 0; t < count; t++) {
        for (let c = 0; c < nChoices; c++) {
          frames.push(
            chunks.frame(
              `[{"text":${JSON.stringify(pieces[c]![t])},"index":${c},"logprobs":null,"finish_reason":null}]`,
              'content',
            ),
          );
        }
      }
      for (let c = 0; c < nChoices; c++)
        frames.push(
          chunks.frame(
            `[{"text":"","index":${c},"logprobs":null,"finish_reason":"${finishReason}"}]`,
            'tail',
          ),
        );
      frames.push(...chunks.usage(usage));
      sendStream(res, s, reqId, frames);
    });
  }

  function handleEmbeddings(res: ServerResponse, body: Json): void {
    const model = requireModel(body);
    const input = requiredParam(body, 'input');
    const badInput = () =>
      invalidRequest(
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        null,
        null,
      );
    const inputs = textsOrTokens(input, (x) => typeof x === 'number' && Number.isInteger(x));
    if (inputs === null || inputs.length > 2048 || inputs.some((x) => x.length === 0)) throw badInput();
    const fmt = body.encoding_format ?? 'float';
    if (fmt !== 'float' && fmt !== 'base64') {
      throw invalidRequest(
        `Invalid value: '${String(fmt)}'. Supported values are: 'float' and 'base64'.`,
        'encoding_format',
        'invalid_value',
      );
    }
    const dims = optPositiveInt(body, 'dimensions', 1, 3072) ?? (model.includes('large') ? 3072 : 1536);

    const s = pickScenario(model);
    run(res, s, model, false, () => {
      let promptTokens = 0;
      const data = inputs.map((x, index) => {
        promptTokens += inputTokens(x);
        const e = makeEmbedding(typeof x === 'string' ? x : '\u0000tok:' + x.join(','), dims);
        return { object: 'embedding', index, embedding: fmt === 'base64' ? e.base64 : e.floats };
      });
      const out: Json = { object: 'list', data, model };
      if (!s.omitUsage) out.usage = { prompt_tokens: promptTokens, total_tokens: promptTokens };
      const reqId = nextId();
      sendJson(res, 200, JSON.stringify(out), baseHeaders(reqId, s, JSON_CT));
    });
  }

  const kit: MockKit = {
    apiKey,
    models: modelIds,
    nextId,
    pickScenario,
    later,
    destroySocket,
    sendJson,
    writeFrames,
  };
  const protocolRoutes = [anthropicRoutes, responsesRoutes, geminiRoutes];

  function handleRequest(req: IncomingMessage, res: ServerResponse, path: string, raw: string): void {
    const method = req.method ?? 'GET';
    let body: unknown;
    let parseFailed = false;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw);
      } catch {
        parseFailed = true;
      }
    }
    if (record)
      requests.push({ method, path, headers: req.headers, body, rawBody: raw, receivedAt: Date.now() });

    const q = path.indexOf('?');
    const route = q === -1 ? path : path.slice(0, q);

    // Other protocols first: each checks its own credential header.
    const mreq = {
      req,
      res,
      method,
      route,
      query: new URLSearchParams(q === -1 ? '' : path.slice(q + 1)),
      raw,
      body,
      parseFailed,
    };
    try {
      if (protocolRoutes.some((handle) => handle(kit, mreq))) return;
    } catch (e) {
      sendJson(res, 500, JSON.stringify({ error: { message: `mock provider bug: ${String(e)}` } }), {
        'content-type': JSON_CT,
      });
      return;
    }

    try {
      const refused = openAiAuthError(apiKey, req.headers.authorization);
      if (refused) throw refused;

      if (method === 'GET') {
        if (route === '/v1/models') {
          sendJson(res, 200, modelsBody, { 'content-type': JSON_CT, 'x-request-id': 'req_' + nextId() });
          return;
        }
        if (route.startsWith('/v1/models/')) {
          const id = decodeURIComponent(route.slice('/v1/models/'.length));
          if (!modelSet.has(id)) {
            throw new OpenAiRequestError(
              404,
              `The model '${id}' does not exist`,
              'invalid_request_error',
              'model',
              'model_not_found',
            );
          }
          sendJson(
            res,
            200,
            JSON.stringify({ id, object: 'model', created: 1_700_000_000, owned_by: 'moleapi-mock' }),
            {
              'content-type': JSON_CT,
              'x-request-id': 'req_' + nextId(),
            },
          );
          return;
        }
      } else if (
        method === 'POST' &&
        (route === '/v1/chat/completions' || route === '/v1/completions' || route === '/v1/embeddings')
      ) {
        if (parseFailed) {
          throw invalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
          );
        }
        if (body === undefined) throw invalidRequest('you must provide a model parameter');
        if (typeof body !== 'object' || body === null || Array.isArray(body)) {
          throw invalidRequest(
            `Invalid type for body: expected an object, but got ${Array.isArray(body) ? 'an array' : typeof body} instead.`,
          );
        }
        if (route === '/v1/chat/completions') handleChat(res, body as Json);
        else if (route === '/v1/completions') handleCompletions(res, body as Json);
        else handleEmbeddings(res, body as Json);
        return;
      }
      throw new OpenAiRequestError(
        404,
        `Invalid URL (${method} ${route})`,
        'invalid_request_error',
        null,
        null,
      );
    } catch (e) {
      if (e instanceof OpenAiRequestError) sendOpenAiRequestError(kit, res, e);
      else {
        sendJson(
          res,
          500,
          openAiErrorJson({
            message: `mock provider bug: ${String(e)}`,
            type: 'server_error',
            param: null,
            code: null,
          }),
          {
            'content-type': JSON_CT,
          },
        );
      }
    }
  }

  const server = http.createServer(
    { keepAlive: true, noDelay: true, keepAliveTimeout: 65_000 },
    (req, res) => {
      const path = req.url ?? '/';
      if (req.method === 'GET' || req.method === 'HEAD') {
        // No body expected; don't wait for 'end' beyond what Node already has.
        req.resume();
        handleRequest(req, res, path, '');
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let tooBig = false;
      req.on('data', (c: Buffer) => {
        if (tooBig) return;
        size += c.length;
        if (size > MAX_BODY) {
          tooBig = true;
          chunks.length = 0;
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => {
        if (tooBig) {
          sendJson(
            res,
            413,
            openAiErrorJson({
              message: 'Request body too large.',
              type: 'invalid_request_error',
              param: null,
              code: null,
            }),
            {
              'content-type': JSON_CT,
            },
          );
          return;
        }
        const raw =
          chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
        handleRequest(req, res, path, raw);
      });
      req.on('error', () => {
        /* client went away mid-upload */
      });
    },
  );
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;
  server.on('connection', (sock: Socket) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
  });
  server.on('clientError', (_err, sock: Socket) => {
    if (sock.writable) sock.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else sock.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('mock-provider: unexpected server address');
  const port = addr.port;
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | undefined;

  return {
    url: `http://${urlHost}:${port}/v1`,
    port,
    host,
    requests,
    setScenario(model: string, scenario: Scenario) {
      const times = scenario.times;
      scenarios.set(model, {
        s: { ...scenario },
        remaining: times === undefined ? Infinity : Math.max(0, times),
      });
      if (times !== undefined && times <= 0) scenarios.delete(model);
    },
    clearScenarios() {
      scenarios.clear();
    },
    reset() {
      requests.length = 0;
      scenarios.clear();
    },
    close() {
      if (closing) return closing;
      closing = new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
        sockets.clear();
      });
      return closing;
    },
  };
}

function makeUsage(prompt: number, completion: number, cached: number | undefined, chat: boolean): Json {
  const cachedTokens = Math.max(0, Math.min(cached ?? 0, prompt));
  const u: Json = {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: chat
      ? { cached_tokens: cachedTokens, audio_tokens: 0 }
      : { cached_tokens: cachedTokens },
  };
  if (chat)
    u.completion_tokens_details = {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    };
  return u;
}
