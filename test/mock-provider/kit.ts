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
