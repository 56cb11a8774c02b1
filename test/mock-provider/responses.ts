// OpenAI Responses: POST /v1/responses (plain and `stream: true`).
//
// An independent implementation of OpenAI's Responses wire protocol (it imports nothing from
// src/relay): Response objects and the named `response.*` SSE events exactly as the `openai`
// SDK (`responses.create`, `responses.stream(...).finalResponse()`) and Codex parse them,
// OpenAI's error bodies ({"error":{message,type,param,code}}), Bearer credentials, and the same
// scenarios and deterministic text as the chat handlers (see README.md, "OpenAI Responses").
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import {
  argsFromSchema,
  openAiAuthError,
  cacheSplit,
  type EventFrame,
  invalidRequest,
  isJsonObject,
  type Json,
  jsonWriter,
  type MockKit,
  type MockRequest,
  OpenAiRequestError,
  openAiHeaders,
  playScenario,
  type ProtocolRoutes,
  requiredParam,
  scriptedFrames,
  sendOpenAiRequestError,
  sendOpenAiScenarioError,
} from './kit.js';
import {
  chatSeedText,
  countChatPromptTokens,
  countTextTokens,
  DEFAULT_COMPLETION_TOKENS,
  piecesFor,
  type Scenario,
  servedTier,
} from './server.js';

/** Scenario fields beyond the chat handlers' (optional everywhere; see README). */
type RScenario = Scenario & {
  /** `input_tokens_details.cache_write_tokens` (clamped to what is left after cache reads). */
  cacheWriteTokens?: number;
  /** Reason this many tokens first: a reasoning item, counted in output_tokens. */
  reasoningTokens?: number;
  /** HTTP 200 whose body is a `failed` Response (plain requests). */
  errorInBody?: boolean;
  /** Streams: an `error` event after N content chunks, then the stream ends. */
  midStreamError?: number;
  /** With midStreamError: a `response.failed` event (with the usage so far) instead of `error`. */
  failedEvent?: boolean;
  /** JSON with a space after ':' and ',' (like Python's json.dumps). */
  spacedJson?: boolean;
};

const JSON_CT = 'application/json';
const SSE_CT = 'text/event-stream; charset=utf-8';
/** max_output_tokens has a floor of 16 at OpenAI. */
const MIN_OUTPUT = 16;

// ── prompt counting and seed text (see README) ─────────────────────────────────────────────

/**
 * The request as chat messages, for counting and seeding: `instructions` → a system message;
 * message items as they are; a function_call → an assistant message with that tool call;
 * a function_call_output → a tool message with the output; other items are left out.
 */
export function responsesChatMessages(body: Json): Json[] {
  const out: Json[] = [];
  if (typeof body.instructions === 'string') out.push({ role: 'system', content: body.instructions });
  const input = body.input;
  if (typeof input === 'string') out.push({ role: 'user', content: input });
  else if (Array.isArray(input))
    for (const item of input) {
      if (!isJsonObject(item)) continue;
      const type = item.type ?? 'message';
      if (type === 'message') out.push({ role: item.role, content: item.content });
      else if (type === 'function_call')
        out.push({
          role: 'assistant',
          content: null,
          tool_calls: [{ type: 'function', function: { name: item.name, arguments: item.arguments } }],
        });
      else if (type === 'function_call_output') out.push({ role: 'tool', content: item.output });
    }
  return out;
}

/** input_tokens of a Responses request: the chat rule over `responsesChatMessages`, plus tools. */
export function countResponsesPromptTokens(body: Json): number {
  const tools = Array.isArray(body.tools) && body.tools.length > 0 ? body.tools : undefined;
  return countChatPromptTokens(responsesChatMessages(body), tools);
}

/** The exact text the mock answers to this request (`tokens` tokens). */
export function expectedResponsesText(body: Json, tokens = DEFAULT_COMPLETION_TOKENS): string {
  return piecesFor(chatSeedText(responsesChatMessages(body)), tokens).join('');
}

// ── validation (OpenAI's wording) ──────────────────────────────────────────────────────────

const ROLES = ['assistant', 'system', 'developer', 'user'];

