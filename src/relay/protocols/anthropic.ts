// Anthropic Messages (`POST /v1/messages`): the protocol Claude Code and @anthropic-ai/sdk
// speak. As ingress it validates and counts the client's body, and writes canonical answers
// and streams back as Anthropic's JSON and named SSE events (`message_start`,
// `content_block_*`, `message_delta`, `message_stop`); as egress it builds Anthropic bodies
// from canonical requests and reads Anthropic answers and streams (usage: `input_tokens`
// excludes cache reads and writes, which come beside it).
import { ERROR_CATALOGUE, type ErrorCode } from '../../http/errors.js';
import {
  type CanonicalAnswer,
  type CanonicalRequest,
  type CanonicalUsage,
  type Message,
  type Part,
  type StopReason,
  type StreamDecoder,
  type StreamEncoder,
  type StreamEvent,
  StreamBroken,
  type Tool,
  type ToolCall,
  type ToolChoice,
  type ResponseFormat,
} from '../canonical.js';
import { sseFrame } from '../sse.js';
import { DecodeState, decoder, headersNamed, parseDataUrl, searchesHeld, shownSearches } from './common.js';
import { DeltaShape } from './delta-shape.js';
import { FrameShape } from './frame-shape.js';
import { bytesAre, FrameVerdict, ScannedPassThrough } from './pass-through.js';
import { ascii, JSON_OBJECT, JSON_TYPE_ERROR, scanJson } from './json-scan.js';
import {
  base64Bytes,
  definitionsOf,
  exactCount,
  exactCountAhead,
  type PromptCount,
  promptCount,
} from '../tokens.js';
import { exactPromptTokens, type IngressRequest, type ProtocolCodec, type RouteInfo } from './types.js';
import {
  argsObject,
  asSent,
  bad,
  boundedInt,
  type IntProblem,
  isObject,
  type Json,
  MAX_COUNT,
  parseObject,
  settingsOf,
} from './json.js';

// ── validation ─────────────────────────────────────────────────────────────────────────────

function model(body: Json): string {
  const m = body.model;
  if (typeof m !== 'string' || m.length === 0 || m.length > 256)
    throw bad('model: Field required (a non-empty string)', 'model');
  if (/[\u0000-\u001f\u007f]/.test(m)) throw bad('model: must not contain control characters', 'model');
  return m;
}

const ROLES = new Set(['user', 'assistant', 'system']);

/** Checks the shape the rest of the codec relies on (not every field Anthropic validates). */
function checkMessages(body: Json): Json[] {
  const messages = body.messages;
  if (!Array.isArray(messages)) throw bad('messages: Field required (an array of messages)', 'messages');
  if (messages.length === 0) throw bad('messages: at least one message is required', 'messages');
  messages.forEach((m, i) => {
    const at = `messages.${i}`;
    if (!isObject(m)) throw bad(`${at}: Input should be an object`, at);
    if (typeof m.role !== 'string' || !ROLES.has(m.role))
      throw bad(`${at}.role: Input should be 'user' or 'assistant'`, `${at}.role`);
    checkContent(m.content, `${at}.content`);
  });
  return messages as Json[];
}

function checkContent(content: unknown, at: string): void {
  if (typeof content === 'string') return;
  if (!Array.isArray(content)) throw bad(`${at}: Input should be a string or a list of content blocks`, at);
  content.forEach((b, j) => {
    if (!isObject(b) || typeof b.type !== 'string')
      throw bad(`${at}.${j}: Input should be a content block with a "type"`, `${at}.${j}`);
    if (b.type === 'text' && typeof b.text !== 'string')
      throw bad(`${at}.${j}.text: Input should be a valid string`, `${at}.${j}.text`);
    if (b.type === 'image' && !isObject(b.source))
      throw bad(`${at}.${j}.source: Field required`, `${at}.${j}.source`);
    if (b.type === 'tool_use' && (typeof b.id !== 'string' || typeof b.name !== 'string'))
      throw bad(`${at}.${j}: tool_use blocks need string "id" and "name"`, `${at}.${j}`);
    if (b.type === 'tool_result') {
      if (typeof b.tool_use_id !== 'string')
        throw bad(`${at}.${j}.tool_use_id: Field required`, `${at}.${j}.tool_use_id`);
      if (b.content !== undefined && b.content !== null) checkContent(b.content, `${at}.${j}.content`);
    }
  });
}

function checkSystem(system: unknown): void {
  if (system === undefined || system === null || typeof system === 'string') return;
  if (!Array.isArray(system))
    throw bad('system: Input should be a string or a list of text blocks', 'system');
  system.forEach((b, i) => {
    if (!isObject(b) || typeof b.text !== 'string')
      throw bad(`system.${i}: Input should be a text block`, `system.${i}`);
  });
}

function checkTools(tools: unknown): void {
  if (tools === undefined || tools === null) return;
  if (!Array.isArray(tools)) throw bad('tools: Input should be a valid list', 'tools');
  tools.forEach((t, i) => {
    if (!isObject(t)) throw bad(`tools.${i}: Input should be an object`, `tools.${i}`);
    if (t.type !== undefined && typeof t.type !== 'string')
      throw bad(`tools.${i}.type: Input should be a valid string`, `tools.${i}.type`);
    // A custom tool is named; a server or beta tool is known by its type (an mcp_toolset names
    // its MCP server instead) and is Anthropic's to check.
    const custom = t.type === undefined || t.type === 'custom';
    if (custom && (typeof t.name !== 'string' || t.name.length === 0))
      throw bad(`tools.${i}.name: Field required`, `tools.${i}.name`);
    // Custom tools carry input_schema; server tools (web_search, bash, …) carry a versioned type.
    if (t.input_schema !== undefined && !isObject(t.input_schema))
      throw bad(`tools.${i}.input_schema: Input should be an object`, `tools.${i}.input_schema`);
  });
}

