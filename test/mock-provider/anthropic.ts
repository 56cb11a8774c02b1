// Anthropic Messages: POST /v1/messages, /v1/messages/count_tokens.
//
// An independent implementation of Anthropic's wire protocol (it imports nothing from
// src/relay): JSON answers and named SSE events exactly as @anthropic-ai/sdk parses them,
// Anthropic's error bodies ({"type":"error","error":{type,message},"request_id"}), its
// credential headers (`x-api-key`, or `Authorization: Bearer`), and the same scenarios and
// deterministic text as the OpenAI handlers (see README.md, "Anthropic Messages").
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import {
  argsFromSchema,
  cacheSplit,
  type ContentCount,
  countContent,
  type EventFrame,
  isJsonObject,
  type Json,
  jsonWriter,
  type MockKit,
  playScenario,
  type ProtocolRoutes,
  scriptedFrames,
} from './kit.js';
import {
  countTextTokens,
  DEFAULT_COMPLETION_TOKENS,
  generatePieces,
  hashText,
  piecesFor,
  type Scenario,
} from './server.js';

const JSON_CT = 'application/json';
const SSE_CT = 'text/event-stream; charset=utf-8';
/** Images count as a flat 85 tokens, as in the OpenAI handlers. */
const IMAGE_TOKENS = 85;

class AnthropicError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const invalid = (message: string) => new AnthropicError(400, 'invalid_request_error', message);

/**
 * Anthropic's error type for each status (platform.claude.com/docs/en/api/errors), and the
 * mock's default message where it has one of its own.
 */
const ERRORS: Record<number, { type: string; message?: string }> = {
  400: { type: 'invalid_request_error', message: 'Invalid request (mock scenario).' },
  401: { type: 'authentication_error', message: 'invalid x-api-key' },
  402: { type: 'billing_error' },
  403: {
    type: 'permission_error',
    message: 'Your API key does not have permission to use the specified resource.',
  },
  404: { type: 'not_found_error' },
  409: { type: 'conflict_error' },
  413: { type: 'request_too_large', message: 'Request exceeds the maximum allowed number of bytes.' },
  429: {
    type: 'rate_limit_error',
    message:
      'This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.',
  },
  504: { type: 'timeout_error', message: 'Request timed out.' },
  529: { type: 'overloaded_error', message: 'Overloaded' },
};

const errorType = (status: number): string =>
  ERRORS[status]?.type ?? (status >= 500 ? 'api_error' : 'invalid_request_error');

function defaultMessage(status: number, model: string): string {
  if (status === 404) return `model: ${model}`;
  return ERRORS[status]?.message ?? (status >= 500 ? 'Internal server error' : `Mock error ${status}.`);
}

// ── prompt counting and seed text (see README) ─────────────────────────────────────────────

function blockText(b: Json): ContentCount {
  switch (b.type) {
    case 'text':
      return { text: typeof b.text === 'string' ? b.text : '', extra: 0 };
    case 'image':
    case 'document':
      return { text: '', extra: IMAGE_TOKENS };
    case 'tool_use':
      return {
        text: '',
        extra: countTextTokens(String(b.name)) + countTextTokens(JSON.stringify(b.input ?? {})),
      };
    case 'tool_result':
      return contentOf(b.content);
    case 'thinking':
      return { text: '', extra: countTextTokens(typeof b.thinking === 'string' ? b.thinking : '') };
    default:
      return { text: '', extra: 0 };
  }
}

const contentOf = (content: unknown): ContentCount => countContent(content, blockText);

/**
 * Prompt tokens of a Messages request (all input, before cache accounting):
 *   3 + tok(system text) + Σ messages [3 + tok(role) + tok(text) + 85 per image/document
 *   + Σ tool_use (tok(name) + tok(JSON input)) + tool_result text + tok(thinking)]
 *   + (tools ? tok(JSON.stringify(tools)) : 0)
 */