function validate(body: unknown): Json {
  if (!isJsonObject(body))
    throw invalidRequest(
      `Invalid type for body: expected an object, but got ${Array.isArray(body) ? 'an array' : typeof body} instead.`,
    );
  const model = body.model;
  if (model === undefined || model === null || model === '')
    throw invalidRequest("Missing required parameter: 'model'.", 'model', 'missing_required_parameter');
  if (typeof model !== 'string')
    throw invalidRequest(
      `Invalid type for 'model': expected a string, but got ${typeof model} instead.`,
      'model',
      'invalid_type',
    );
  const input = requiredParam(body, 'input');
  if (typeof input !== 'string' && !Array.isArray(input))
    throw invalidRequest(
      `Invalid type for 'input': expected one of a string or an array of input items, but got ${typeof input} instead.`,
      'input',
      'invalid_type',
    );
  const calls = new Set<string>();
  if (Array.isArray(input))
    input.forEach((item, i) => {
      if (!isJsonObject(item))
        throw invalidRequest(
          `Invalid type for 'input[${i}]': expected an object, but got ${item === null ? 'null' : typeof item} instead.`,
          `input[${i}]`,
          'invalid_type',
        );
      const type = item.type ?? 'message';
      if (type === 'message') {
        if (typeof item.role !== 'string' || !ROLES.includes(item.role))
          throw invalidRequest(
            `Invalid value: '${String(item.role)}'. Supported values are: 'assistant', 'system', 'developer', and 'user'.`,
            `input[${i}].role`,
            'invalid_value',
          );
        if (typeof item.content !== 'string' && !Array.isArray(item.content))
          throw invalidRequest(
            `Invalid type for 'input[${i}].content': expected one of a string or an array of input content, but got ${typeof item.content} instead.`,
            `input[${i}].content`,
            'invalid_type',
          );
      } else if (type === 'function_call') {
        for (const k of ['call_id', 'name', 'arguments'])
          if (typeof item[k] !== 'string')
            throw invalidRequest(
              `Missing required parameter: 'input[${i}].${k}'.`,
              `input[${i}].${k}`,
              'missing_required_parameter',
            );
        calls.add(item.call_id as string);
      }
      // OpenAI holds a call_id to 64 characters.
      if ((type === 'function_call' || type === 'function_call_output') && String(item.call_id).length > 64)
        throw invalidRequest(
          `Invalid 'input[${i}].call_id': string too long. Expected a string with maximum length 64, but got a string with length ${String(item.call_id).length} instead.`,
          `input[${i}].call_id`,
          'string_above_max_length',
        );
      if (type === 'function_call_output') {
        if (!calls.has(String(item.call_id)))
          throw invalidRequest(
            `No tool call found for function call output with call_id ${String(item.call_id)}.`,
            'input',
          );
      }
    });
  if (body.tools !== undefined && body.tools !== null) {
    if (!Array.isArray(body.tools))
      throw invalidRequest(
        "Invalid type for 'tools': expected an array, but got an object instead.",
        'tools',
      );
    body.tools.forEach((t, i) => {
      if (!isJsonObject(t) || typeof t.type !== 'string')
        throw invalidRequest(`Missing required parameter: 'tools[${i}].type'.`, `tools[${i}].type`);
      if (t.type === 'function' && typeof t.name !== 'string')
        throw invalidRequest(
          `Missing required parameter: 'tools[${i}].name'.`,
          `tools[${i}].name`,
          'missing_required_parameter',
        );
    });
  }
  const s = body.stream;
  if (s !== undefined && s !== null && typeof s !== 'boolean')
    throw invalidRequest(
      `Invalid type for 'stream': expected a boolean, but got ${typeof s} instead.`,
      'stream',
      'invalid_type',
    );
  const cap = body.max_output_tokens;
  if (cap !== undefined && cap !== null) {
    if (typeof cap !== 'number' || !Number.isInteger(cap))
      throw invalidRequest(
        `Invalid type for 'max_output_tokens': expected an integer, but got ${typeof cap === 'number' ? 'a decimal' : typeof cap} instead.`,
        'max_output_tokens',
        'invalid_type',
      );
    if (cap < MIN_OUTPUT)
      throw invalidRequest(
        `Invalid 'max_output_tokens': integer below minimum value. Expected a value >= ${MIN_OUTPUT}, but got ${cap} instead.`,
        'max_output_tokens',
        'integer_below_min_value',
      );
  }
  return body;
}