function optNumber(body: Json, name: string): number | null {
  const v = body[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw bad(`${name}: Input should be a valid number`, name);
  return v;
}

/** An IntProblem as Anthropic's validator words it. */
const ANTHROPIC_INT_PROBLEMS: Record<IntProblem, string> = {
  integer: 'Input should be a valid integer',
  min: 'Input should be greater than or equal to 1',
  max: `Input should be less than or equal to ${MAX_COUNT}`,
};

function maxTokens(body: Json): number {
  const v = body.max_tokens;
  if (v === undefined || v === null) throw bad('max_tokens: Field required', 'max_tokens');
  return boundedInt(v, 1, (p) => bad(`max_tokens: ${ANTHROPIC_INT_PROBLEMS[p]}`, 'max_tokens'))!;
}

// ── prompt counting ────────────────────────────────────────────────────────────────────────

function blockText(b: Json): string {
  switch (b.type) {
    case 'text':
      return typeof b.text === 'string' ? b.text : '';
    case 'thinking':
      return typeof b.thinking === 'string' ? b.thinking : '';
    case 'tool_use':
    case 'server_tool_use':
      return `${String(b.name ?? '')} ${JSON.stringify(b.input ?? {})}`;
    case 'document': {
      const s = b.source as Json | undefined;
      if (!isObject(s)) return '';
      if (s.type === 'text' && typeof s.data === 'string') return s.data;
      // A `content` source: text blocks (and images, which no text stands for).
      if (s.type === 'content')
        return typeof s.content === 'string'
          ? s.content
          : Array.isArray(s.content)
            ? s.content
                .filter(isObject)
                .map(blockText)
                .filter((t) => t !== '')
                .join('\n')
            : '';
      return '';
    }
    default:
      return '';
  }
}

/** One Anthropic content value as OpenAI-shaped parts, so tokens.ts counts it the same way. */
function countableParts(content: unknown): Json[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  if (!Array.isArray(content)) return [];
  const out: Json[] = [];
  for (const b of content) {
    if (!isObject(b)) continue;
    if (b.type === 'image') out.push({ type: 'image_url' });
    else if (b.type === 'document') {
      const text = blockText(b);
      const s = b.source;
      // A PDF by its size (tokens.ts documentTokens); by URL or file id, the size is unknown.
      const bytes =
        isObject(s) && s.type === 'base64' && typeof s.data === 'string' ? base64Bytes(s.data.length) : null;
      out.push(text ? { type: 'text', text } : { type: 'document', bytes });
    } else if (b.type === 'tool_result') {
      if (b.content !== undefined && b.content !== null) out.push(...countableParts(b.content));
    } else {
      const text = blockText(b);
      if (text) out.push({ type: 'text', text });
    }
  }
  return out;
}

/**
 * Structured output's format, `{type: "json_schema", schema}`: in `output_config.format` (as the
 * API takes it now) or `output_format` (its beta).
 */
function outputSchemaOf(body: Json): { type: 'json_schema'; schema: Json } | undefined {
  const oc = body.output_config;
  const f = isObject(oc) && oc.format !== undefined ? oc.format : body.output_format;
  return isObject(f) && f.type === 'json_schema' && isObject(f.schema)
    ? (f as { type: 'json_schema'; schema: Json })
    : undefined;
}

/** The local prompt count: system, messages, tool uses and results, tool definitions. */
function promptOf(body: Json): PromptCount {
  const msgs: Json[] = [];
  if (body.system !== undefined && body.system !== null)
    msgs.push({ role: 'system', content: countableParts(body.system) });
  for (const m of body.messages as Json[]) msgs.push({ role: m.role, content: countableParts(m.content) });
  const tools = Array.isArray(body.tools) && body.tools.length > 0 ? body.tools : undefined;
  return promptCount(msgs, definitionsOf(tools, outputSchemaOf(body)));
}

/**
 * `POST /v1/messages/count_tokens`: the body's prompt tokens as the relay counts them
 * (answered as `{"input_tokens": N}`). Validates like `/v1/messages` minus `max_tokens`.
 */
export const countMessagesTokens = (body: Record<string, unknown>): number => exactCount(checkedPrompt(body));

/** A count_tokens body's prompt, validated like `/v1/messages` minus `max_tokens`. */
function checkedPrompt(body: Record<string, unknown>): PromptCount {
  model(body);
  checkMessages(body);
  checkSystem(body.system);
  checkTools(body.tools);
  return promptOf(body);
}

// ── ingress: request ───────────────────────────────────────────────────────────────────────

function parseRequest(body: Json, _route: RouteInfo, _defaultMaxOutput: number): IngressRequest {
  const m = model(body);
  checkMessages(body);
  checkSystem(body.system);
  checkTools(body.tools);
  const cap = maxTokens(body); // required by Anthropic, so there is never an implied cap
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean')
    throw bad('stream: Input should be a valid boolean', 'stream');
  optNumber(body, 'temperature');
  optNumber(body, 'top_p');
  optNumber(body, 'top_k');
  const ss = body.stop_sequences;
  if (ss !== undefined && ss !== null && (!Array.isArray(ss) || ss.some((s) => typeof s !== 'string')))
    throw bad('stop_sequences: Input should be a list of strings', 'stop_sequences');
  const tc = body.tool_choice;
  if (tc !== undefined && tc !== null) {
    if (!isObject(tc) || !['auto', 'any', 'tool', 'none'].includes(tc.type as string))
      throw bad("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'", 'tool_choice');
    if (tc.type === 'tool' && typeof tc.name !== 'string')
      throw bad('tool_choice.name: Field required', 'tool_choice.name');
  }
  return {
    protocol: 'anthropic',
    operation: 'generate',
    model: m,
    stream: body.stream === true,
    ...promptOf(body),
    maxOutputTokens: cap,
    cachesForHour: cachesForHour(body),
    maxWebSearches: webSearchesHeld(body.tools),
    impliedOutputCap: null,
    clientWantsUsage: false,
    body,
  };
}

/** What Anthropic's web search tool (`web_search_<version>`) may run: its `max_uses`, else the assumed bound. */
function webSearchesHeld(tools: unknown): number {
  const search = Array.isArray(tools)
    ? (tools as unknown[]).find(
        (t) => isObject(t) && typeof t.type === 'string' && t.type.startsWith('web_search_'),
      )
    : undefined;
  return searchesHeld(search !== undefined, isObject(search) ? search.max_uses : undefined);
}

/** Whether any breakpoint (top level, system, tools, message blocks, nested ones) says `ttl: "1h"`. */
function cachesForHour(body: Json): boolean {
  const hour = (b: unknown) => isObject(b) && isObject(b.cache_control) && b.cache_control.ttl === '1h';
  // Blocks nest: a tool result's content, a document's `source.content` (its text blocks).
  const anyBlock = (blocks: unknown): boolean =>
    Array.isArray(blocks) &&
    blocks.some(
      (b) =>
        hour(b) ||
        (isObject(b) && (anyBlock(b.content) || (isObject(b.source) && anyBlock(b.source.content)))),
    );
  return (
    hour(body) ||
    anyBlock(body.system) ||
    anyBlock(body.tools) ||
    (body.messages as Json[]).some((m) => anyBlock(m.content))
  );
}

function imagePart(b: Json): Part | null {
  const s = b.source;
  if (!isObject(s)) return null;
  if (s.type === 'base64' && typeof s.data === 'string' && typeof s.media_type === 'string')
    return { type: 'image', url: `data:${s.media_type};base64,${s.data}` };
  if (s.type === 'url' && typeof s.url === 'string') return { type: 'image', url: s.url };
  return null;
}

function toParts(content: unknown): Part[] {
  if (typeof content === 'string') return content ? [{ type: 'text', text: content }] : [];
  if (!Array.isArray(content)) return [];
  const out: Part[] = [];
  for (const b of content) {
    if (!isObject(b)) continue;
    if (b.type === 'text' && typeof b.text === 'string') out.push({ type: 'text', text: b.text });
    else if (b.type === 'image') {
      const p = imagePart(b);
      if (p) out.push(p);
    } else if (b.type === 'document') {
      const file = documentPart(b);
      if (file) out.push(file);
      else {
        const text = blockText(b);
        if (text) out.push({ type: 'text', text });
      }
    }
  }
  return out;
}

/** A PDF document block (base64 or by URL) as a file part; text documents are read as text. */
function documentPart(b: Json): Part | null {
  const s = b.source;
  if (!isObject(s)) return null;
  const name = typeof b.title === 'string' && b.title ? { name: b.title } : {};
  if (s.type === 'base64' && typeof s.data === 'string' && typeof s.media_type === 'string')
    return { type: 'file', mediaType: s.media_type, url: `data:${s.media_type};base64,${s.data}`, ...name };
  if (s.type === 'url' && typeof s.url === 'string')
    return { type: 'file', mediaType: 'application/pdf', url: s.url, ...name };
  if (s.type === 'file')
    throw bad(
      "a document by file_id lives in Anthropic's file store and cannot reach this model's channel; send it as base64 or by URL",
      'messages',
    );
  return null;
}

function systemTexts(system: unknown): string[] {
  if (typeof system === 'string') return system ? [system] : [];
  if (!Array.isArray(system)) return [];
  return system
    .filter((b) => isObject(b) && typeof b.text === 'string')
    .map((b) => (b as Json).text as string);
}

function toCanonical(r: IngressRequest): CanonicalRequest {
  const body = r.body;
  const system = systemTexts(body.system);
  const messages: Message[] = [];
  const toolNames = new Map<string, string>();
  for (const m of body.messages as Json[]) {
    if (m.role === 'system') {
      // A mid-conversation system message (newer SDKs allow it): keep it as instructions.
      system.push(...systemTexts(m.content));
      continue;
    }
    if (m.role === 'assistant') {
      const content: Part[] = [];
      const toolCalls: ToolCall[] = [];
      if (typeof m.content === 'string') {
        if (m.content) content.push({ type: 'text', text: m.content });
      } else if (Array.isArray(m.content)) {
        for (const b of m.content as Json[]) {
          if (b.type === 'text' && typeof b.text === 'string' && b.text)
            content.push({ type: 'text', text: b.text });
          else if (b.type === 'tool_use') {
            const id = String(b.id);
            toolNames.set(id, String(b.name));
            toolCalls.push({ id, name: String(b.name), arguments: JSON.stringify(b.input ?? {}) });
          }
          // thinking / redacted_thinking / server tool blocks have no canonical form
        }
      }
      if (content.length > 0 || toolCalls.length > 0)
        messages.push({ role: 'assistant', content, toolCalls });
      continue;
    }
    // user: tool results first (as Anthropic requires them), then the rest as one user turn
    if (Array.isArray(m.content)) {
      const rest: Json[] = [];
      for (const b of m.content as Json[]) {
        if (b.type !== 'tool_result') {
          rest.push(b);
          continue;
        }
        const id = String(b.tool_use_id);
        const name = toolNames.get(id);
        messages.push({
          role: 'tool',
          toolCallId: id,
          ...(name ? { name } : {}),
          content: toParts(b.content),
          ...(b.is_error === true ? { isError: true } : {}),
        });
      }
      const content = toParts(rest);
      if (content.length > 0) messages.push({ role: 'user', content });
    } else {
      const content = toParts(m.content);
      if (content.length > 0) messages.push({ role: 'user', content });
    }
  }
  const format = outputSchemaOf(body);
  const tools: Tool[] = [];
  if (Array.isArray(body.tools)) {
    for (const t of body.tools as Json[]) {
      // Server tools (web search, code execution, …) run at Anthropic only: nothing to translate.
      if (t.input_schema === undefined && t.type !== undefined && t.type !== 'custom') continue;
      tools.push({
        name: String(t.name),
        ...(typeof t.description === 'string' ? { description: t.description } : {}),
        parameters: isObject(t.input_schema) ? t.input_schema : { type: 'object', properties: {} },
      });
    }
  }
  let toolChoice: ToolChoice | null = null;
  const tc = body.tool_choice;
  if (isObject(tc)) {
    if (tc.type === 'auto') toolChoice = 'auto';
    else if (tc.type === 'any') toolChoice = 'required';
    else if (tc.type === 'none') toolChoice = 'none';
    else if (tc.type === 'tool') toolChoice = { name: String(tc.name) };
  }
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return {
    system,
    messages,
    tools,
    toolChoice,
    maxOutputTokens: r.maxOutputTokens,
    temperature: num(body.temperature),
    topP: num(body.top_p),
    stop: Array.isArray(body.stop_sequences) ? (body.stop_sequences as string[]) : [],
    stream: r.stream,
    responseFormat: format
      ? { type: 'json_schema', name: 'response', schema: format.schema, strict: true }
      : null,
    parallelToolCalls: isObject(tc) && tc.disable_parallel_tool_use === true ? false : null,
    settings: settingsOf({
      topK: body.top_k,
      user: isObject(body.metadata) ? body.metadata.user_id : undefined,
    }),
  };
}

// ── ingress: answers, streams, errors ──────────────────────────────────────────────────────

const STOP_TO_ANTHROPIC: Record<StopReason, string> = {
  stop: 'end_turn',
  length: 'max_tokens',
  tool_calls: 'tool_use',
  content_filter: 'refusal',
};

function anthropicStop(reason: StopReason, stopSequence: string | null | undefined): string {
  return reason === 'stop' && stopSequence ? 'stop_sequence' : STOP_TO_ANTHROPIC[reason];
}

/** Anthropic's message ids start `msg_`; other upstreams' ids are kept inside one. */
function messageId(id: string): string {
  if (id.startsWith('msg_')) return id;
  const clean = id.replace(/[^A-Za-z0-9_-]/g, '');
  return `msg_${clean || Date.now().toString(36)}`;
}

function usageBody(u: CanonicalUsage | null) {
  const x = u ?? { input: 0, cacheRead: 0, cacheWrite: 0, output: 0, reasoning: 0 };
  const forHour = Math.min(x.cacheWrite1h ?? 0, x.cacheWrite);
  return {
    input_tokens: x.input,
    cache_creation_input_tokens: x.cacheWrite,
    cache_read_input_tokens: x.cacheRead,
    cache_creation: { ephemeral_5m_input_tokens: x.cacheWrite - forHour, ephemeral_1h_input_tokens: forHour },
    output_tokens: x.output,
    // Thinking is inside output_tokens; the SDK's Usage shows the share as thinking_tokens.
    ...(x.reasoning > 0 ? { output_tokens_details: { thinking_tokens: x.reasoning } } : {}),
  };
}

function encodeAnswer(a: CanonicalAnswer, r: IngressRequest): unknown {
  const content: Json[] = [];
  // Thinking from another upstream has no Anthropic signature: it is shown, never verifiable.
  if (a.reasoning) content.push({ type: 'thinking', thinking: a.reasoning, signature: '' });
  if (a.text) content.push({ type: 'text', text: a.text });
  for (const tc of a.toolCalls)
    content.push({ type: 'tool_use', id: tc.id, name: tc.name, input: argsObject(tc.arguments) });
  return {
    id: messageId(a.id),
    type: 'message',
    role: 'assistant',
    model: r.model,
    content,
    stop_reason: anthropicStop(a.stopReason, a.stopSequence),
    stop_sequence: a.stopReason === 'stop' ? (a.stopSequence ?? null) : null,
    usage: usageBody(a.usage),
  };
}

/** Anthropic's `error.type` for an HTTP status. */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 400:
    case 422:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 402:
      return 'billing_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 409:
      return 'conflict_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 502:
    case 503:
    case 529:
      return 'overloaded_error';
    case 504:
      return 'timeout_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

function errorBody(status: number, code: string, message: string, requestId: string, _param?: string | null) {
  return { type: 'error', error: { type: anthropicErrorType(status), message, code }, request_id: requestId };
}

function statusOf(code: string): number {
  return code in ERROR_CATALOGUE ? ERROR_CATALOGUE[code as ErrorCode].status : 502;
}

type Block = { kind: 'text' | 'thinking' | 'tool'; index: number };

function streamEncoder(r: IngressRequest, requestId: string): StreamEncoder {
  let started = false;
  let id = `msg_${requestId.replace(/[^A-Za-z0-9_-]/g, '')}`;
  let next = 0; // next content block index
  let open: Block | null = null;
  const toolBlocks = new Map<number, number>(); // canonical tool index → block index
  let stop: StopReason = 'stop';
  let stopSequence: string | null = null;
  let ended = false;

  const frame = (type: string, payload: Json) => sseFrame(JSON.stringify({ type, ...payload }), type);
  /**
   * A text delta, the frame nearly every event of an answer becomes: the bytes `frame` makes
   * for it, written out (a sixth of its cost: no spread, one stringify of the text).
   */
  const textDelta = (index: number, text: string) =>
    `event: content_block_delta\ndata: {"type":"content_block_delta","index":${index},"delta":{"type":"text_delta","text":${JSON.stringify(text)}}}\n\n`;
  const start = (): string => {
    if (started) return '';
    started = true;
    return frame('message_start', {
      message: {
        id,
        type: 'message',
        role: 'assistant',
        model: r.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        // The local count until the upstream's own arrives with message_delta.
        usage: {
          input_tokens: exactPromptTokens(r),
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 0,
          cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
          output_tokens: 0,
        },
      },
    });
  };
  const close = (): string => {
    if (!open) return '';
    const out = frame('content_block_stop', { index: open.index });
    open = null;
    return out;
  };
  const openBlock = (kind: Block['kind'], contentBlock: Json): string => {
    const out = close();
    open = { kind, index: next++ };
    return out + frame('content_block_start', { index: open.index, content_block: contentBlock });
  };
  /**
   * Tool calls begun while a tool block is open, held whole until it may close: an upstream may
   * interleave its calls' arguments (a piece of the first after the second began), and an
   * Anthropic stream has one block open at a time, none getting deltas after its stop.
   */
  const held = new Map<number, { id: string; name: string; args: string }>();
  const toolUse = (id: string, name: string) => ({ type: 'tool_use', id, name, input: {} });
  const argsDelta = (index: number, partial: string) =>
    frame('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: partial } });
  /** Closes the open block and writes the held calls, each whole. */
  const releaseHeld = (): string => {
    if (held.size === 0) return '';
    let out = close();
    for (const [toolIndex, h] of held) {
      out += openBlock('tool', toolUse(h.id, h.name));
      toolBlocks.set(toolIndex, open!.index);
      if (h.args) out += argsDelta(open!.index, h.args);
      out += close();
    }
    held.clear();
    return out;
  };

  return {
    event(e: StreamEvent): string {
      if (ended) return '';
      switch (e.type) {
        case 'start':
          if (!started && e.id) id = messageId(e.id);
          return start();
        case 'text': {
          if (!e.text) return '';
          let out = start() + releaseHeld();
          if (open?.kind !== 'text') out += openBlock('text', { type: 'text', text: '' });
          return out + textDelta(open!.index, e.text);
        }
        case 'reasoning': {
          if (!e.text) return '';
          let out = start() + releaseHeld();
          if (open?.kind !== 'thinking')
            out += openBlock('thinking', { type: 'thinking', thinking: '', signature: '' });
          return (
            out +
            frame('content_block_delta', {
              index: open!.index,
              delta: { type: 'thinking_delta', thinking: e.text },
            })
          );
        }
        case 'tool_call': {
          const out = start();
          if (open?.kind === 'tool') {
            held.set(e.index, { id: e.id, name: e.name, args: '' });
            return out;
          }
          const begun = out + openBlock('tool', toolUse(e.id, e.name));
          toolBlocks.set(e.index, open!.index);
          return begun;
        }
        case 'tool_args': {
          if (!e.delta) return '';
          const h = held.get(e.index);
          if (h) {
            h.args += e.delta;
            return '';
          }
          const index = toolBlocks.get(e.index);
          return index === undefined ? '' : argsDelta(index, e.delta);
        }
        case 'stop':
          stop = e.reason;
          stopSequence = e.stopSequence ?? null;
          return '';
        case 'usage':
          return '';
      }
    },
    finish(usage: CanonicalUsage): string {
      if (ended) return '';
      ended = true;
      let out = start() + releaseHeld() + close();
      out += frame('message_delta', {
        delta: {
          stop_reason: anthropicStop(stop, stopSequence),
          stop_sequence: stop === 'stop' ? stopSequence : null,
        },
        usage: usageBody(usage),
      });
      return out + frame('message_stop', {});
    },
    error(code: string, message: string, status?: number): string {
      if (ended) return '';
      ended = true;
      return sseFrame(JSON.stringify(errorBody(status ?? statusOf(code), code, message, requestId)), 'error');
    },
  };
}

// ── egress ─────────────────────────────────────────────────────────────────────────────────

function passThroughBody(r: IngressRequest, upstreamModel: string): unknown {
  return { ...r.body, model: upstreamModel };
}

/** The client's bytes when its model name goes unchanged (a coding agent's context is large). */
const passThroughBytes = (r: IngressRequest, upstreamModel: string): Buffer | null =>
  upstreamModel === r.model ? asSent(r.raw, r.body) : null;

/**
 * `f` as an instruction, for an upstream with no structured output of its own (Anthropic's
 * Messages): the model is asked, not made, to answer so.
 */
function formatInstruction(f: ResponseFormat): string {
  if (f.type === 'json_object') return 'Answer with one JSON object and nothing else.';
  return `Answer with one JSON value named "${f.name}" and nothing else (no prose, no code fences), valid against this JSON Schema: ${JSON.stringify(f.schema)}`;
}

/** Anthropic accepts tool ids matching ^[a-zA-Z0-9_-]+$ only. */
const toolId = (id: string) => id.replace(/[^A-Za-z0-9_-]/g, '_') || 'toolu_0';

function imageBlock(p: Extract<Part, { type: 'image' }>): Json {
  const d = parseDataUrl(p.url);
  if (d) return { type: 'image', source: { type: 'base64', media_type: d.mediaType, data: d.data } };
  return { type: 'image', source: { type: 'url', url: p.url } };
}

/** A file as Anthropic's document block: a PDF (as data or by URL), or plain text. */
function documentBlock(p: Extract<Part, { type: 'file' }>): Json {
  const d = parseDataUrl(p.url);
  const title = p.name ? { title: p.name } : {};
  if (p.mediaType === 'application/pdf')
    return {
      type: 'document',
      source: d
        ? { type: 'base64', media_type: 'application/pdf', data: d.data }
        : { type: 'url', url: p.url },
      ...title,
    };
  if (p.mediaType === 'text/plain' && d)
    return {
      type: 'document',
      source: {
        type: 'text',
        media_type: 'text/plain',
        data: Buffer.from(d.data, 'base64').toString('utf8'),
      },
      ...title,
    };
  throw bad(
    `a document of type ${p.mediaType.slice(0, 100)} cannot be sent to this model's channel (Anthropic takes PDFs and plain text)`,
    'messages',
  );
}

function blocks(parts: Part[]): Json[] {
  const out: Json[] = [];
  for (const p of parts) {
    if (p.type === 'text') {
      if (p.text) out.push({ type: 'text', text: p.text }); // Anthropic refuses empty text blocks
    } else out.push(p.type === 'image' ? imageBlock(p) : documentBlock(p));
  }
  return out;
}

function fromCanonical(c: CanonicalRequest, upstreamModel: string, outputCap: number): unknown {
  const messages: { role: 'user' | 'assistant'; content: Json[] }[] = [];
  const push = (role: 'user' | 'assistant', content: Json[]) => {
    if (content.length === 0) return;
    const last = messages[messages.length - 1];
    // Consecutive turns of one role merge (tool results then the user's text is one user turn).
    if (last && last.role === role) last.content.push(...content);
    else messages.push({ role, content });
  };
  for (const m of c.messages) {
    if (m.role === 'user') push('user', blocks(m.content));
    else if (m.role === 'assistant') {
      const content = blocks(m.content);
      for (const tc of m.toolCalls)
        content.push({ type: 'tool_use', id: toolId(tc.id), name: tc.name, input: argsObject(tc.arguments) });
      push('assistant', content);
    } else {
      const inner = blocks(m.content);
      push('user', [
        {
          type: 'tool_result',
          tool_use_id: toolId(m.toolCallId),
          content: inner,
          ...(m.isError ? { is_error: true } : {}),
        },
      ]);
    }
  }
  // Tool results must directly follow their tool_use turn's answer: keep them first in a user turn.
  for (const m of messages) {
    if (m.role !== 'user') continue;
    const results = m.content.filter((b) => b.type === 'tool_result');
    if (results.length > 0 && results.length < m.content.length)
      m.content = [...results, ...m.content.filter((b) => b.type !== 'tool_result')];
  }
  const body: Json = { model: upstreamModel, max_tokens: outputCap, messages };
  // Structured output as an instruction: not every Claude model takes output_format.
  const system = [...c.system, ...(c.responseFormat ? [formatInstruction(c.responseFormat)] : [])].filter(
    (s) => s.length > 0,
  );
  if (system.length === 1) body.system = system[0];
  else if (system.length > 1) body.system = system.map((text) => ({ type: 'text', text }));
  if (c.tools.length > 0) {
    body.tools = c.tools.map((t) => ({
      name: t.name,
      ...(t.description ? { description: t.description } : {}),
      input_schema: { type: 'object', ...t.parameters },
    }));
    const tc = c.toolChoice;
    if (tc === 'auto') body.tool_choice = { type: 'auto' };
    else if (tc === 'required') body.tool_choice = { type: 'any' };
    // "none" still declares the tools (earlier tool turns refer to them) but forbids calls.
    else if (tc === 'none') body.tool_choice = { type: 'none' };
    else if (tc && typeof tc === 'object') body.tool_choice = { type: 'tool', name: tc.name };
    // At most one call an answer: said on the tool choice (none forbids calls anyway).
    if (c.parallelToolCalls === false && tc !== 'none')
      body.tool_choice = {
        ...((body.tool_choice as Json | undefined) ?? { type: 'auto' }),
        disable_parallel_tool_use: true,
      };
  }
  // Anthropic's temperature range is 0–1 (OpenAI's 0–2), and newer Claude models refuse
  // temperature and top_p together: temperature wins.
  if (c.temperature !== null) body.temperature = Math.min(1, Math.max(0, c.temperature));
  else if (c.topP !== null) body.top_p = c.topP;
  if (c.settings?.topK !== undefined) body.top_k = c.settings.topK;
  // Anthropic takes a user id of up to 256 characters (an opaque id or hash): a longer one goes unsent.
  if (c.settings?.user !== undefined && c.settings.user.length <= 256)
    body.metadata = { user_id: c.settings.user };
  const stop = c.stop.filter((s) => s.trim().length > 0);
  if (stop.length > 0) body.stop_sequences = stop;
  if (c.stream) body.stream = true;
  return body;
}

function answerError(json: unknown): string | null {
  if (!isObject(json) || json.type !== 'error') return null;
  const e = json.error;
  const msg = isObject(e) && typeof e.message === 'string' ? e.message : '';
  return msg || 'upstream answered an error';
}

/**
 * A 4xx that is the channel's fault, not the request's: Anthropic answers an account out of
 * credit with 400 ("Your credit balance is too low…") or 402 `billing_error`, and a reached
 * org/workspace spend limit with 400. Another channel may well serve the same request.
 */
function channelFault(status: number, json: unknown): boolean {
  if (status === 402) return true;
  if (status !== 400 || !isObject(json) || !isObject(json.error)) return false;
  const e = json.error;
  if (e.type === 'billing_error') return true;
  const msg = typeof e.message === 'string' ? e.message : '';
  return /credit balance is too low|spend limit|usage limits/i.test(msg);
}

const STOP_FROM_ANTHROPIC: Record<string, StopReason> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  // The server paused a long tool turn: the answer is incomplete, as when capped.
  pause_turn: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
};

const canonicalStop = (s: unknown): StopReason => (typeof s === 'string' && STOP_FROM_ANTHROPIC[s]) || 'stop';

const int = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0);