export function countAnthropicPromptTokens(body: Json): number {
  let total = 3;
  total += countTextTokens(contentOf(body.system).text);
  for (const m of body.messages as Json[]) {
    total += 3 + countTextTokens(String(m.role));
    const { text, extra } = contentOf(m.content);
    total += countTextTokens(text) + extra;
  }
  if (Array.isArray(body.tools) && body.tools.length > 0)
    total += countTextTokens(JSON.stringify(body.tools));
  return total;
}

/** Seed text: each message's text (tool results included) followed by "\n". */
export function anthropicSeedText(messages: readonly unknown[]): string {
  let s = '';
  for (const m of messages) if (isJsonObject(m)) s += `${contentOf(m.content).text}\n`;
  return s;
}

/** The exact text the mock answers for these messages (`tokens` tokens). */
export function expectedAnthropicText(
  messages: readonly unknown[],
  tokens = DEFAULT_COMPLETION_TOKENS,
): string {
  return piecesFor(anthropicSeedText(messages), tokens).join('');
}

// ── validation (the parts that matter to a gateway) ────────────────────────────────────────

function validate(body: unknown, headers: Record<string, unknown>, needMaxTokens: boolean): Json {
  if (!isJsonObject(body)) throw invalid('Request body must be a JSON object.');
  if (typeof body.model !== 'string' || body.model === '') throw invalid('model: Field required');
  if (needMaxTokens) {
    const mt = body.max_tokens;
    if (mt === undefined || mt === null) throw invalid('max_tokens: Field required');
    if (typeof mt !== 'number' || !Number.isInteger(mt))
      throw invalid('max_tokens: Input should be a valid integer');
    if (mt < 1) throw invalid('max_tokens: Input should be greater than or equal to 1');
  }
  const msgs = body.messages;
  if (msgs === undefined) throw invalid('messages: Field required');
  if (!Array.isArray(msgs)) throw invalid('messages: Input should be a valid list');
  if (msgs.length === 0) throw invalid('messages: at least one message is required');
  msgs.forEach((m, i) => {
    if (!isJsonObject(m)) throw invalid(`messages.${i}: Input should be a valid dictionary`);
    // API version 2026-10-21 added mid-conversation system messages.
    const systemOk = String(headers['anthropic-version'] ?? '') >= '2026-10-21';
    if (m.role !== 'user' && m.role !== 'assistant' && !(systemOk && m.role === 'system'))
      throw invalid(`messages.${i}.role: Input should be 'user' or 'assistant'`);
    const c = m.content;
    if (typeof c !== 'string' && !Array.isArray(c))
      throw invalid(`messages.${i}.content: Input should be a valid list`);
    if (Array.isArray(c))
      c.forEach((b, j) => {
        if (!isJsonObject(b) || typeof b.type !== 'string')
          throw invalid(`messages.${i}.content.${j}: Input tag not found`);
        if (b.type === 'text' && (typeof b.text !== 'string' || b.text === ''))
          throw invalid(`messages: text content blocks must be non-empty`);
      });
  });
  if (body.stream !== undefined && typeof body.stream !== 'boolean')
    throw invalid('stream: Input should be a valid boolean');
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) throw invalid('tools: Input should be a valid list');
    body.tools.forEach((t, i) => {
      if (!isJsonObject(t) || typeof t.name !== 'string') throw invalid(`tools.${i}.name: Field required`);
      if (t.type === undefined && !isJsonObject(t.input_schema))
        throw invalid(`tools.${i}.custom.input_schema: Field required`);
    });
  }
  // A beta body field without its beta header: Anthropic's hard 400.
  if (body.context_management !== undefined && typeof headers['anthropic-beta'] !== 'string')
    throw invalid('context_management: Extra inputs are not permitted');
  return body;
}

// ── tool use (same deterministic rule as every mock protocol) ──────────────────────────────

