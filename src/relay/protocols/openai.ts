// OpenAI's chat completions, legacy completions and embeddings (contract §4): the relay's
// first protocol. As ingress it validates and counts the client's body; as egress it reads
// an OpenAI-compatible upstream's answers and streams, and builds chat requests from the
// canonical form when another protocol's client reaches an OpenAI channel.
import type { IncomingHttpHeaders } from 'node:http';
import { ERROR_CATALOGUE, type ErrorCode } from '../../http/errors.js';
import {
  type CanonicalAnswer,
  type CanonicalRequest,
  type CanonicalUsage,
  type Message,
  type PassThroughCheck,
  type ResponseFormat,
  type SseFrame,
  type Part,
  type StopReason,
  type StreamDecoder,
  type StreamEncoder,
  type StreamEvent,
  StreamBroken,
  type Tool,
  type ToolCall,
  type ToolChoice,
} from '../canonical.js';
import { sseFrame } from '../sse.js';
import {
  askedTier,
  DecodeState,
  decoder,
  fittedCallId,
  parseDataUrl,
  statedTierName,
  tierOf,
} from './common.js';
import { DeltaShape } from './delta-shape.js';
import {
  decodeOpenAIEmbed,
  encodeOpenAIEmbed,
  openaiEmbedFromCanonical,
  openaiEmbedToCanonical,
} from './embeddings.js';
import { FrameShape } from './frame-shape.js';
import { KeptText } from './pass-through.js';
import { countInputs, definitionsOf, type PromptCount, promptCount, schemaOf } from '../tokens.js';
import type { IngressRequest, ProtocolCodec, RouteInfo } from './types.js';
import {
  appendMember,
  asSent,
  bad,
  checkModelName,
  isObject,
  type Json,
  parseObject,
  settingsOf,
  positiveInt,
} from './json.js';
import { ascii, JSON_ERROR, JSON_OBJECT, JSON_USAGE, scanJson } from './json-scan.js';

/** OpenAI's longest tool call id in a chat history (longer: 400 "string too long"). */
const CHAT_CALL_ID_MAX = 40;

/** Parses a relay request body: a JSON object, or a clear 400. */
export function parseRelayBody(raw: Buffer | undefined): Json {
  if (!raw || raw.length === 0) throw bad('request body is empty; send a JSON object');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw bad('request body is not valid JSON');
  }
  if (!isObject(parsed)) throw bad('request body must be a JSON object');
  return parsed;
}

/** An optional finite number field (temperature, top_p). */
export function optionalNumber(body: Json, name: string): number | null {
  const v = body[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`"${name}" must be a number`, name);
  return v;
}

/**
 * How many prompts a legacy completions `prompt` holds: a string or one array of token ids is
 * one; an array of strings or of token arrays is one per element.
 */
function promptsIn(prompt: string | unknown[]): number {
  if (typeof prompt === 'string' || prompt.every((x) => typeof x === 'number')) return 1;
  return prompt.length;
}

function parseRequest(body: Json, route: RouteInfo, defaultMaxOutput: number): IngressRequest {
  const operation = route.operation;
  const model = checkModelName(body.model);
  if (body.stream !== undefined && typeof body.stream !== 'boolean' && body.stream !== null)
    throw bad('"stream" must be a boolean', 'stream');
  // Embeddings never stream: a stray `stream: true` must not make the relay expect SSE from an
  // upstream that answers JSON (that would count as a channel failure and cool channels down).
  const stream = operation !== 'embeddings' && body.stream === true;
  const so = body.stream_options;
  const clientWantsUsage = stream && isObject(so) && so.include_usage === true;
  let prompt: PromptCount;
  let maxOutputTokens = 0;
  let impliedOutputCap: number | null = null;
  if (operation === 'generate') {
    if (!Array.isArray(body.messages) || body.messages.length === 0)
      throw bad('"messages" must be a non-empty array', 'messages');
    prompt = promptCount(
      body.messages,
      definitionsOf(body.tools ?? body.functions, schemaOf(body.response_format)),
    );
    const own = positiveInt(body, 'max_completion_tokens') ?? positiveInt(body, 'max_tokens');
    if (own === undefined) impliedOutputCap = defaultMaxOutput;
    maxOutputTokens = (own ?? defaultMaxOutput) * (positiveInt(body, 'n') ?? 1);
  } else if (operation === 'completions') {
    const p = body.prompt;
    if (typeof p !== 'string' && !Array.isArray(p))
      throw bad('"prompt" must be a string or an array', 'prompt');
    prompt = { promptTokens: countInputs(p) };
    // OpenAI's documented default for completions is 16. Each prompt is answered n times, and
    // best_of candidates are generated (and billed) though only n come back.
    const perPrompt = Math.max(positiveInt(body, 'n') ?? 1, positiveInt(body, 'best_of') ?? 1);
    maxOutputTokens = (positiveInt(body, 'max_tokens') ?? 16) * perPrompt * promptsIn(p);
  } else {
    const input = body.input;
    if (typeof input !== 'string' && !Array.isArray(input))
      throw bad('"input" must be a string or an array', 'input');
    if (Array.isArray(input) && input.length === 0) throw bad('"input" must not be empty', 'input');
    const format = body.encoding_format;
    if (format !== undefined && format !== null && format !== 'float' && format !== 'base64')
      throw bad('"encoding_format" must be "float" or "base64"', 'encoding_format');
    prompt = { promptTokens: countInputs(input) };
  }
  return {
    protocol: 'openai',
    operation,
    model,
    stream,
    clientWantsUsage,
    maxOutputTokens,
    impliedOutputCap,
    ...prompt,
    ...askedTier(body),
    // A search model's web search: one search call an answer, billed as one, and held for.
    ...(operation === 'generate' && isObject(body.web_search_options)
      ? { searchesPerAnswer: 1, maxWebSearches: 1 }
      : {}),
    body,
  };
}