// ── tool use (same deterministic rule as every mock protocol) ──────────────────────────────

/** The function tool the mock calls, or null when it answers text. */
function toolToCall(body: Json): Json | null {
  const tools = Array.isArray(body.tools)
    ? (body.tools as unknown[]).filter((t): t is Json => isJsonObject(t) && t.type === 'function')
    : [];
  if (tools.length === 0 || body.tool_choice === 'none') return null;
  const input = body.input;
  if (Array.isArray(input)) {
    const last = input[input.length - 1];
    if (!isJsonObject(last) || (last.type ?? 'message') !== 'message' || last.role !== 'user') return null;
  }
  const tc = body.tool_choice;
  if (isJsonObject(tc) && tc.type === 'function') return tools.find((t) => t.name === tc.name) ?? tools[0]!;
  return tools[0]!;
}

// ── answering ───────────────────────────────────────────────────────────────────────────────

const headersFor = (kit: MockKit, s: Scenario, contentType: string): OutgoingHttpHeaders =>
  openAiHeaders(`req_${kit.nextId()}`, s, contentType);

/**
 * The responses each mock stored (`store` not false), as OpenAI keeps them for the account
 * that made them, each with its context (what it took in plus what it wrote): a follow-up
 * naming one is billed that context as input, as OpenAI bills it; one naming another is refused.
 */
const storedResponses = new WeakMap<MockKit, Map<string, number>>();
const STORED_MAX = 10_000;

function storedOf(kit: MockKit): Map<string, number> {
  let ids = storedResponses.get(kit);
  if (!ids) {
    ids = new Map();
    storedResponses.set(kit, ids);
  }
  return ids;
}

function checkPrevious(kit: MockKit, body: Json): void {
  const prev = body.previous_response_id;
  if (prev !== undefined && prev !== null && !storedOf(kit).has(String(prev)))
    throw invalidRequest(
      `Previous response with id '${String(prev)}' not found.`,
      'previous_response_id',
      'previous_response_not_found',
    );
}