/** The tool the mock calls, or null when it answers text. */
function toolToCall(body: Json): Json | null {
  // Server tools (a versioned `type`: web search, …) run at the provider, never as a tool_use.
  const tools = Array.isArray(body.tools)
    ? (body.tools as Json[]).filter((t) => isJsonObject(t) && (t.type === undefined || t.type === 'custom'))
    : [];
  if (tools.length === 0) return null;
  const tc = isJsonObject(body.tool_choice) ? body.tool_choice : null;
  if (tc?.type === 'none') return null;
  const msgs = body.messages as Json[];
  const last = msgs[msgs.length - 1]!;
  if (last.role !== 'user') return null;
  if (Array.isArray(last.content) && last.content.some((b) => isJsonObject(b) && b.type === 'tool_result'))
    return null;
  if (tc?.type === 'tool') return tools.find((t) => t.name === tc.name) ?? tools[0]!;
  return tools[0]!;
}

// ── handlers ───────────────────────────────────────────────────────────────────────────────

/** GET /v1/models: `{data: [{type: "model", id, display_name, created_at}], has_more, first_id, last_id}`. */
function listModels(kit: MockKit, given: string, res: ServerResponse): void {
  if (kit.apiKey !== undefined && given !== kit.apiKey) {
    sendError(kit, res, 401, 'authentication_error', 'invalid x-api-key', {});
    return;
  }
  const data = kit.models.map((id) => ({
    type: 'model',
    id,
    display_name: id,
    created_at: '2025-01-01T00:00:00Z',
  }));
  const body = { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null };
  kit.sendJson(res, 200, JSON.stringify(body), {
    'content-type': JSON_CT,
    'request-id': `req_${kit.nextId()}`,
  });
}

export const anthropicRoutes: ProtocolRoutes = (kit, r) => {
  // GET /v1/models with x-api-key is Anthropic's model list (with a Bearer token, OpenAI's).
  if (r.route === '/v1/models' && r.method === 'GET' && typeof r.req.headers['x-api-key'] === 'string') {
    listModels(kit, r.req.headers['x-api-key'], r.res);
    return true;
  }
  if (r.route !== '/v1/messages' && r.route !== '/v1/messages/count_tokens') return false;
  const { req, res } = r;
  try {
    if (r.method !== 'POST') throw new AnthropicError(405, 'invalid_request_error', 'Method Not Allowed');
    if (kit.apiKey !== undefined) {
      const xKey = req.headers['x-api-key'];
      const auth = req.headers.authorization;
      const given = typeof xKey === 'string' ? xKey : auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
      if (given === undefined)
        throw new AnthropicError(401, 'authentication_error', 'x-api-key header is required');
      if (given !== kit.apiKey) throw new AnthropicError(401, 'authentication_error', 'invalid x-api-key');
    }
    if (r.parseFailed) throw invalid('There was an error parsing the body of your request.');
    if (r.route === '/v1/messages/count_tokens') {
      const body = validate(r.body, req.headers, false);
      const s = kit.pickScenario(body.model as string);
      respond(kit, res, s, body.model as string, false, () => {
        const input = countAnthropicPromptTokens(body);
        kit.sendJson(res, 200, jsonWriter(s)({ input_tokens: input }), headersFor(kit, s, JSON_CT));
      });
      return true;
    }
    const body = validate(r.body, req.headers, true);
    const model = body.model as string;
    const s = kit.pickScenario(model);
    respond(kit, res, s, model, body.stream === true, () => answer(kit, res, s, body));
  } catch (e) {
    if (e instanceof AnthropicError) sendError(kit, res, e.status, e.type, e.message, {});
    else sendError(kit, res, 500, 'api_error', `mock provider bug: ${String(e)}`, {});
  }
  return true;
};

function headersFor(kit: MockKit, s: Scenario, contentType: string): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = { 'content-type': contentType, 'request-id': `req_${kit.nextId()}` };
  if (s.headers) Object.assign(h, s.headers);
  return h;
}

function errorJson(type: string, message: string, requestId: string): Json {
  return { type: 'error', error: { type, message }, request_id: requestId };
}

function sendError(
  kit: MockKit,
  res: ServerResponse,
  status: number,
  type: string,
  message: string,
  extra: OutgoingHttpHeaders,
  s: Scenario = {},
): void {
  const id = `req_${kit.nextId()}`;
  kit.sendJson(res, status, jsonWriter(s)(errorJson(type, message, id)), {
    'content-type': JSON_CT,
    'request-id': id,
    ...extra,
  });
}

