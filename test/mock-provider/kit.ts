// What a protocol's handlers in the mock provider get from the server: its scenarios, timers
// and helpers, so each protocol (anthropic.ts, responses.ts, gemini.ts) lives in its own file
// and honours the same scenarios (status, delays, cuts, hangs, garbage, usage) as OpenAI's.
import type http from 'node:http';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Scenario } from './server.js';

export interface MockKit {
  /** The API key the provider requires, if any (each protocol checks its own header). */
  apiKey: string | undefined;
  nextId(): string;
  /** The scenario for this model (consumes one of its `times`). */
  pickScenario(model: string): Scenario;
  /** setTimeout bound to the response: cancelled when the client goes away or the server closes. */
  later(res: ServerResponse, ms: number, fn: () => void): void;
  destroySocket(res: ServerResponse): void;
  sendJson(res: ServerResponse, status: number, body: string, headers: http.OutgoingHttpHeaders): void;
  /**
   * Writes a stream's frames (headers already sent) honouring the scenario's chunkDelayMs and
   * hangMs; `cut` destroys the socket after the last frame instead of ending the response.
   */
  writeFrames(res: ServerResponse, s: Scenario, frames: string[], cut: boolean): void;
}

export interface MockRequest {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  /** Path without the query string. */
  route: string;
  query: URLSearchParams;
  raw: string;
  /** Parsed JSON body (undefined when empty or unparseable). */
  body: unknown;
  parseFailed: boolean;
}

/** Handles the request if the route is this protocol's (returns true), else returns false. */
export type ProtocolRoutes = (kit: MockKit, r: MockRequest) => boolean;

// ── helpers every protocol's handlers share ────────────────────────────────────────────────

export type Json = Record<string, unknown>;

/** A plain JSON object (not null, not an array). */
export const isJsonObject = (v: unknown): v is Json => !!v && typeof v === 'object' && !Array.isArray(v);

/** JSON with a space after every ':' and ',' as Python's json.dumps writes it (undefined fields left out). */
export function spaced(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(spaced).join(', ')}]`;
  return `{${Object.entries(v as Json)
    .filter(([, x]) => x !== undefined)
    .map(([k, x]) => `${JSON.stringify(k)}: ${spaced(x)}`)
    .join(', ')}}`;
}

/** The scenario's JSON writer: compact, or spaced when it asks for `spacedJson`. */
export const jsonWriter =
  (s: { spacedJson?: boolean }) =>
  (v: unknown): string =>
    s.spacedJson ? spaced(v) : JSON.stringify(v);

/**
 * Plays the scenario's hang (the socket destroyed after hangMs; a stream it cuts hangs after its
 * frames instead), then, once its gate (holdUntil) is open and its firstByteDelayMs has passed,
 * either `fail` (a status of 300 or more) or `go`.
 */
export function playScenario(
  kit: MockKit,
  res: ServerResponse,
  s: {
    hangMs?: number;
    cutAfterChunks?: number;
    firstByteDelayMs?: number;
    status?: number;
    holdUntil?: Promise<unknown>;
  },
  stream: boolean,
  fail: () => void,
  go: () => void,
): void {
  if (s.hangMs !== undefined && !(stream && s.cutAfterChunks !== undefined)) {
    kit.later(res, s.hangMs, () => kit.destroySocket(res));
    return;
  }
  const next = s.status !== undefined && s.status >= 300 ? fail : go;
  const afterDelay = () => {
    if (s.firstByteDelayMs && s.firstByteDelayMs > 0) kit.later(res, s.firstByteDelayMs, next);
    else next();
  };
  if (s.holdUntil) afterGate(res, s.holdUntil, afterDelay);
  else afterDelay();
}

/** Runs `fn` once `gate` settles, unless the connection is gone by then. */
export function afterGate(res: ServerResponse, gate: Promise<unknown>, fn: () => void): void {
  const open = () => {
    if (!res.destroyed) fn();
  };
  gate.then(open, open);
}

/** The prompt tokens the scenario says were read from and written to the prompt cache (within the prompt). */
export function cacheSplit(
  s: { cachedTokens?: number; cacheWriteTokens?: number },
  prompt: number,
): { cacheRead: number; cacheWrite: number } {
  const cacheRead = Math.max(0, Math.min(s.cachedTokens ?? 0, prompt));
  const cacheWrite = Math.max(0, Math.min(s.cacheWriteTokens ?? 0, prompt - cacheRead));
  return { cacheRead, cacheWrite };
}

/** A refused request in OpenAI's shape: `{error: {message, type, param, code}}` with `status`. */
export class OpenAiRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null,
    readonly code: string | null,
  ) {
    super(message);
  }
}

/** 400 invalid_request_error, OpenAI's answer to a malformed body. */
export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new OpenAiRequestError(400, message, 'invalid_request_error', param, code);

/** OpenAI's 401 for a missing or wrong `Authorization: Bearer` key (null when it is right or none is required). */
export function openAiAuthError(
  apiKey: string | undefined,
  auth: string | undefined,
): OpenAiRequestError | null {
  if (apiKey === undefined) return null;
  if (!auth)
    return new OpenAiRequestError(
      401,
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
      'invalid_request_error',
      null,
      null,
    );
  if (auth === `Bearer ${apiKey}`) return null;
  const given = auth.startsWith('Bearer ') ? auth.slice(7) : auth;
  const masked =
    given.length > 8
      ? given.slice(0, 3) + '*'.repeat(Math.min(given.length - 7, 20)) + given.slice(-4)
      : '*'.repeat(given.length);
  return new OpenAiRequestError(
    401,
    `Incorrect API key provided: ${masked}. You can find your API key at https://platform.openai.com/account/api-keys.`,
    'invalid_request_error',
    null,
    'invalid_api_key',
  );
}