// ── chat messages ⇄ canonical ──────────────────────────────────────────────────────────────

function partsOf(content: unknown, param: string): Part[] {
  if (content === undefined || content === null) return [];
  if (typeof content === 'string') return content ? [{ type: 'text', text: content }] : [];
  if (!Array.isArray(content)) throw bad(`"${param}" must be a string or an array of parts`, param);
  const parts: Part[] = [];
  for (const p of content) {
    if (!isObject(p)) throw bad(`"${param}" parts must be objects`, param);
    if ((p.type === 'text' || p.type === 'input_text' || p.type === 'refusal') && typeof p.text === 'string')
      parts.push({ type: 'text', text: p.text });
    else if (p.type === 'refusal' && typeof p.refusal === 'string')
      parts.push({ type: 'text', text: p.refusal });
    else if (p.type === 'image_url') {
      const iu = p.image_url;
      const url = typeof iu === 'string' ? iu : isObject(iu) && typeof iu.url === 'string' ? iu.url : null;
      if (!url) throw bad(`"${param}" image_url parts need a url`, param);
      const detail = isObject(iu) ? iu.detail : undefined;
      parts.push({
        type: 'image',
        url,
        ...(detail === 'low' || detail === 'high' || detail === 'auto' ? { detail } : {}),
      });
    } else if (p.type === 'file' && isObject(p.file) && typeof p.file.file_data === 'string') {
      const d = parseDataUrl(p.file.file_data);
      if (!d) throw bad(`"${param}" file parts need file_data as a data: URL`, param);
      const name = typeof p.file.filename === 'string' ? { name: p.file.filename } : {};
      parts.push({ type: 'file', mediaType: d.mediaType, url: p.file.file_data, ...name });
    } else if (p.type === 'file' && isObject(p.file) && p.file.file_id !== undefined)
      throw bad(
        `"${param}": a file by file_id lives in OpenAI's file store and cannot reach this model's channel; send file_data`,
        param,
      );
    else if (p.type === 'file') throw bad(`"${param}" file parts need file_data (a data: URL)`, param);
    else throw bad(`"${param}" has a part of type "${String(p.type)}" that cannot be translated`, param);
  }
  return parts;
}

/** A document as a chat `file` part: OpenAI takes PDFs, as data. */
function chatFile(p: Extract<Part, { type: 'file' }>): Json {
  if (p.mediaType !== 'application/pdf' || !parseDataUrl(p.url))
    throw bad(
      `a document of type ${p.mediaType.slice(0, 100)}${parseDataUrl(p.url) ? '' : ' by URL'} cannot be sent to this model's channel (OpenAI's chat takes PDFs as data)`,
      'messages',
    );
  return { type: 'file', file: { filename: p.name ?? 'document.pdf', file_data: p.url } };
}

/** What introduces the images of tool results, sent after them as a user message. */
const TOOL_IMAGES = 'The images the tool results above returned:';
/** …and when documents are among them. */
const TOOL_FILES = 'The images and documents the tool results above returned:';

const textOnly = (parts: Part[]) =>
  parts.map((p) => (p.type === 'text' ? p.text : '')).join(parts.length > 1 ? '\n' : '');

function toolCallsOf(m: Json, param: string): ToolCall[] {
  const out: ToolCall[] = [];
  if (Array.isArray(m.tool_calls)) {
    for (const tc of m.tool_calls) {
      const fn = isObject(tc) ? tc.function : null;
      if (!isObject(tc) || !isObject(fn) || typeof fn.name !== 'string')
        throw bad(`"${param}.tool_calls" entries need a function name`, param);
      out.push({
        id: typeof tc.id === 'string' ? tc.id : `call_${out.length}`,
        name: fn.name,
        arguments: typeof fn.arguments === 'string' ? fn.arguments : JSON.stringify(fn.arguments ?? {}),
      });
    }
  } else if (isObject(m.function_call) && typeof m.function_call.name === 'string') {
    const fc = m.function_call;
    out.push({
      id: `call_${fc.name}`,
      name: fc.name as string,
      arguments: typeof fc.arguments === 'string' ? fc.arguments : '{}',
    });
  }
  return out;
}