/** Cache writes kept for an hour (`cache_creation.ephemeral_1h_input_tokens`), part of the writes. */
function hourWrites(u: Json, prev: CanonicalUsage | null): number {
  const c = u.cache_creation;
  if (!isObject(c) || c.ephemeral_1h_input_tokens === undefined || c.ephemeral_1h_input_tokens === null)
    return prev?.cacheWrite1h ?? 0;
  return int(c.ephemeral_1h_input_tokens);
}

/** Searches the web search tool ran (`server_tool_use.web_search_requests`), each billed. */
function webSearches(u: Json, prev: CanonicalUsage | null): number {
  const t = u.server_tool_use;
  if (!isObject(t) || t.web_search_requests === undefined || t.web_search_requests === null)
    return prev?.webSearches ?? 0;
  return int(t.web_search_requests);
}

function readUsage(u: Json, prev: CanonicalUsage | null): CanonicalUsage {
  // Later usage (message_delta) replaces fields it carries; absent or null fields keep their value.
  const pick = (name: string, old: number) =>
    u[name] === undefined || u[name] === null ? old : int(u[name]);
  const details = isObject(u.output_tokens_details) ? u.output_tokens_details : null;
  const forHour = hourWrites(u, prev);
  const searches = webSearches(u, prev);
  return {
    // Absent when none (most answers), as usage from other protocols has it.
    ...(forHour > 0 ? { cacheWrite1h: forHour } : {}),
    ...shownSearches(searches),
    input: pick('input_tokens', prev?.input ?? 0),
    cacheRead: pick('cache_read_input_tokens', prev?.cacheRead ?? 0),
    cacheWrite: pick('cache_creation_input_tokens', prev?.cacheWrite ?? 0),
    output: pick('output_tokens', prev?.output ?? 0),
    reasoning:
      details && typeof details.thinking_tokens === 'number'
        ? int(details.thinking_tokens)
        : (prev?.reasoning ?? 0),
  };
}

