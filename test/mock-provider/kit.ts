// What a protocol's handlers in the mock provider get from the server: its scenarios, timers
// and helpers, so each protocol (anthropic.ts, responses.ts, gemini.ts) lives in its own file
// and honours the same scenarios (status, delays, cuts, hangs, garbage, usage) as OpenAI's.
import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
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

/** Runs `fn` once the scenario's firstByteDelayMs has passed (at once when it has none). */
export function afterFirstByteDelay(
  kit: MockKit,
  res: ServerResponse,
  s: { firstByteDelayMs?: number },
  fn: () => void,
): void {
  if (s.firstByteDelayMs && s.firstByteDelayMs > 0) kit.later(res, s.firstByteDelayMs, fn);
  else fn();
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