function toCanonical(r: IngressRequest): CanonicalRequest {
  const b = r.body;
  if (r.operation === 'embeddings') return openaiEmbedToCanonical(r);
  if (r.operation !== 'generate')
    throw bad(`${r.operation} requests can only be served by an OpenAI-compatible channel`);
  const system: string[] = [];
  const messages: Message[] = [];
  (b.messages as unknown[]).forEach((raw, i) => {
    const param = `messages[${i}]`;
    if (!isObject(raw)) throw bad(`"${param}" must be an object`, param);
    const content = partsOf(raw.content, `${param}.content`);
    switch (raw.role) {
      case 'system':
      case 'developer':
        system.push(textOnly(content));
        break;
      case 'user':
        messages.push({ role: 'user', content });
        break;
      case 'assistant':
        messages.push({ role: 'assistant', content, toolCalls: toolCallsOf(raw, param) });
        break;
      case 'tool':
        if (typeof raw.tool_call_id !== 'string') throw bad(`"${param}.tool_call_id" is required`, param);
        messages.push({ role: 'tool', toolCallId: raw.tool_call_id, content });
        break;
      case 'function':
        messages.push({
          role: 'tool',
          toolCallId: `call_${String(raw.name)}`,
          name: String(raw.name),
          content,
        });
        break;
      default:
        throw bad(`"${param}.role" must be system, developer, user, assistant or tool`, param);
    }
  });
  const tools: Tool[] = [];
  const rawTools = Array.isArray(b.tools) ? b.tools : Array.isArray(b.functions) ? b.functions : [];
  rawTools.forEach((t, i) => {
    const fn = isObject(t) && isObject(t.function) ? t.function : t;
    if (!isObject(fn) || typeof fn.name !== 'string')
      throw bad(`"tools[${i}]" needs a function name`, 'tools');
    tools.push({
      name: fn.name,
      ...(fn.strict === true ? { strict: true } : {}),
      ...(typeof fn.description === 'string' ? { description: fn.description } : {}),
      parameters: isObject(fn.parameters) ? fn.parameters : { type: 'object', properties: {} },
    });
  });
  let toolChoice: ToolChoice | null = null;
  const tc = b.tool_choice ?? b.function_call;
  if (tc === 'auto' || tc === 'none' || tc === 'required') toolChoice = tc;
  else if (isObject(tc)) {
    const name = isObject(tc.function) ? tc.function.name : tc.name;
    if (typeof name === 'string') toolChoice = { name };
  }
  const stop = typeof b.stop === 'string' ? [b.stop] : Array.isArray(b.stop) ? b.stop.map(String) : [];
  return {
    system,
    messages,
    tools,
    toolChoice,
    maxOutputTokens: positiveInt(b, 'max_completion_tokens') ?? positiveInt(b, 'max_tokens') ?? null,
    temperature: optionalNumber(b, 'temperature'),
    topP: optionalNumber(b, 'top_p'),
    stop,
    stream: r.stream,
    responseFormat: responseFormatOf(b.response_format),
    parallelToolCalls: typeof b.parallel_tool_calls === 'boolean' ? b.parallel_tool_calls : null,
    settings: settingsOf({
      seed: b.seed,
      presencePenalty: b.presence_penalty,
      frequencyPenalty: b.frequency_penalty,
      user: b.safety_identifier ?? b.user,
      promptCacheKey: b.prompt_cache_key,
    }),
  };
}

/** `response_format` as the canonical response format (`text` or anything else: none). */
function responseFormatOf(v: unknown): ResponseFormat | null {
  if (!isObject(v)) return null;
  if (v.type === 'json_object') return { type: 'json_object' };
  if (v.type !== 'json_schema' || !isObject(v.json_schema)) return null;
  const js = v.json_schema;
  if (!isObject(js.schema)) return { type: 'json_object' };
  return {
    type: 'json_schema',
    name: typeof js.name === 'string' ? js.name : 'response',
    schema: js.schema,
    strict: js.strict === true,
  };
}