/** Hang, delay or fail as the scenario says, else `go`. */
const respond = (
  kit: MockKit,
  res: ServerResponse,
  s: Scenario,
  model: string,
  stream: boolean,
  go: () => void,
) => playScenario(kit, res, s, stream, () => sendScenarioError(kit, res, s, model), go);

/** The scenario's error status, with Anthropic's rate-limit headers on a 429. */
function sendScenarioError(kit: MockKit, res: ServerResponse, s: Scenario, model: string): void {
  const status = s.status!;
  const extra: OutgoingHttpHeaders = { ...(s.headers ?? {}) };
  const retryAfter = s.retryAfterSeconds ?? (status === 429 || status === 529 ? 1 : undefined);
  if (retryAfter !== undefined) extra['retry-after'] ??= String(retryAfter);
  if (status === 429) {
    const reset = new Date(Date.now() + (retryAfter ?? 1) * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    extra['anthropic-ratelimit-requests-limit'] ??= '50';
    extra['anthropic-ratelimit-requests-remaining'] ??= '0';
    extra['anthropic-ratelimit-requests-reset'] ??= reset;
  }
  sendError(
    kit,
    res,
    status,
    s.errorType ?? errorType(status),
    s.errorMessage ?? defaultMessage(status, model),
    extra,
    s,
  );
}

/**
 * How many of the cache writes are kept for an hour: all when every breakpoint says
 * `ttl: "1h"`, half when some do (hour-long breakpoints come first in a prompt, so they
 * cover its front), none otherwise.
 */
function hourWrites(body: Json, cacheWrite: number): number {
  const ttls: unknown[] = [];
  const visit = (b: unknown): void => {
    if (Array.isArray(b)) for (const x of b) visit(x);
    else if (b && typeof b === 'object') {
      const o = b as Json;
      if (o.cache_control && typeof o.cache_control === 'object')
        ttls.push((o.cache_control as Json).ttl ?? '5m');
      if (o.content !== undefined) visit(o.content);
    }
  };
  visit(body);
  visit(body.system);
  visit(body.tools);
  visit(body.messages);
  const hours = ttls.filter((t) => t === '1h').length;
  if (hours === 0) return 0;
  return hours === ttls.length ? cacheWrite : Math.floor(cacheWrite / 2);
}

function answer(kit: MockKit, res: ServerResponse, s: Scenario, body: Json): void {
  const model = body.model as string;
  const msgs = body.messages as Json[];
  const cap = body.max_tokens as number;
  const prompt = countAnthropicPromptTokens(body);
  const { cacheRead, cacheWrite } = cacheSplit(s, prompt);
  const input = prompt - cacheRead - cacheWrite;
  const forHour = hourWrites(body, cacheWrite);
  const cacheCreation = {
    ephemeral_5m_input_tokens: cacheWrite - forHour,
    ephemeral_1h_input_tokens: forHour,
  };
  const id = `msg_${kit.nextId()}`;
  const j = jsonWriter(s);

  // What the model "says": a tool call, or thinking + text pieces (one token each).
  const tool = toolToCall(body);
  const seed = hashText(anthropicSeedText(msgs));
  const thinking = tool ? [] : generatePieces(seed ^ 0x5bd1e995, Math.min(s.reasoningTokens ?? 0, cap));
  const want = s.completionTokens ?? DEFAULT_COMPLETION_TOKENS;
  const room = cap - thinking.length;
  let pieces = tool ? [] : generatePieces(seed, Math.max(0, Math.min(want, room)));
  let stopReason = tool ? 'tool_use' : want > room ? 'max_tokens' : 'end_turn';
  let stopSequence: string | null = null;
  // Generation ends before the piece with which a stop sequence would complete.
  const stops = Array.isArray(body.stop_sequences)
    ? ((body.stop_sequences as unknown[]).filter((x) => typeof x === 'string') as string[])
    : [];
  if (stops.length > 0) {
    let text = '';
    for (let i = 0; i < pieces.length; i++) {
      text += pieces[i];
      const hit = stops.find((x) => text.includes(x));
      if (hit !== undefined) {
        pieces = pieces.slice(0, i);
        stopReason = 'stop_sequence';
        stopSequence = hit;
        break;
      }
    }
  }
  const toolInput = tool ? argsFromSchema(tool.input_schema) : null;
  const toolId = `toolu_${kit.nextId()}`;
  const toolJson = toolInput ? JSON.stringify(toolInput) : '';
  const toolTokens = tool ? countTextTokens(String(tool.name)) + countTextTokens(toolJson) : 0;
  const output = thinking.length + pieces.length + toolTokens;
  const signature = Buffer.from(`mole-${id}`).toString('base64');
  // The web search tool's calls and results, run before the answer (server-side).
  const searches = searchBlocks(kit, body, s);
  const serverToolUse =
    searches.length > 0 ? { server_tool_use: { web_search_requests: searches.length / 2 } } : {};

  const usage = (): Json =>
    s.omitUsage
      ? { input_tokens: 0, output_tokens: 0 }
      : {
          input_tokens: input,
          cache_creation_input_tokens: cacheWrite,
          cache_read_input_tokens: cacheRead,
          cache_creation: cacheCreation,
          output_tokens: output,
          ...(thinking.length > 0 ? { output_tokens_details: { thinking_tokens: thinking.length } } : {}),
          ...serverToolUse,
          service_tier: 'standard',
        };

  if (s.errorInBody) {
    kit.sendJson(
      res,
      200,
      j(errorJson('overloaded_error', s.errorMessage ?? 'Overloaded', `req_${kit.nextId()}`)),
      headersFor(kit, s, JSON_CT),
    );
    return;
  }

  if (body.stream !== true) {
    const content: Json[] = [];
    if (thinking.length > 0) content.push({ type: 'thinking', thinking: thinking.join(''), signature });
    content.push(...searches);
    if (tool) content.push({ type: 'tool_use', id: toolId, name: tool.name, input: toolInput });
    else content.push({ type: 'text', text: pieces.join('') });
    const out = {
      id,
      type: 'message',
      role: 'assistant',
      model,
      content,
      stop_reason: stopReason,
      stop_sequence: stopSequence,
      usage: usage(),
    };
    kit.sendJson(res, 200, j(out), headersFor(kit, s, JSON_CT));
    return;
  }

  const ev = (type: string, payload: Json) => `event: ${type}\ndata: ${j({ type, ...payload })}\n\n`;
  const frames: EventFrame[] = [];
  const startUsage = s.omitUsage
    ? { input_tokens: 0, output_tokens: 0 }
    : {
        input_tokens: input,
        cache_creation_input_tokens: cacheWrite,
        cache_read_input_tokens: cacheRead,
        cache_creation: cacheCreation,
        output_tokens: 1,
        service_tier: 'standard',
      };
  frames.push({
    kind: 'head',
    text: ev('message_start', {
      message: {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: startUsage,
      },
    }),
  });
  let index = 0;
  if (thinking.length > 0) {
    frames.push({
      kind: 'head',
      text: ev('content_block_start', {
        index,
        content_block: { type: 'thinking', thinking: '', signature: '' },
      }),
    });
    for (const p of thinking)
      frames.push({
        kind: 'content',
        text: ev('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: p } }),
      });
    frames.push({
      kind: 'content',
      text: ev('content_block_delta', { index, delta: { type: 'signature_delta', signature } }),
    });
    frames.push({ kind: 'content', text: ev('content_block_stop', { index }) });
    index++;
  }
  // As Anthropic streams them: a server_tool_use block whose input comes as one JSON delta,
  // then its result block whole (before the content chunks a scenario counts).
  for (const block of searches) {
    const opening = block.type === 'server_tool_use' ? { ...block, input: {} } : block;
    frames.push({ kind: 'head', text: ev('content_block_start', { index, content_block: opening }) });
    if (block.type === 'server_tool_use')
      frames.push({
        kind: 'head',
        text: ev('content_block_delta', {
          index,
          delta: { type: 'input_json_delta', partial_json: JSON.stringify(block.input) },
        }),
      });
    frames.push({ kind: 'head', text: ev('content_block_stop', { index }) });
    index++;
  }
  if (tool) {
    frames.push({
      kind: 'head',
      text: ev('content_block_start', {
        index,
        content_block: { type: 'tool_use', id: toolId, name: tool.name, input: {} },
      }),
    });
    frames.push({ kind: 'head', text: ev('ping', {}) });
    // Like Anthropic: an empty first partial_json, then the JSON in pieces.
    const half = Math.ceil(toolJson.length / 2);
    for (const part of ['', toolJson.slice(0, half), toolJson.slice(half)])
      frames.push({
        kind: 'content',
        text: ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: part } }),
      });
  } else {
    frames.push({
      kind: 'head',
      text: ev('content_block_start', { index, content_block: { type: 'text', text: '' } }),
    });
    frames.push({ kind: 'head', text: ev('ping', {}) });
    for (const p of pieces)
      frames.push({
        kind: 'content',
        text: ev('content_block_delta', { index, delta: { type: 'text_delta', text: p } }),
      });
  }
  frames.push({ kind: 'tail', text: ev('content_block_stop', { index }) });
  const endUsage = s.omitUsage
    ? { output_tokens: 0 }
    : {
        input_tokens: input,
        cache_creation_input_tokens: cacheWrite,
        cache_read_input_tokens: cacheRead,
        output_tokens: output,
        ...(thinking.length > 0 ? { output_tokens_details: { thinking_tokens: thinking.length } } : {}),
        ...serverToolUse,
      };
  frames.push({
    kind: 'tail',
    text: ev('message_delta', {
      delta: { stop_reason: stopReason, stop_sequence: stopSequence },
      usage: endUsage,
    }),
  });
  frames.push({ kind: 'tail', text: ev('message_stop', {}) });
  sendStream(kit, res, s, frames);
}