function answer(kit: MockKit, res: ServerResponse, s: RScenario, body: Json): void {
  const model = body.model as string;
  const cap = typeof body.max_output_tokens === 'number' ? body.max_output_tokens : Infinity;
  const previous = body.previous_response_id;
  const context = previous == null ? 0 : (storedOf(kit).get(String(previous)) ?? 0);
  const prompt = countResponsesPromptTokens(body) + context;
  const { cacheRead, cacheWrite } = cacheSplit(s, prompt);
  const base = kit.nextId();
  const id = `resp_${base}`;
  const j = jsonWriter(s);
  const createdAt = Math.floor(Date.now() / 1000);

  // What the model "says": reasoning tokens, then a tool call or text pieces (one token each).
  const tool = toolToCall(body);
  const reasoning = Math.min(s.reasoningTokens ?? 0, cap);
  const want = s.completionTokens ?? DEFAULT_COMPLETION_TOKENS;
  const room = cap - reasoning;
  const pieces = tool
    ? []
    : piecesFor(chatSeedText(responsesChatMessages(body)), Math.max(0, Math.min(want, room)));
  const incomplete = !tool && want > room;
  const args = tool ? JSON.stringify(argsFromSchema(tool.parameters)) : '';
  const toolTokens = tool ? countTextTokens(String(tool.name)) + countTextTokens(args) : 0;
  const output = reasoning + pieces.length + toolTokens;
  if (body.store !== false) {
    const ids = storedOf(kit);
    ids.set(id, prompt + output);
    if (ids.size > STORED_MAX) ids.delete(ids.keys().next().value!);
  }
  const usage = s.omitUsage
    ? null
    : {
        input_tokens: prompt,
        input_tokens_details: { cached_tokens: cacheRead, cache_write_tokens: cacheWrite },
        output_tokens: output,
        output_tokens_details: { reasoning_tokens: reasoning },
        total_tokens: prompt + output,
      };

  const rsItem = { id: `rs_${base}`, type: 'reasoning', summary: [] };
  const msgId = `msg_${base}`;
  const text = pieces.join('');
  const textPart = (t: string) => ({ type: 'output_text', annotations: [], logprobs: [], text: t });
  const msgItem = (status: string, t: string) => ({
    id: msgId,
    type: 'message',
    status,
    content: status === 'in_progress' ? [] : [textPart(t)],
    role: 'assistant',
  });
  const fcItem = (status: string, a: string) => ({
    id: `fc_${base}`,
    type: 'function_call',
    status,
    arguments: a,
    call_id: `call_${base}`,
    name: tool?.name,
  });
  // The hosted web search's calls, run before the answer: one `web_search_call` item each.
  const searches = searchItems(body, s, base);
  const finalOutput: Json[] = [];
  if (reasoning > 0) finalOutput.push(rsItem);
  finalOutput.push(...searches);
  finalOutput.push(tool ? fcItem('completed', args) : msgItem(incomplete ? 'incomplete' : 'completed', text));

  const responseJson = (status: string, out: Json[], extra: Json = {}): Json => ({
    id,
    object: 'response',
    created_at: createdAt,
    status,
    background: false,
    billing: { payer: 'developer' },
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    max_tool_calls: body.max_tool_calls ?? null,
    model,
    output: out,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    prompt_cache_key: body.prompt_cache_key ?? null,
    reasoning: {
      effort: isJsonObject(body.reasoning) ? (body.reasoning.effort ?? null) : null,
      summary: null,
    },
    safety_identifier: null,
    service_tier: servedTier(s, body),
    store: body.store ?? true,
    temperature: body.temperature ?? 1,
    text: body.text ?? { format: { type: 'text' }, verbosity: 'medium' },
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    top_logprobs: 0,
    top_p: body.top_p ?? 1,
    truncation: 'disabled',
    usage: null,
    user: null,
    metadata: body.metadata ?? {},
    ...extra,
  });
  const finished = (): Json =>
    responseJson(incomplete ? 'incomplete' : 'completed', finalOutput, {
      incomplete_details: incomplete ? { reason: 'max_output_tokens' } : null,
      usage,
    });

  if (s.errorInBody) {
    const failed = responseJson('failed', [], {
      error: {
        code: 'server_error',
        message: s.errorMessage ?? 'The server had an error while processing your request. Sorry about that!',
      },
    });
    kit.sendJson(res, 200, j(failed), headersFor(kit, s, JSON_CT));
    return;
  }
  if (body.stream !== true) {
    kit.sendJson(res, 200, j(finished()), headersFor(kit, s, JSON_CT));
    return;
  }

  let seq = 0;
  const ev = (type: string, payload: Json) =>
    `event: ${type}\ndata: ${j({ type, sequence_number: seq++, ...payload })}\n\n`;
  const frames: EventFrame[] = [];
  const head = (type: string, payload: Json) => frames.push({ kind: 'head', text: ev(type, payload) });
  const inProgress = responseJson('in_progress', []);
  head('response.created', { response: inProgress });
  head('response.in_progress', { response: inProgress });
  let index = 0;
  if (reasoning > 0) {
    head('response.output_item.added', { output_index: index, item: rsItem });
    head('response.output_item.done', { output_index: index, item: rsItem });
    index++;
  }
  for (const item of searches) {
    const ref = { output_index: index, item_id: item.id };
    head('response.output_item.added', { output_index: index, item: { ...item, status: 'in_progress' } });
    head('response.web_search_call.in_progress', ref);
    head('response.web_search_call.searching', ref);
    head('response.web_search_call.completed', ref);
    head('response.output_item.done', { output_index: index, item });
    index++;
  }
  if (tool) {
    const ref = { item_id: `fc_${base}`, output_index: index };
    head('response.output_item.added', { output_index: index, item: fcItem('in_progress', '') });
    const half = Math.ceil(args.length / 2);
    for (const part of [args.slice(0, half), args.slice(half)])
      frames.push({
        kind: 'content',
        text: ev('response.function_call_arguments.delta', { ...ref, delta: part, obfuscation: 'mole' }),
      });
    frames.push({
      kind: 'tail',
      text: ev('response.function_call_arguments.done', { ...ref, arguments: args }),
    });
    frames.push({
      kind: 'tail',
      text: ev('response.output_item.done', { output_index: index, item: fcItem('completed', args) }),
    });
  } else {
    const ref = { item_id: msgId, output_index: index, content_index: 0 };
    head('response.output_item.added', { output_index: index, item: msgItem('in_progress', '') });
    head('response.content_part.added', { ...ref, part: textPart('') });
    for (const p of pieces)
      frames.push({
        kind: 'content',
        text: ev('response.output_text.delta', { ...ref, delta: p, logprobs: [], obfuscation: 'mole' }),
      });
    const tail = (type: string, payload: Json) => frames.push({ kind: 'tail', text: ev(type, payload) });
    tail('response.output_text.done', { ...ref, text, logprobs: [] });
    tail('response.content_part.done', { ...ref, part: textPart(text) });
    tail('response.output_item.done', {
      output_index: index,
      item: msgItem(incomplete ? 'incomplete' : 'completed', text),
    });
  }
  frames.push({
    kind: 'tail',
    text: ev(incomplete ? 'response.incomplete' : 'response.completed', { response: finished() }),
  });
  const error = {
    code: s.errorCode ?? 'server_error',
    message: s.errorMessage ?? 'The server had an error while processing your request. Sorry about that!',
  };
  sendStream(kit, res, s, frames, () =>
    s.failedEvent
      ? ev('response.failed', {
          response: responseJson('failed', [], {
            error,
            usage: usage && {
              ...usage,
              output_tokens: s.midStreamError,
              output_tokens_details: { reasoning_tokens: 0 },
              total_tokens: usage.input_tokens + (s.midStreamError ?? 0),
            },
          }),
        })
      : ev('error', { ...error, param: null }),
  );
}