function fromCanonical(c: CanonicalRequest, upstreamModel: string, outputCap: number): Json {
  if (c.embed) return openaiEmbedFromCanonical(c.embed, upstreamModel);
  const messages: Json[] = [];
  if (c.system.length) messages.push({ role: 'system', content: c.system.join('\n\n') });
  const content = (parts: Part[]) =>
    parts.every((p) => p.type === 'text')
      ? textOnly(parts)
      : parts.map((p) =>
          p.type === 'text'
            ? { type: 'text', text: p.text }
            : p.type === 'image'
              ? { type: 'image_url', image_url: { url: p.url, ...(p.detail ? { detail: p.detail } : {}) } }
              : chatFile(p),
        );
  // A tool message takes text only: the images of a run of tool results follow it as a user
  // message (all of a turn's tool messages must come first, right after the calls).
  let toolImages: Part[] = [];
  const flushToolImages = () => {
    if (toolImages.length === 0) return;
    const intro = toolImages.some((p) => p.type === 'file') ? TOOL_FILES : TOOL_IMAGES;
    messages.push({ role: 'user', content: content([{ type: 'text', text: intro }, ...toolImages]) });
    toolImages = [];
  };
  for (const m of c.messages) {
    if (m.role !== 'tool') flushToolImages();
    if (m.role === 'user') messages.push({ role: 'user', content: content(m.content) });
    else if (m.role === 'assistant') {
      const text = textOnly(m.content);
      messages.push({
        role: 'assistant',
        content: text || (m.toolCalls.length ? null : ''),
        ...(m.toolCalls.length
          ? {
              tool_calls: m.toolCalls.map((t) => ({
                id: fittedCallId(t.id, CHAT_CALL_ID_MAX),
                type: 'function',
                function: { name: t.name, arguments: t.arguments },
              })),
            }
          : {}),
      });
    } else {
      const text = m.content.filter((p) => p.type === 'text');
      toolImages.push(...m.content.filter((p) => p.type !== 'text'));
      messages.push({
        role: 'tool',
        tool_call_id: fittedCallId(m.toolCallId, CHAT_CALL_ID_MAX),
        content: textOnly(text),
      });
    }
  }
  flushToolImages();
  const body: Json = { model: upstreamModel, messages, max_completion_tokens: outputCap };
  if (c.tools.length)
    body.tools = c.tools.map((t) => ({
      type: 'function',
      function: {
        name: t.name,
        ...(t.description !== undefined ? { description: t.description } : {}),
        parameters: t.parameters,
        ...(t.strict ? { strict: true } : {}),
      },
    }));
  // Allowed only beside tools.
  if (c.tools.length && c.parallelToolCalls === false) body.parallel_tool_calls = false;
  if (c.toolChoice)
    body.tool_choice =
      typeof c.toolChoice === 'string'
        ? c.toolChoice
        : { type: 'function', function: { name: c.toolChoice.name } };
  if (c.temperature !== null) body.temperature = c.temperature;
  if (c.topP !== null) body.top_p = c.topP;
  if (c.stop.length) body.stop = c.stop;
  const st = c.settings ?? {};
  if (st.seed !== undefined) body.seed = st.seed;
  if (st.presencePenalty !== undefined) body.presence_penalty = st.presencePenalty;
  if (st.frequencyPenalty !== undefined) body.frequency_penalty = st.frequencyPenalty;
  if (st.user !== undefined) body.user = st.user;
  if (st.promptCacheKey !== undefined) body.prompt_cache_key = st.promptCacheKey;
  const rf = c.responseFormat;
  if (rf)
    body.response_format =
      rf.type === 'json_object'
        ? { type: 'json_object' }
        : { type: 'json_schema', json_schema: { name: rf.name, schema: rf.schema, strict: rf.strict } };
  if (c.stream) {
    body.stream = true;
    body.stream_options = { include_usage: true };
  }
  return body;
}

/** Whether a chat history holds a tool call id longer than OpenAI takes (a Gemini channel's, signed). */
function longCallIds(messages: unknown): boolean {
  if (!Array.isArray(messages)) return false;
  for (const m of messages) {
    if (!isObject(m)) continue;
    if (typeof m.tool_call_id === 'string' && m.tool_call_id.length > CHAT_CALL_ID_MAX) return true;
    if (Array.isArray(m.tool_calls))
      for (const t of m.tool_calls)
        if (isObject(t) && typeof t.id === 'string' && t.id.length > CHAT_CALL_ID_MAX) return true;
  }
  return false;
}

/** A chat history with its tool call ids fitted to OpenAI's limit (each call and its result alike). */
function withFittedCallIds(messages: unknown[]): unknown[] {
  return messages.map((m) => {
    if (!isObject(m)) return m;
    const out: Json = { ...m };
    if (typeof m.tool_call_id === 'string') out.tool_call_id = fittedCallId(m.tool_call_id, CHAT_CALL_ID_MAX);
    if (Array.isArray(m.tool_calls))
      out.tool_calls = m.tool_calls.map((t) =>
        isObject(t) && typeof t.id === 'string' ? { ...t, id: fittedCallId(t.id, CHAT_CALL_ID_MAX) } : t,
      );
    return out;
  });
}

/**
 * The body sent upstream: the provider's model name, usage always requested on streams, and
 * tool call ids within OpenAI's limit (a conversation that began on a Gemini channel).
 */
function passThroughBody(r: IngressRequest, upstreamModel: string): Json {
  const body: Json = { ...r.body, model: upstreamModel };
  if (longCallIds(r.body.messages)) body.messages = withFittedCallIds(r.body.messages as unknown[]);
  if (r.stream)
    body.stream_options = {
      ...(isObject(r.body.stream_options) ? r.body.stream_options : {}),
      include_usage: true,
    };
  // Admission assumed this cap; the upstream must keep to it, or the answer could cost more than was held.
  if (r.impliedOutputCap !== null) body.max_completion_tokens = r.impliedOutputCap;
  return body;
}