/**
 * The content blocks of the searches the web search tool runs for `body`: a `server_tool_use`
 * and its `web_search_tool_result` each, as many as the scenario says (1 by default) within
 * the tool's `max_uses`. None when the request offers no such tool.
 */
function searchBlocks(kit: MockKit, body: Json, s: Scenario): Json[] {
  const tool = Array.isArray(body.tools)
    ? (body.tools as unknown[]).find(
        (t): t is Json => isJsonObject(t) && typeof t.type === 'string' && t.type.startsWith('web_search_'),
      )
    : undefined;
  if (!tool) return [];
  const bound = typeof tool.max_uses === 'number' ? tool.max_uses : Number.POSITIVE_INFINITY;
  const n = Math.min(s.webSearches ?? 1, bound);
  const blocks: Json[] = [];
  for (let i = 0; i < n; i++) {
    const id = `srvtoolu_${kit.nextId()}`;
    blocks.push(
      { type: 'server_tool_use', id, name: 'web_search', input: { query: `mock query ${i + 1}` } },
      {
        type: 'web_search_tool_result',
        tool_use_id: id,
        content: [
          {
            type: 'web_search_result',
            title: `Result ${i + 1}`,
            url: `https://example.com/${i + 1}`,
            encrypted_content: Buffer.from(`mock result ${i + 1}`).toString('base64'),
            page_age: null,
          },
        ],
      },
    );
  }
  return blocks;
}

/** Writes frames honouring chunkDelayMs, garbageAfterChunks, midStreamError, cutAfterChunks, hangMs. */
function sendStream(kit: MockKit, res: ServerResponse, s: Scenario, frames: EventFrame[]): void {
  const garbage = 'event: content_block_delta\ndata: {broken\n\n';
  const { out, cut } = scriptedFrames(s, frames, garbage, () => {
    const body = errorJson('overloaded_error', s.errorMessage ?? 'Overloaded', `req_${kit.nextId()}`);
    return `event: error\ndata: ${jsonWriter(s)(body)}\n\n`;
  });
  res.writeHead(200, { ...headersFor(kit, s, SSE_CT), 'cache-control': 'no-cache' });
  res.flushHeaders();
  kit.writeFrames(res, s, out, cut);
}