/**
 * The `web_search_call` items of the searches OpenAI's hosted web search runs for `body`: as
 * many as the scenario says (1 by default) within `max_tool_calls`. None without the tool.
 */
function searchItems(body: Json, s: RScenario, base: string): Json[] {
  const offered =
    Array.isArray(body.tools) &&
    body.tools.some((t) => isJsonObject(t) && typeof t.type === 'string' && t.type.startsWith('web_search'));
  if (!offered) return [];
  const bound = typeof body.max_tool_calls === 'number' ? body.max_tool_calls : Number.POSITIVE_INFINITY;
  return Array.from({ length: Math.min(s.webSearches ?? 1, bound) }, (_, i) => ({
    id: `ws_${base}_${i}`,
    type: 'web_search_call',
    status: 'completed',
    action: { type: 'search', query: `mock query ${i + 1}` },
  }));
}

/** Writes frames honouring chunkDelayMs, garbageAfterChunks, midStreamError, cutAfterChunks, hangMs. */
function sendStream(
  kit: MockKit,
  res: ServerResponse,
  s: RScenario,
  frames: EventFrame[],
  errorFrame: () => string,
) {
  const garbage = 'event: response.output_text.delta\ndata: {broken\n\n';
  const { out, cut } = scriptedFrames(s, frames, garbage, errorFrame);
  res.writeHead(200, { ...headersFor(kit, s, SSE_CT), 'cache-control': 'no-cache' });
  res.flushHeaders();
  kit.writeFrames(res, s, out, cut);
}

// ── route ───────────────────────────────────────────────────────────────────────────────────

function checkAuth(kit: MockKit, r: MockRequest): OpenAiRequestError | null {
  return openAiAuthError(kit.apiKey, r.req.headers.authorization);
}

export const responsesRoutes: ProtocolRoutes = (kit, r) => {
  if (r.route !== '/v1/responses') return false;
  const { res } = r;
  try {
    const authError = checkAuth(kit, r);
    if (authError) throw authError;
    if (r.method !== 'POST')
      throw new OpenAiRequestError(
        404,
        `Invalid URL (${r.method} ${r.route})`,
        'invalid_request_error',
        null,
        null,
      );
    if (r.parseFailed)
      throw invalidRequest(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
      );
    const body = validate(r.body);
    checkPrevious(kit, body);
    const s = kit.pickScenario(body.model as string) as RScenario;
    playScenario(
      kit,
      res,
      s,
      body.stream === true,
      () => sendOpenAiScenarioError(kit, res, s, body.model as string),
      () => answer(kit, res, s, body),
    );
  } catch (e) {
    if (e instanceof OpenAiRequestError) sendOpenAiRequestError(kit, res, e);
    else throw e;
  }
  return true;
};