/**
 * `passThroughBody` as bytes without serialising again: the client's own when nothing changes
 * (same model name, its own output cap, no stream or one that already asks for usage), or with
 * what changes appended as members: `stream_options` when a stream has none, and the implied
 * `max_completion_tokens`. Null otherwise: a mapped model, a member that would be replaced in
 * place (`stream_options` without usage, `max_completion_tokens: null`), call ids to fit, or a repeated top-level
 * key (an upstream might read another of its values than the one checked).
 */
function passThroughBytes(r: IngressRequest, upstreamModel: string): Buffer | null {
  if (upstreamModel !== r.model || longCallIds(r.body.messages)) return null;
  const so = r.body.stream_options;
  const addUsage = r.stream && so === undefined;
  if (r.stream && !addUsage && !(isObject(so) && so.include_usage === true)) return null;
  const cap = r.impliedOutputCap;
  if (cap !== null && 'max_completion_tokens' in r.body) return null;
  const raw = asSent(r.raw, r.body);
  let added = addUsage ? '"stream_options":{"include_usage":true}' : '';
  if (cap !== null) added += `${added && ','}"max_completion_tokens":${cap}`;
  return raw && added ? appendMember(raw, added) : raw;
}

// ── answers ⇄ canonical ────────────────────────────────────────────────────────────────────

const count = (v: unknown): number | null =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER
    ? Math.floor(v)
    : null;

/**
 * Usage from an OpenAI-format answer or chunk; null when absent or unreadable (the relay then
 * counts locally rather than bill a garbled number as zero).
 */
export function readUsage(json: unknown): CanonicalUsage | null {
  if (!isObject(json) || !isObject(json.usage)) return null;
  const u = json.usage;
  const prompt = count(u.prompt_tokens);
  const completion = u.completion_tokens === undefined ? 0 : count(u.completion_tokens);
  if (prompt === null || completion === null) return null;
  const details = isObject(u.prompt_tokens_details) ? u.prompt_tokens_details : {};
  const outDetails = isObject(u.completion_tokens_details) ? u.completion_tokens_details : {};
  const cached = Math.min(count(details.cached_tokens) ?? 0, prompt);
  const usage: CanonicalUsage = {
    input: prompt - cached,
    cacheRead: cached,
    cacheWrite: 0,
    output: completion,
    reasoning: Math.min(count(outDetails.reasoning_tokens) ?? 0, completion),
  };
  // Set, not spread: this runs for every answer, and an object spread costs a microsecond.
  const tier = statedTierName(json.service_tier);
  if (tier !== undefined) usage.serviceTier = tier;
  return usage;
}

const SERVICE_TIER = ascii('"service_tier"');

/**
 * The tier an answer's bytes say it was served at: the top-level `"service_tier"` member's
 * string (a key inside a string value would have its quotes escaped). Read without parsing the
 * answer, as its usage is.
 */
function statedTier(body: Buffer): string | undefined {
  // From the end: OpenAI writes the member after the choices (0.12 against 0.3 µs a search).
  let i = body.lastIndexOf(SERVICE_TIER);
  if (i < 0) return undefined;
  i += SERVICE_TIER.length;
  while (
    i < body.length &&
    (body[i] === 0x20 || body[i] === 0x0a || body[i] === 0x0d || body[i] === 0x09 || body[i] === 0x3a)
  )
    i++;
  if (body[i] !== 0x22) return undefined;
  // The closing quote is the first one no backslash escapes.
  let end = body.indexOf(0x22, i + 1);
  for (; end >= 0; end = body.indexOf(0x22, end + 1)) {
    let slashes = 0;
    while (body[end - 1 - slashes] === 0x5c) slashes++;
    if (slashes % 2 === 0) break;
  }
  if (end < 0) return undefined;
  // Escapes (`\u0070riority`) read as JSON reads them.
  const slash = body.indexOf(0x5c, i + 1);
  if (slash < 0 || slash > end) return statedTierName(body.toString('utf8', i + 1, end));
  try {
    return statedTierName(JSON.parse(body.toString('utf8', i, end + 1)));
  } catch {
    return undefined;
  }
}

const STOP_REASONS: Record<string, StopReason> = {
  stop: 'stop',
  length: 'length',
  tool_calls: 'tool_calls',
  function_call: 'tool_calls',
  content_filter: 'content_filter',
};
const stopOf = (v: unknown): StopReason => (typeof v === 'string' && STOP_REASONS[v]) || 'stop';

function messageText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content.map((p) => (isObject(p) && typeof p.text === 'string' ? p.text : '')).join('');
  return '';
}

