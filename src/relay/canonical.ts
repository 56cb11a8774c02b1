// The relay's own model of a conversation, an answer and a stream, shared by every wire
// protocol. Each protocol codec (protocols/*.ts) maps its wire format to and from these
// types, so N protocols need N codecs rather than N×N converters. Pass-through (client and
// upstream speak the same protocol) skips the canonical form: bytes go through as sent and
// the codec only reads usage and checks events on the way.

/** The wire protocols MoleAPI speaks, in and out. */
export type Protocol = 'openai' | 'responses' | 'anthropic' | 'gemini';

/**
 * What a request asks for. Generation and embeddings translate between protocols (OpenAI's and
 * Gemini's embeddings); `completions` exist only in OpenAI's protocol.
 */
export type Operation = 'generate' | 'completions' | 'embeddings';

// ── request ────────────────────────────────────────────────────────────────────────────────

export type Part =
  | { type: 'text'; text: string }
  /** `url` is an http(s) URL or a `data:<media type>;base64,<data>` URL. */
  | { type: 'image'; url: string; detail?: 'low' | 'high' | 'auto' }
  /**
   * A document (a PDF, a plain text file) by a `data:<media type>;base64,` URL or an http(s)
   * URL; `name` is its file name when the client gave one.
   */
  | { type: 'file'; mediaType: string; url: string; name?: string };

export interface ToolCall {
  id: string;
  name: string;
  /** JSON text of the arguments, as the model wrote it. */
  arguments: string;
}

export type Message =
  | { role: 'user'; content: Part[] }
  | { role: 'assistant'; content: Part[]; toolCalls: ToolCall[] }
  /** A tool's result, answering the assistant's call `toolCallId`. */
  | { role: 'tool'; toolCallId: string; name?: string; content: Part[]; isError?: boolean };

export interface Tool {
  name: string;
  description?: string;
  /** JSON Schema of the arguments (an object schema). */
  parameters: Record<string, unknown>;
  /** The client asked the arguments to follow the schema exactly (OpenAI's `strict: true`). */
  strict?: boolean;
}

/**
 * Settings some protocols share beyond the common ones, carried when the client set them and
 * the upstream's protocol has them (each left out otherwise).
 */
export interface Settings {
  topK?: number;
  seed?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Who the end user is, for the provider's abuse checks (OpenAI's `user`, Anthropic's `metadata.user_id`). */
  user?: string;
  /** OpenAI's `prompt_cache_key`: requests that share it share a prompt cache. */
  promptCacheKey?: string;
}

export type ToolChoice = 'auto' | 'none' | 'required' | { name: string };

/** JSON the client asked the answer to be: any object, or a value valid against a JSON Schema. */
export type ResponseFormat =
  | { type: 'json_object' }
  | { type: 'json_schema'; name: string; schema: Record<string, unknown>; strict: boolean };

export interface CanonicalRequest {
  /** System prompt / instructions, in order (text only). */
  system: string[];
  messages: Message[];
  tools: Tool[];
  toolChoice: ToolChoice | null;
  /** false: at most one tool call an answer (OpenAI's parallel_tool_calls); null: not said. */
  parallelToolCalls: boolean | null;
  /** Output cap the client asked for (null = none given; the relay may still impose one). */
  maxOutputTokens: number | null;
  temperature: number | null;
  topP: number | null;
  stop: string[];
  stream: boolean;
  /** Structured output (OpenAI's response_format, Responses' text.format, Gemini's responseSchema). */
  responseFormat: ResponseFormat | null;
  /** Embeddings only (protocols/embeddings.ts): what to embed; the generation fields are empty. */
  embed?: CanonicalEmbed;
  settings?: Settings;
}

/** A canonical request holding only `fields`: no system prompt, messages, tools or settings. */
export const canonicalRequest = (fields: Partial<CanonicalRequest>): CanonicalRequest => ({
  system: [],
  messages: [],
  tools: [],
  toolChoice: null,
  parallelToolCalls: null,
  maxOutputTokens: null,
  temperature: null,
  topP: null,
  stop: [],
  stream: false,
  responseFormat: null,
  ...fields,
});

/** An embeddings request: a vector for each text, of `dimensions` numbers (null: the model's). */
export interface CanonicalEmbed {
  inputs: string[];
  dimensions: number | null;
}

// ── answer ─────────────────────────────────────────────────────────────────────────────────

/** Why generation stopped, in OpenAI's terms (each codec maps its own names). */
export type StopReason = 'stop' | 'length' | 'tool_calls' | 'content_filter';

/**
 * Tokens of one answer, reduced to four kinds (reasoning is part of `output`):
 * `input` excludes cache reads and writes, unlike OpenAI's `prompt_tokens`.
 */
export interface CanonicalUsage {
  input: number;
  cacheRead: number;
  cacheWrite: number;
  /** Part of `cacheWrite` kept for an hour (Anthropic `ttl: "1h"`), billed at its own price. */
  cacheWrite1h?: number;
  output: number;
  /** Part of `output` spent on reasoning / thinking. */
  reasoning: number;
  /** Searches the provider's own search tool ran (billed per search); absent when none. */
  webSearches?: number;
  /** The processing tier the upstream says it served (OpenAI `service_tier`), where it says one. */
  serviceTier?: string;
}

export const ZERO_USAGE: CanonicalUsage = { input: 0, cacheRead: 0, cacheWrite: 0, output: 0, reasoning: 0 };