/**
 * Tool-call arguments for a JSON schema: each required property gets a value of its type (same
 * rule in every protocol). Gemini's schemas spell types in capitals (`STRING`), hence `anyCase`.
 */
export function argsFromSchema(schema: unknown, anyCase = false): Json {
  const out: Json = {};
  if (!isJsonObject(schema)) return out;
  const props = isJsonObject(schema.properties) ? schema.properties : {};
  const required = Array.isArray(schema.required) ? schema.required : [];
  for (const name of required) {
    if (typeof name !== 'string') continue;
    const p = props[name];
    const t = isJsonObject(p)
      ? anyCase && typeof p.type === 'string'
        ? p.type.toLowerCase()
        : p.type
      : undefined;
    out[name] = t === 'string' ? 'mole' : t === 'number' || t === 'integer' ? 1 : t === 'boolean' ? true : {};
  }
  return out;
}

/** OpenAI's answer headers (a request id, the processing time), then the scenario's own. */
export function openAiHeaders(
  requestId: string,
  s: { headers?: Record<string, string> },
  contentType: string,
): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = {
    'content-type': contentType,
    'x-request-id': requestId,
    'openai-processing-ms': '1',
  };
  if (s.headers) Object.assign(h, s.headers);
  return h;
}

/** OpenAI's headers on a scenario's error status: Retry-After, and its rate-limit headers on a 429. */
export function openAiErrorHeaders(
  requestId: string,
  s: { headers?: Record<string, string>; retryAfterSeconds?: number },
  status: number,
): OutgoingHttpHeaders {
  const headers = openAiHeaders(requestId, s, 'application/json');
  const retryAfter = s.retryAfterSeconds ?? (status === 429 ? 1 : undefined);
  if (retryAfter !== undefined) headers['retry-after'] ??= String(retryAfter);
  if (status === 429) {
    headers['x-ratelimit-limit-requests'] ??= '3';
    headers['x-ratelimit-remaining-requests'] ??= '0';
    headers['x-ratelimit-reset-requests'] ??= `${retryAfter ?? 1}s`;
  }
  return headers;
}

/** One SSE frame of a named-event stream: opening events, one content delta, or closing events. */
export interface EventFrame {
  text: string;
  kind: 'head' | 'content' | 'tail';
}

/**
 * What a named-event stream (Anthropic's, Responses') writes under the scenario: `garbage`
 * after the garbageAfterChunks-th content frame, `errorFrame()` in place of the
 * midStreamError-th onward, and with cutAfterChunks a cut (`cut`) before the next content frame
 * past it or the first closing one.
 */
export function scriptedFrames(
  s: { cutAfterChunks?: number; midStreamError?: number; garbageAfterChunks?: number },
  frames: EventFrame[],
  garbage: string,
  errorFrame: () => string,
): { out: string[]; cut: boolean } {
  const out: string[] = [];
  let seen = 0;
  if (s.garbageAfterChunks === 0) out.push(garbage);
  for (const f of frames) {
    if (
      s.cutAfterChunks !== undefined &&
      (f.kind === 'tail' || (f.kind === 'content' && seen >= s.cutAfterChunks))
    )
      return { out, cut: true };
    if (f.kind === 'content' && s.midStreamError !== undefined && seen >= s.midStreamError) {
      out.push(errorFrame());
      break;
    }
    out.push(f.text);
    if (f.kind === 'content' && ++seen === s.garbageAfterChunks) out.push(garbage);
  }
  return { out, cut: false };
}