function answerError(json: unknown): string | null {
  if (!isObject(json) || json.error === undefined || json.error === null) return null;
  // A real answer may carry an empty error field next to its choices or data.
  if (Array.isArray(json.choices) || Array.isArray(json.data)) return null;
  const e = json.error;
  if (typeof e === 'string') return e.slice(0, 500);
  if (isObject(e) && typeof e.message === 'string') return e.message.slice(0, 500);
  return 'upstream answered with an error';
}

/** Where scanJson found the usage value (reused: a plain answer is read synchronously). */
const usageAt = new Int32Array(2);

/**
 * An answer's usage from its bytes: scanned whole for validity, then only the usage value
 * parsed (JSON.parse of the whole answer builds every choice just to drop it). An answer with
 * an error member, or none of the usage, is left to answerError and decodeAnswer.
 */
function passThroughUsage(body: Buffer): CanonicalUsage | null {
  const flags = scanJson(body, 0, body.length, usageAt);
  if ((flags & (JSON_OBJECT | JSON_ERROR | JSON_USAGE)) !== (JSON_OBJECT | JSON_USAGE)) return null;
  const usage = readUsage({ usage: JSON.parse(body.toString('utf8', usageAt[0], usageAt[1])) });
  if (usage) {
    const tier = statedTier(body);
    if (tier !== undefined) usage.serviceTier = tier;
  }
  return usage;
}

function decodeAnswer(json: unknown): CanonicalAnswer {
  if (!isObject(json)) throw new StreamBroken('upstream answer is not a JSON object');
  const embedded = decodeOpenAIEmbed(json, readUsage(json));
  if (embedded) return embedded;
  const choices = Array.isArray(json.choices) ? json.choices.filter(isObject) : [];
  let text = '';
  let reasoning = '';
  const toolCalls: ToolCall[] = [];
  for (const c of choices) {
    if (typeof c.text === 'string') text += c.text;
    const m = isObject(c.message) ? c.message : null;
    if (m) {
      text += messageText(m.content);
      if (typeof m.reasoning_content === 'string') reasoning += m.reasoning_content;
      if (c === choices[0]) toolCalls.push(...toolCallsOf(m, 'choices[0].message'));
    }
  }
  return {
    id: typeof json.id === 'string' ? json.id : '',
    model: typeof json.model === 'string' ? json.model : '',
    text,
    reasoning,
    toolCalls,
    stopReason: stopOf(choices[0]?.finish_reason),
    usage: readUsage(json),
    ...tierOf(json.service_tier),
  };
}

/** OpenAI `usage`: prompt_tokens is all input, cached_tokens inside it. */
export function usageJson(u: CanonicalUsage): Json {
  const prompt = u.input + u.cacheRead + u.cacheWrite;
  return {
    prompt_tokens: prompt,
    completion_tokens: u.output,
    total_tokens: prompt + u.output,
    prompt_tokens_details: { cached_tokens: u.cacheRead },
    completion_tokens_details: { reasoning_tokens: u.reasoning },
  };
}

const FINISH: Record<StopReason, string> = {
  stop: 'stop',
  length: 'length',
  tool_calls: 'tool_calls',
  content_filter: 'content_filter',
};

const chatId = (id: string) =>
  id.startsWith('chatcmpl-') ? id : `chatcmpl-${id || Date.now().toString(36)}`;

function encodeAnswer(a: CanonicalAnswer, r: IngressRequest): Json {
  if (r.operation === 'embeddings') return encodeOpenAIEmbed(a, r);
  const message: Json = {
    role: 'assistant',
    content: a.text || (a.toolCalls.length ? null : ''),
    refusal: null,
  };
  if (a.toolCalls.length)
    message.tool_calls = a.toolCalls.map((t) => ({
      id: t.id,
      type: 'function',
      function: { name: t.name, arguments: t.arguments },
    }));
  return {
    id: chatId(a.id),
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: a.model || r.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: FINISH[a.stopReason] }],
    ...(a.usage ? { usage: usageJson(a.usage) } : {}),
  };
}

function streamEncoder(r: IngressRequest, requestId: string): StreamEncoder {
  let id = chatId(requestId);
  let model = r.model;
  const created = Math.floor(Date.now() / 1000);
  let started = false;
  const chunk = (choices: unknown[], extra: Json = {}) =>
    sseFrame(JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices, ...extra }));
  const delta = (d: Json, finish: string | null = null) =>
    chunk([{ index: 0, delta: d, logprobs: null, finish_reason: finish }]);
  const start = () => {
    if (started) return '';
    started = true;
    return delta({ role: 'assistant', content: '' });
  };
  return {
    event(e: StreamEvent): string {
      switch (e.type) {
        case 'start':
          if (!started) {
            id = chatId(e.id || requestId);
            model = e.model || model;
          }
          return start();
        case 'text':
          return e.text ? start() + delta({ content: e.text }) : '';
        case 'reasoning':
          return '';
        case 'tool_call':
          return (
            start() +
            delta({
              tool_calls: [
                { index: e.index, id: e.id, type: 'function', function: { name: e.name, arguments: '' } },
              ],
            })
          );
        case 'tool_args':
          return start() + delta({ tool_calls: [{ index: e.index, function: { arguments: e.delta } }] });
        case 'stop':
          return start() + delta({}, FINISH[e.reason]);
        case 'usage':
          return '';
      }
    },
    finish(usage: CanonicalUsage): string {
      return (
        start() + (r.clientWantsUsage ? chunk([], { usage: usageJson(usage) }) : '') + 'data: [DONE]\n\n'
      );
    },
    error(code: string, message: string, status = 502): string {
      return sseFrame(JSON.stringify(errorJson(status, code, message)));
    },
  };
}

