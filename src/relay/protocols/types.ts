// A protocol codec: everything the relay knows about one wire protocol, both as the client's
// protocol (ingress: parse the request, encode answers, streams and errors back) and as the
// upstream's (egress: build its request, decode its answers and streams). One file per
// protocol implements it; the pipeline never branches on a protocol name.
import type { IncomingHttpHeaders } from 'node:http';
import type {
  CanonicalAnswer,
  CanonicalRequest,
  CanonicalUsage,
  Operation,
  PassThroughCheck,
  Protocol,
  StreamDecoder,
  StreamEncoder,
} from '../canonical.js';

/** How a request arrived: which protocol's route, and what the path itself says. */
export interface RouteInfo {
  protocol: Protocol;
  operation: Operation;
  /** Gemini names the model in the path (`/v1beta/models/{model}:generateContent`). */
  pathModel?: string;
  /** Gemini streams by path (`:streamGenerateContent`). */
  pathStream?: boolean;
}

/** A client request, validated and counted, before any channel is chosen. */
export interface IngressRequest {
  protocol: Protocol;
  operation: Operation;
  model: string;
  stream: boolean;
  /** Prompt tokens counted locally: admission's upper bound, and the estimate's input. */
  promptTokens: number;
  /**
   * Set when `promptTokens` is only a cheap upper bound (a long prompt, not yet tokenized):
   * the exact local count, computed on demand. The relay uses it where the bound would refuse
   * a request or an estimate needs the real number (read it through `exactPromptTokens(r)`).
   */
  exactPromptTokens?: () => number;
  /** Counts a long prompt's texts ahead, between event-loop turns (tokens.ts `warm`). */
  warm?: () => Promise<void>;
  /** Output cap for admission: the request's own, else the configured default. */
  maxOutputTokens: number;
  /**
   * Anthropic: a `cache_control` asks for an hour (`ttl: "1h"`). Such cache writes cost more
   * than plain input, and admission holds for them.
   */
  cachesForHour?: boolean;
  /**
   * The most searches the request lets a provider's own search tool run (a `max_uses` or
   * `max_tool_calls`, else an assumed bound): each is billed, and admission holds for them.
   */
  maxWebSearches?: number;
  /** The processing tier the request asks for (OpenAI `service_tier`: priority costs more). */
  serviceTier?: string;
  /**
   * Searches every answer runs, shown or not (an OpenAI chat search model's
   * `web_search_options`: one search call each).
   */
  searchesPerAnswer?: number;
  /**
   * Searches to bill for an answer cut before it named any (Gemini names grounding's queries
   * only in its last frame): 1 when the request offered Google Search.
   */
  searchesIfCut?: number;
  /**
   * Context the request brings by reference whose size is known (a stored response this
   * instance relayed, stored-context.ts): the upstream bills it as input, so an estimated
   * prompt counts it too.
   */
  knownContextTokens?: number;
  /** Set when the client gave no output cap: the default we admitted with, sent upstream too. */
  impliedOutputCap: number | null;
  /** OpenAI streams: the client asked for the usage chunk (`stream_options.include_usage`). */
  clientWantsUsage: boolean;
  /** The client's parsed JSON body, untouched. */
  body: Record<string, unknown>;
  /**
   * The client's body as sent (set by the relay after parsing): what a pass-through sends
   * when it would not change a thing, instead of serialising `body` again.
   */
  raw?: Buffer;
}

export interface ProtocolCodec {
  readonly protocol: Protocol;

  // ── ingress: the client speaks this protocol ──────────────────────────────────────────────
  /** Validates and counts the body; throws AppError('invalid_request') for client mistakes. */
  parseRequest(body: Record<string, unknown>, route: RouteInfo, defaultMaxOutput: number): IngressRequest;
  /** The request in canonical form (translation only; generate operations only). */
  toCanonical(r: IngressRequest): CanonicalRequest;
  /** A canonical answer as this protocol's JSON response body. */
  encodeAnswer(a: CanonicalAnswer, r: IngressRequest): unknown;
  /** Writes canonical stream events as this protocol's SSE frames. */
  streamEncoder(r: IngressRequest, requestId: string): StreamEncoder;
  /** The protocol's own error body for a refusal or failure (`code` is the contract's §4 code). */
  errorBody(status: number, code: string, message: string, requestId: string, param?: string | null): unknown;
  /** Client headers that go upstream verbatim on pass-through (e.g. `anthropic-*`). */
  forwardedHeaders(headers: IncomingHttpHeaders): Record<string, string>;
  /** Token counting answered locally (Anthropic's count_tokens, Gemini's countTokens): the answer body. */
  countTokens?(body: Record<string, unknown>): Promise<unknown>;
  /** The protocol's own model-list body for these model ids (Gemini's GET /v1beta/models). */
  modelList?(ids: string[]): unknown;

  // ── egress: the upstream speaks this protocol ─────────────────────────────────────────────
  /**
   * Pass-through: the client's own body with only the model mapped (plus usage reporting
   * switched on where the protocol needs it, and `impliedOutputCap` where set).
   */
  passThroughBody(r: IngressRequest, upstreamModel: string): unknown;
  /**
   * Pass-through as bytes: the client's own (`r.raw`), or with only a member added, when
   * `passThroughBody` would send the same JSON; null when it must be built (then call that).
   */
  passThroughBytes?(r: IngressRequest, upstreamModel: string): Buffer | null;
  /** Translation: a canonical request as this protocol's body; `outputCap` is always sent. */
  fromCanonical(c: CanonicalRequest, upstreamModel: string, outputCap: number): unknown;
  /** A 2xx body that is really an error (`{"error":…}`, `{"type":"error"}`): its message, else null. */
  answerError(json: unknown): string | null;
  /**
   * An upstream 4xx that is the channel's fault rather than the request's (Google answers a
   * bad API key with 400 INVALID_ARGUMENT / API_KEY_INVALID, an unsupported region with 400
   * FAILED_PRECONDITION): the next channel should try, as for 401/403.
   */
  channelFault?(status: number, json: unknown): boolean;
  /** Reads an answer (any operation of this protocol); usage null when the upstream gave none. */
  decodeAnswer(json: unknown): CanonicalAnswer;
  /**
   * A plain answer passed through unchanged: its usage, read without decoding the rest, when
   * the bytes are a JSON object with a usage and no error; null when it must be decoded whole.
   */
  passThroughUsage?(body: Buffer): CanonicalUsage | null;
  /** Reads this protocol's stream; `r` is the request as sent (for what the client asked). */
  streamDecoder(r: IngressRequest): StreamDecoder;
  /**
   * Optional, for a stream passed through (no events needed): a cheaper check of it than
   * feeding the decoder (the same throws, `done`, `usage` and `hide`).
   */
  passThroughCheck?(r: IngressRequest): PassThroughCheck;
}

/** The exact local prompt count (tokenizing now if admission used the bound); replaces the bound. */
export function exactPromptTokens(r: IngressRequest): number {
  if (r.exactPromptTokens) {
    r.promptTokens = r.exactPromptTokens();
    r.exactPromptTokens = undefined;
  }
  return r.promptTokens;
}