/** A web search's result block (a search that ran and is billed; a failed one holds an error object). */
const isSearchResult = (b: Json): boolean => b.type === 'web_search_tool_result' && Array.isArray(b.content);

function decodeAnswer(json: unknown): CanonicalAnswer {
  const m = isObject(json) ? json : {};
  let text = '';
  let reasoning = '';
  let searches = 0;
  const toolCalls: ToolCall[] = [];
  for (const b of Array.isArray(m.content) ? (m.content as unknown[]) : []) {
    if (!isObject(b)) continue;
    if (isSearchResult(b)) searches++;
    if (b.type === 'text' && typeof b.text === 'string') text += b.text;
    else if (b.type === 'thinking' && typeof b.thinking === 'string') reasoning += b.thinking;
    else if (b.type === 'tool_use')
      toolCalls.push({
        id: String(b.id ?? ''),
        name: String(b.name ?? ''),
        arguments: JSON.stringify(b.input ?? {}),
      });
  }
  return {
    id: typeof m.id === 'string' ? m.id : '',
    model: typeof m.model === 'string' ? m.model : '',
    text,
    reasoning,
    toolCalls,
    stopReason: canonicalStop(m.stop_reason),
    stopSequence: typeof m.stop_sequence === 'string' ? m.stop_sequence : null,
    usage: isObject(m.usage) ? readUsage(m.usage, null) : null,
    ...shownSearches(searches),
  };
}

