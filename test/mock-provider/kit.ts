// What a protocol's handlers in the mock provider get from the server: its scenarios, timers
// and helpers, so each protocol (anthropic.ts, responses.ts, gemini.ts) lives in its own file
// and honours the same scenarios (status, delays, cuts, hangs, garbage, usage) as OpenAI's.
import type http from 'node:http';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Scenario } from './server.js';

export interface MockKit {
  /** The API key the provider requires, if any (each protocol checks its own header). */
  apiKey: string | undefined;
  /** The model ids the provider lists. */
  models: readonly string[];
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

/** A message's text, and the tokens its other parts (images, tool calls, …) count. */
export interface ContentCount {
  text: string;
  extra: number;
}

/** Content that is a string, or an array of parts each counted by `part` (other values count nothing). */
export function countContent(content: unknown, part: (p: Json) => ContentCount): ContentCount {
  if (typeof content === 'string') return { text: content, extra: 0 };
  let text = '';
  let extra = 0;
  if (Array.isArray(content))
    for (const p of content) {
      if (!isJsonObject(p)) continue;
      const x = part(p);
      text += x.text;
      extra += x.extra;
    }
  return { text, extra };
}

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

/** A body field OpenAI requires, or its 400 `missing_required_parameter` when it is absent or null. */
export function requiredParam(body: Json, key: string): unknown {
  const v = body[key];
  if (v === undefined || v === null)
    throw invalidRequest(`Missing required parameter: '${key}'.`, key, 'missing_required_parameter');
  return v;
}

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

/** OpenAI's error body: `{"error":{message,type,param,code}}`. */
export const openAiErrorJson = (e: {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}): string => JSON.stringify({ error: { message: e.message, type: e.type, param: e.param, code: e.code } });

/** OpenAI's error for a scenario status (`model` is the requested model). */
function openAiStatusError(
  status: number,
  model: string,
): { message: string; type: string; code: string | null } {
  switch (status) {
    case 400:
      return { message: 'Invalid request (mock scenario).', type: 'invalid_request_error', code: null };
    case 401:
      return {
        message:
          'Incorrect API key provided: sk-mock***. You can find your API key at https://platform.openai.com/account/api-keys.',
        type: 'invalid_request_error',
        code: 'invalid_api_key',
      };
    case 403:
      return {
        message: `Project does not have access to model ${model}.`,
        type: 'invalid_request_error',
        code: 'model_not_found',
      };
    case 404:
      return {
        message: `The model \`${model}\` does not exist or you do not have access to it.`,
        type: 'invalid_request_error',
        code: 'model_not_found',
      };
    case 429:
      return {
        message: `Rate limit reached for ${model} in organization org-mock on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s.`,
        type: 'requests',
        code: 'rate_limit_exceeded',
      };
    case 503:
      return {
        message: 'The engine is currently overloaded, please try again later.',
        type: 'server_error',
        code: null,
      };
    default:
      return status >= 500
        ? {
            message: 'The server had an error while processing your request. Sorry about that!',
            type: 'server_error',
            code: null,
          }
        : { message: `Mock error ${status}.`, type: 'invalid_request_error', code: null };
  }
}

/** OpenAI's answer to a refused request: its error body under a fresh request id. */
export function sendOpenAiRequestError(kit: MockKit, res: ServerResponse, e: OpenAiRequestError): void {
  kit.sendJson(res, e.status, openAiErrorJson(e), {
    'content-type': 'application/json',
    'x-request-id': `req_${kit.nextId()}`,
  });
}

/**
 * The scenario's error status as OpenAI answers it: the scenario's message, type and code over
 * OpenAI's own for that status, with OpenAI's error headers.
 */
export function sendOpenAiScenarioError(kit: MockKit, res: ServerResponse, s: Scenario, model: string): void {
  const status = s.status!;
  const d = openAiStatusError(status, model);
  const e = {
    message: s.errorMessage ?? d.message,
    type: s.errorType ?? d.type,
    param: null,
    code: s.errorCode !== undefined ? s.errorCode : d.code,
  };
  kit.sendJson(res, status, openAiErrorJson(e), openAiErrorHeaders(`req_${kit.nextId()}`, s, status));
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