/** A stream frame's data as a chunk object; null for `[DONE]`. Throws StreamBroken for a bad or error frame. */
function chunkOf(data: string): Json | null {
  const text = data.trim();
  if (text === '[DONE]') return null;
  const obj = parseObject(text);
  if (obj === undefined) throw new StreamBroken('upstream sent an unreadable stream event');
  if (obj.error !== undefined && obj.error !== null)
    throw new StreamBroken('upstream reported an error mid-stream');
  return obj;
}

/** The usage-only chunk reaches the client only if it asked for it. */
const hidden = (r: IngressRequest, usage: CanonicalUsage | null, choices: unknown[]) =>
  usage !== null && choices.length === 0 && !r.clientWantsUsage;

/** Where a chunk's only text is: the delta's content of its one choice. */
const deltaContent = (obj: unknown): unknown =>
  isObject(obj) && Array.isArray(obj.choices) && isObject(obj.choices[0]) && isObject(obj.choices[0].delta)
    ? obj.choices[0].delta.content
    : undefined;

/**
 * Whether a chunk decoded whole gave nothing but its delta's content: no usage, one choice,
 * no other text, reasoning, tool call or finish. Another chunk of its shape (DeltaShape) then
 * gives just its own content.
 */
function onlyContent(u: CanonicalUsage | null, choices: unknown[]): boolean {
  if (u !== null || choices.length !== 1) return false;
  const c = choices[0];
  if (!isObject(c) || (typeof c.text === 'string' && c.text) || typeof c.finish_reason === 'string')
    return false;
  const d = c.delta;
  if (!isObject(d) || typeof d.content !== 'string') return false;
  const reasoning = d.reasoning_content ?? d.reasoning;
  return (
    !(typeof reasoning === 'string' && reasoning) && !(Array.isArray(d.tool_calls) && d.tool_calls.length)
  );
}

/** `shapes`: read a chunk shaped like the last text-only one from its text alone (DeltaShape). */
export function streamDecoder(r: IngressRequest, shapes = true): StreamDecoder {
  const state = new DecodeState();
  let started = false;
  const seenTools = new Set<number>();
  // api.openai.com pads each delta chunk with a random `obfuscation` member, last.
  const shape = shapes ? new DeltaShape('obfuscation') : null;
  return decoder(state, (frame) => {
    // The first chunk (a role, mostly) is not learnt from: its shape seldom comes again.
    const learning = shape !== null && started;
    if (learning) {
      const text = shape.textOf(frame.data);
      if (text !== undefined) return { events: text ? [{ type: 'text', text }] : [], hide: false };
    }
    const obj = chunkOf(frame.data);
    if (obj === null) {
      state.done = true;
      return { events: [] };
    }
    const events: StreamEvent[] = [];
    if (!started) {
      started = true;
      events.push({
        type: 'start',
        id: typeof obj.id === 'string' ? obj.id : '',
        model: typeof obj.model === 'string' ? obj.model : '',
      });
    }
    const u = readUsage(obj);
    state.report(events, u);
    // Every chunk says the tier it is served at: what a stream cut before its usage bills at.
    if (typeof obj.service_tier === 'string') state.serviceTier = statedTierName(obj.service_tier);
    const choices = Array.isArray(obj.choices) ? obj.choices : [];
    for (const c of choices) {
      if (!isObject(c)) continue;
      if (typeof c.text === 'string' && c.text) events.push({ type: 'text', text: c.text });
      const d = isObject(c.delta) ? c.delta : null;
      if (d) {
        const reasoning = d.reasoning_content ?? d.reasoning;
        if (typeof reasoning === 'string' && reasoning) events.push({ type: 'reasoning', text: reasoning });
        if (typeof d.content === 'string' && d.content) events.push({ type: 'text', text: d.content });
        if (Array.isArray(d.tool_calls) && (c.index ?? 0) === 0) {
          for (const tc of d.tool_calls) {
            if (!isObject(tc)) continue;
            const index = typeof tc.index === 'number' ? tc.index : 0;
            const fn = isObject(tc.function) ? tc.function : {};
            if (!seenTools.has(index)) {
              seenTools.add(index);
              events.push({
                type: 'tool_call',
                index,
                id: typeof tc.id === 'string' ? tc.id : `call_${index}`,
                name: typeof fn.name === 'string' ? fn.name : '',
              });
            }
            if (typeof fn.arguments === 'string' && fn.arguments)
              events.push({ type: 'tool_args', index, delta: fn.arguments });
          }
        }
      }
      if (typeof c.finish_reason === 'string' && (c.index ?? 0) === 0)
        events.push({ type: 'stop', reason: stopOf(c.finish_reason) });
    }
    if (learning && onlyContent(u, choices)) shape.learn(frame.data, 'content', deltaContent);
    return { events, hide: hidden(r, u, choices) };
  });
}