/** Where a text delta's text is. */
const deltaText = (obj: unknown): unknown =>
  isObject(obj) && isObject(obj.delta) ? obj.delta.text : undefined;

/** `shapes`: read a text delta shaped like the last one from its text alone (DeltaShape). */
export function streamDecoder(_r: IngressRequest, shapes = true): StreamDecoder {
  const state = new DecodeState();
  let tools = 0;
  const toolOfBlock = new Map<number, number>();
  const shape = shapes ? new DeltaShape() : null;
  /** The `event:` name of the frame the shape was learnt from. */
  let shapeEvent: string | null = null;
  return decoder(state, (frame) => {
    if (frame.event === 'ping') return { events: [] };
    if (shape && frame.event === shapeEvent) {
      const text = shape.textOf(frame.data);
      if (text !== undefined) return { events: text ? [{ type: 'text', text }] : [] };
    }
    const data = parseObject(frame.data);
    if (data === undefined)
      throw new StreamBroken(`unreadable ${frame.event ?? 'event'} in the upstream stream`);
    const type = frame.event ?? (typeof data.type === 'string' ? data.type : '');
    if (type === 'error' || data.type === 'error') {
      const e = data.error;
      const msg = isObject(e) && typeof e.message === 'string' ? e.message : 'upstream stream error';
      throw new StreamBroken(msg);
    }
    const events: StreamEvent[] = [];
    switch (type) {
      case 'message_start': {
        const m = isObject(data.message) ? data.message : {};
        events.push({
          type: 'start',
          id: typeof m.id === 'string' ? m.id : '',
          model: typeof m.model === 'string' ? m.model : '',
        });
        if (isObject(m.usage)) state.report(events, readUsage(m.usage, null));
        break;
      }
      case 'content_block_start': {
        const b = isObject(data.content_block) ? data.content_block : {};
        const index = int(data.index);
        if (b.type === 'text' && typeof b.text === 'string' && b.text)
          events.push({ type: 'text', text: b.text });
        else if (b.type === 'thinking' && typeof b.thinking === 'string' && b.thinking)
          events.push({ type: 'reasoning', text: b.thinking });
        else if (isSearchResult(b))
          state.webSearches++; // billed; the usage that says so comes at the end
        else if (b.type === 'tool_use') {
          const t = tools++;
          toolOfBlock.set(index, t);
          events.push({ type: 'tool_call', index: t, id: String(b.id ?? ''), name: String(b.name ?? '') });
          if (isObject(b.input) && Object.keys(b.input).length > 0)
            events.push({ type: 'tool_args', index: t, delta: JSON.stringify(b.input) });
        }
        break;
      }
      case 'content_block_delta': {
        const d = isObject(data.delta) ? data.delta : {};
        if (d.type === 'text_delta' && typeof d.text === 'string') {
          if (d.text) events.push({ type: 'text', text: d.text });
          if (shape) {
            shape.learn(frame.data, 'text', deltaText);
            shapeEvent = frame.event;
          }
        } else if (d.type === 'thinking_delta' && typeof d.thinking === 'string' && d.thinking)
          events.push({ type: 'reasoning', text: d.thinking });
        else if (d.type === 'input_json_delta' && typeof d.partial_json === 'string' && d.partial_json) {
          const t = toolOfBlock.get(int(data.index));
          if (t !== undefined) events.push({ type: 'tool_args', index: t, delta: d.partial_json });
        }
        break;
      }
      case 'message_delta': {
        const d = isObject(data.delta) ? data.delta : {};
        if (d.stop_reason !== undefined && d.stop_reason !== null)
          events.push({
            type: 'stop',
            reason: canonicalStop(d.stop_reason),
            stopSequence: typeof d.stop_sequence === 'string' ? d.stop_sequence : null,
          });
        if (isObject(data.usage)) state.report(events, readUsage(data.usage, state.usage));
        break;
      }
      case 'message_stop':
        state.done = true;
        break;
      default:
        break; // content_block_stop and event types added later
    }
    return { events };
  });
}

