// Ingress protocol: OpenAI's /v1 request bodies → the relay's canonical request, and the
// usage the OpenAI wire format reports back. Providers speak this canonical form.
import { AppError } from '../../http/errors.js';
import { countChatPrompt, countInputs } from '../tokens.js';

export type Endpoint = 'chat' | 'completions' | 'embeddings';
export const ENDPOINT_PATHS: Record<Endpoint, string> = {
  chat: '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
};

export interface RelayRequest {
  endpoint: Endpoint;
  model: string;
  stream: boolean;
  /** The client asked for the usage chunk in its stream. */
  clientWantsUsage: boolean;
  /** Output cap used for admission: the request's own, else the configured default. */
  maxOutputTokens: number;
  /** Set when the client gave no output cap: the default we admitted with, sent upstream too. */
  impliedOutputCap: number | null;
  promptTokens: number;
  body: Record<string, unknown>;
}

export interface Usage {
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
}

const bad = (message: string, param: string | null = null) =>
  new AppError('invalid_request', message, { param });

export function parseRelayBody(raw: Buffer | undefined): Record<string, unknown> {
  if (!raw || raw.length === 0) throw bad('request body is empty; send a JSON object');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw bad('request body is not valid JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw bad('request body must be a JSON object');
  return parsed as Record<string, unknown>;
}

export function relayModel(body: Record<string, unknown>): string {
  const m = body.model;
  if (typeof m !== 'string' || m.length === 0 || m.length > 256)
    throw bad('"model" is required and must be a string', 'model');
  // No model name has control characters; refusing them keeps them out of logs and SQL text.
  if (/[\u0000-\u001f\u007f]/.test(m)) throw bad('"model" must not contain control characters', 'model');
  return m;
}

function positiveInt(body: Record<string, unknown>, name: string): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 10_000_000)
    throw bad(`"${name}" must be a positive integer`, name);
  return v;
}

export function toRelayRequest(
  endpoint: Endpoint,
  body: Record<string, unknown>,
  defaultMaxOutput: number,
): RelayRequest {
  const model = relayModel(body);
  if (body.stream !== undefined && typeof body.stream !== 'boolean' && body.stream !== null)
    throw bad('"stream" must be a boolean', 'stream');
  // Embeddings never stream: a stray `stream: true` must not make the relay expect SSE from an
  // upstream that answers JSON (that would count as a channel failure and cool channels down).
  const stream = endpoint !== 'embeddings' && body.stream === true;
  const so = body.stream_options;
  const clientWantsUsage =
    stream && !!so && typeof so === 'object' && (so as { include_usage?: unknown }).include_usage === true;
  let promptTokens: number;
  let maxOutputTokens = 0;
  let impliedOutputCap: number | null = null;
  if (endpoint === 'chat') {
    if (!Array.isArray(body.messages) || body.messages.length === 0)
      throw bad('"messages" must be a non-empty array', 'messages');
    promptTokens = countChatPrompt(body.messages, body.tools ?? body.functions);
    const own = positiveInt(body, 'max_completion_tokens') ?? positiveInt(body, 'max_tokens');
    if (own === undefined) impliedOutputCap = defaultMaxOutput;
    maxOutputTokens = own ?? defaultMaxOutput;
  } else if (endpoint === 'completions') {
    const p = body.prompt;
    if (typeof p !== 'string' && !Array.isArray(p))
      throw bad('"prompt" must be a string or an array', 'prompt');
    promptTokens = countInputs(p);
    maxOutputTokens = positiveInt(body, 'max_tokens') ?? 16; // OpenAI's documented default for completions
    const n = positiveInt(body, 'n') ?? 1;
    maxOutputTokens *= n;
  } else {
    const input = body.input;
    if (typeof input !== 'string' && !Array.isArray(input))
      throw bad('"input" must be a string or an array', 'input');
    promptTokens = countInputs(input);
  }
  if (endpoint === 'chat') maxOutputTokens *= positiveInt(body, 'n') ?? 1;
  return { endpoint, model, stream, clientWantsUsage, maxOutputTokens, impliedOutputCap, promptTokens, body };
}

/** The body sent upstream: the provider's model name, and usage always requested on streams. */
export function upstreamBody(r: RelayRequest, upstreamModel: string): Record<string, unknown> {
  const body: Record<string, unknown> = { ...r.body, model: upstreamModel };
  if (r.stream)
    body.stream_options = { ...((r.body.stream_options as object | undefined) ?? {}), include_usage: true };
  // Admission assumed this cap; the upstream must keep to it, or the answer could cost more than was held.
  if (r.impliedOutputCap !== null) body.max_completion_tokens = r.impliedOutputCap;
  return body;
}

/** Usage from an OpenAI-format response or usage chunk; null when absent. */
export function readUsage(json: unknown): Usage | null {
  if (!json || typeof json !== 'object') return null;
  const u = (json as { usage?: unknown }).usage;
  if (!u || typeof u !== 'object') return null;
  const usage = u as {
    prompt_tokens?: unknown;
    completion_tokens?: unknown;
    prompt_tokens_details?: { cached_tokens?: unknown } | null;
  };
  const int = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0);
  return {
    promptTokens: int(usage.prompt_tokens),
    completionTokens: int(usage.completion_tokens),
    cachedTokens: int(usage.prompt_tokens_details?.cached_tokens),
  };
}

/** Generated text in a response or stream chunk (for local estimation). */
export function generatedText(json: unknown): string {
  if (!json || typeof json !== 'object') return '';
  const choices = (json as { choices?: unknown }).choices;
  if (!Array.isArray(choices)) return '';
  let out = '';
  for (const c of choices) {
    if (!c || typeof c !== 'object') continue;
    const ch = c as { text?: unknown; delta?: { content?: unknown }; message?: { content?: unknown } };
    if (typeof ch.text === 'string') out += ch.text;
    if (typeof ch.delta?.content === 'string') out += ch.delta.content;
    if (typeof ch.message?.content === 'string') out += ch.message.content;
  }
  return out;
}