/**
 * The pass-through check. A one-line frame's bytes are only scanned (scanJson, or its answer
 * for a frame of the last text chunk's shape: FrameShape) and where they are is kept: a JSON
 * object without an error or a usage needs nothing more. Any other frame ([DONE], a usage, an
 * error, garbage, odd whitespace, several lines) is decoded and read by chunkOf, as `feed`
 * reads it. The kept frames' text is read when `produced` is (KeptText).
 * A class, not closures: frames kept in a closure's context were seen to survive young
 * collections long after their stream ended.
 */
class PassThroughStream implements PassThroughCheck {
  done = false;
  usage: CanonicalUsage | null = null;
  /** The tier the first chunk says the stream is served at (each chunk says it). */
  serviceTier: string | undefined = undefined;
  private readonly kept: KeptText;
  /** The scan, spared for a chunk shaped like the last text chunk scanned. */
  private readonly shape = new FrameShape('content', 'obfuscation');
  /** Chunks scanned: the first (a role, mostly) is not learnt from, its shape seldom comes again. */
  private scanned = 0;

  constructor(private readonly r: IngressRequest) {
    this.kept = new KeptText(() => streamDecoder(r));
  }

  checkBytes(bytes: Buffer, start: number, end: number): boolean {
    if (this.scanned === 0) this.serviceTier = statedTier(bytes.subarray(start, end));
    if (this.kept.long) return this.checkData(bytes.toString('utf8', start, end));
    const flags = this.shape.scan(bytes, start, end, this.scanned++ > 0);
    if ((flags & (JSON_OBJECT | JSON_ERROR | JSON_USAGE)) !== JSON_OBJECT)
      return this.checkData(bytes.toString('utf8', start, end));
    this.kept.keep(null, bytes, start, end);
    return false;
  }

  check(frame: SseFrame): boolean {
    return this.checkData(frame.data);
  }

  /**
   * Past KEPT_BYTES the kept frames are decoded anyway: scanning them first only added to it
   * (2,000 tokens: 5.9 against 4.9 ms of a decoder alone), so they are decoded as they come.
   */
  private decodeNow(data: string): boolean {
    const hide = this.kept.decodeNow({ event: null, data, raw: '' });
    const d = this.kept.reader;
    // [DONE] is not kept: a done stream stays done.
    this.done ||= d.done;
    this.usage = d.usage ?? this.usage;
    return hide;
  }

  get produced(): string {
    return this.kept.text;
  }

  private checkData(data: string): boolean {
    if (this.kept.long) return this.decodeNow(data);
    const obj = chunkOf(data);
    if (obj === null) {
      this.done = true;
      return false;
    }
    this.kept.keep(null, data, 0, data.length);
    return this.usageOf(obj);
  }

  private usageOf(obj: Json): boolean {
    const u = readUsage(obj);
    if (u) this.usage = u;
    this.serviceTier ??= statedTierName(obj.service_tier);
    return hidden(this.r, u, Array.isArray(obj.choices) ? obj.choices : []);
  }
}

// ── errors ─────────────────────────────────────────────────────────────────────────────────

const TYPE_FOR_STATUS: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'invalid_request_error',
  413: 'invalid_request_error',
  429: 'rate_limit_error',
};

function errorJson(status: number, code: string, message: string, param: string | null = null) {
  const known = (ERROR_CATALOGUE as Record<string, { type: string } | undefined>)[code as ErrorCode];
  const type =
    known?.type ?? TYPE_FOR_STATUS[status] ?? (status >= 500 ? 'upstream_error' : 'invalid_request_error');
  return { error: { message, type, param, code } };
}

export const openaiCodec: ProtocolCodec = {
  protocol: 'openai',
  parseRequest,
  toCanonical,
  encodeAnswer,
  streamEncoder,
  errorBody: (status, code, message, _requestId, param) => errorJson(status, code, message, param ?? null),
  forwardedHeaders(headers: IncomingHttpHeaders): Record<string, string> {
    const v = headers['openai-beta'];
    return typeof v === 'string' ? { 'openai-beta': v } : {};
  },
  passThroughBody,
  passThroughBytes,
  fromCanonical,
  answerError,
  decodeAnswer,
  passThroughUsage,
  passThroughCheck: (r: IngressRequest) => new PassThroughStream(r),
  streamDecoder,
};