const PING = ascii('ping');
const BLOCK_DELTA = ascii('content_block_delta');
const BLOCK_STOP = ascii('content_block_stop');

/**
 * The pass-through check's judge (Anthropic Messages to an Anthropic channel: Claude Code's
 * path). Most of a stream's frames are `content_block_delta`s, and they, `content_block_stop`
 * and `ping` change nothing a check answers: `feed` only throws on them when their data is not
 * a JSON object or its `type` reads "error". Named so on their `event:` line, they are only
 * scanned (scanJson), and a delta is kept for its text; every other frame is decoded.
 */
function judgeFrame(
  b: Buffer,
  eventStart: number,
  eventEnd: number,
  start: number,
  end: number,
  shape: FrameShape | null,
): FrameVerdict {
  if (eventStart < 0) return FrameVerdict.Decode;
  if (bytesAre(b, eventStart, eventEnd, PING)) return FrameVerdict.Skip; // `feed` does not read its data
  const delta = bytesAre(b, eventStart, eventEnd, BLOCK_DELTA);
  if (!delta && !bytesAre(b, eventStart, eventEnd, BLOCK_STOP)) return FrameVerdict.Decode;
  // A text delta shaped like the last one scanned is spared the scan.
  const flags = delta && shape ? shape.scan(b, start, end) : scanJson(b, start, end);
  if ((flags & (JSON_OBJECT | JSON_TYPE_ERROR)) !== JSON_OBJECT) return FrameVerdict.Decode;
  return delta ? FrameVerdict.Keep : FrameVerdict.Skip;
}

export const anthropicCodec: ProtocolCodec & {
  countTokens(body: Record<string, unknown>): Promise<unknown>;
} = {
  protocol: 'anthropic',
  countTokens: async (body) => ({ input_tokens: await exactCountAhead(checkedPrompt(body)) }),
  parseRequest,
  toCanonical,
  encodeAnswer,
  streamEncoder,
  errorBody,
  forwardedHeaders: (headers) => headersNamed(headers, (name) => name.startsWith('anthropic-')),
  passThroughBody,
  passThroughBytes,
  fromCanonical,
  answerError,
  channelFault,
  decodeAnswer,
  passThroughCheck: (r: IngressRequest) =>
    new ScannedPassThrough(() => streamDecoder(r), judgeFrame, 'content_block_delta', new FrameShape('text')),
  streamDecoder,
};