export interface CanonicalAnswer {
  id: string;
  model: string;
  text: string;
  /** Reasoning / thinking text the upstream exposed, if any (not re-encoded by every protocol). */
  reasoning: string;
  toolCalls: ToolCall[];
  stopReason: StopReason;
  /** `stop` because a stop sequence matched: which one (Anthropic reports it). */
  stopSequence?: string | null;
  usage: CanonicalUsage | null;
  /** Searches the answer shows as run (its usage may leave them out, or be missing). */
  webSearches?: number;
  /** The processing tier the answer says it was served at (OpenAI), with or without usage. */
  serviceTier?: string;
  /** Embeddings: a vector for each input, in order. */
  vectors?: number[][];
}

// ── stream ─────────────────────────────────────────────────────────────────────────────────

/**
 * One step of a streamed answer. Decoders emit them in this order: `start`, then any mix of
 * `text` / `reasoning` / `tool_call` + `tool_args`, then `stop`; `usage` may come anywhere
 * (a later one replaces an earlier one: decoders emit cumulative usage).
 */
export type StreamEvent =
  | { type: 'start'; id: string; model: string }
  | { type: 'text'; text: string }
  | { type: 'reasoning'; text: string }
  /** A tool call begins; `index` numbers the answer's tool calls from 0. */
  | { type: 'tool_call'; index: number; id: string; name: string }
  | { type: 'tool_args'; index: number; delta: string }
  | { type: 'stop'; reason: StopReason; stopSequence?: string | null }
  | { type: 'usage'; usage: CanonicalUsage };

/** The generated text an event carries, as a local token count reads it ('' for none). */
export function generatedText(e: StreamEvent): string {
  if (e.type === 'text' || e.type === 'reasoning') return e.text;
  if (e.type === 'tool_args') return e.delta;
  if (e.type === 'tool_call') return e.name;
  return '';
}

/** One server-sent event as it arrived: its `event:` name (if any), its data, its raw text. */
export interface SseFrame {
  event: string | null;
  data: string;
  /** The frame's bytes as received, including the blank line that ended it. */
  raw: string;
}

/** Reads an upstream stream in one protocol into canonical events. */
export interface StreamDecoder {
  /**
   * Checks one frame. Throws `StreamBroken` when the frame is unreadable or reports an
   * error. `hide` asks pass-through to drop the frame (OpenAI's usage-only chunk when the
   * client did not ask for usage).
   */
  feed(frame: SseFrame): { events: StreamEvent[]; hide?: boolean };
  /** True once the protocol's last frame arrived ([DONE], message_stop, response.completed, …). */
  readonly done: boolean;
  /** Cumulative usage reported so far (null: none yet). */
  readonly usage: CanonicalUsage | null;
  /** Searches the stream showed as run so far (where the protocol shows them before its usage). */
  readonly webSearches?: number;
  /** The processing tier the stream said it was served at so far (OpenAI). */
  readonly serviceTier?: string | undefined;
}

/**
 * Checks a stream's frames as `StreamDecoder.feed` does (the same throws, `done`, `usage` and
 * `hide`) without building their events, mostly without decoding their bytes.
 */
export interface PassThroughCheck {
  /** Checks a frame that is one `data:` line, its data being bytes[start, end). Returns `hide`. */
  checkBytes(bytes: Buffer, start: number, end: number): boolean;
  /**
   * Checks a frame that is an `event:` line, its name bytes[eventStart, eventEnd), then a
   * `data:` line, bytes[start, end). Returns `hide`. Without it such frames are read as text.
   */
  checkEventBytes?(bytes: Buffer, eventStart: number, eventEnd: number, start: number, end: number): boolean;
  /** Checks any other frame. Returns `hide`. */
  check(frame: SseFrame): boolean;
  readonly done: boolean;
  readonly usage: CanonicalUsage | null;
  /** As the stream decoder's. */
  readonly webSearches?: number;
  readonly serviceTier?: string | undefined;
  /** The generated text of the frames checked so far, as `generatedText` of `feed`'s events. */
  readonly produced: string;
  /** The answer's id as the upstream announced it, where the check reads one. */
  readonly answerId?: string | null;
  /**
   * A failure after the stream began, as the next frame of the upstream's own stream (its
   * response id, its event numbering); without it the ingress's encoder writes one. `code` is
   * the upstream's own when `upstream` (it goes as it came), else one of ours.
   */
  error?(code: string, message: string, upstream?: boolean): string;
}

/** Writes canonical events as one protocol's stream (translation only). */
export interface StreamEncoder {
  /** Wire text for one event ('' when it only updates state). */
  event(e: StreamEvent): string;
  /** The closing frames, carrying the final usage (e.g. `message_delta` + `message_stop`, `[DONE]`). */
  finish(usage: CanonicalUsage): string;
  /**
   * A failure after the stream began, in the protocol's own shape (then the stream closes);
   * `status`: the HTTP status it would have had before the stream began (504 for a timeout).
   */
  error(code: string, message: string, status?: number): string;
}

/** A stream that cannot be relayed further: unreadable, cut, or an error event. */
export class StreamBroken extends Error {
  constructor(
    message: string,
    /** The upstream's own error, when it sent one (an error event): its code and message. */
    readonly upstream?: { code: string | null; message: string },
  ) {
    super(message);
  }
}
