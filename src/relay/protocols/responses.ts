// OpenAI's Responses API (`POST /v1/responses`): what Codex CLI and the Vercel AI SDK's
// default `openai('model')` speak. Ingress: typed input items → canonical request, canonical
// answers and streams → Response objects and the complete `response.*` event sequence.
// Egress: canonical request → a Responses body, Response objects and streams → canonical.
//
// Translation limits (documented, deliberate):
// - Hosted tools (web_search, file_search, code_interpreter, mcp, …) only run at OpenAI: they
//   are dropped when translating (Codex declares some by default; refusing them would make
//   Codex unusable on any other model). A `tool_choice` that forces one is refused.
// - `namespace` tools (Codex's sub-agent and MCP tools) are flattened to `{namespace}__{name}`;
//   calls go back with their own name and their `namespace`. Tools declared in an
//   `additional_tools` input item (newer Codex model families) count like `tools`.
// - Freeform `custom` tools (Codex's `apply_patch`) run at the client: when translating they
//   become function tools taking one string, `input` (their grammar in its description), and
//   the model's calls go back as `custom_tool_call` items; `custom_tool_call` /
//   `custom_tool_call_output` input items become tool calls and results.
// - `previous_response_id`, `conversation`, `prompt` templates and `item_reference` items need
//   OpenAI's stored state: refused when translating (send the full history with `store: false`);
//   references to reasoning items (`rs_…`) are left out like reasoning items themselves.
// - `input_file` parts and `input_image` by `file_id` cannot be carried: refused when translating.
// - Reasoning items in the input and `reasoning` settings have no canonical form: dropped when
//   translating. A `text.format` of `json_schema` / `json_object` becomes a system instruction
//   (the schema in words), so structured output still works on models without that switch.
//   Pass-through sends everything verbatim.
import { ERROR_CATALOGUE, type ErrorCode } from '../../http/errors.js';
import {
  type CanonicalAnswer,
  type CanonicalRequest,
  type CanonicalUsage,
  type Message,
  type Part,
  type SseFrame,
  type StopReason,
  StreamBroken,
  type StreamDecoder,
  type StreamEncoder,
  type StreamEvent,
  type Tool,
  type ToolCall,
  type ToolChoice,
  type ResponseFormat,
} from '../canonical.js';
import { sseFrame } from '../sse.js';
import {
  askedTier,
  DecodeState,
  decoder,
  fittedCallId,
  headersNamed,
  parseDataUrl,
  searchesHeld,
  shownSearches,
  statedTierName,
  tierOf,
} from './common.js';
import { FrameShape } from './frame-shape.js';
import { bytesStartWith, FrameVerdict, ScannedPassThrough } from './pass-through.js';
import { ascii, JSON_OBJECT, JSON_TYPE_TWICE, scanJson } from './json-scan.js';
import { definitionsOf, type PromptCount, promptCount, schemaOf } from '../tokens.js';
import type { IngressRequest, ProtocolCodec, RouteInfo } from './types.js';
import {
  appendMember,
  asSent,
  bad,
  checkModelName,
  isObject as isObj,
  type Json,
  parseObject,
  settingsOf,
  positiveInt,
} from './json.js';

/** OpenAI's longest `call_id` in a Responses input (longer: 400 "string too long"). */
const CALL_ID_MAX = 64;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const int = (v: unknown): number =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0;

// ── request validation ───────────────────────────────────────────────────────────────────────

const ROLES = new Set(['user', 'assistant', 'system', 'developer']);

function checkContent(content: unknown, param: string): void {
  if (typeof content === 'string') return;
  if (!Array.isArray(content)) throw bad(`"${param}" must be a string or an array of content parts`, param);
  content.forEach((p, j) => {
    if (!isObj(p) || typeof p.type !== 'string')
      throw bad(`"${param}[${j}]" must be a content part object with a "type"`, `${param}[${j}]`);
    if ((p.type === 'input_text' || p.type === 'output_text') && typeof p.text !== 'string')
      throw bad(`"${param}[${j}].text" must be a string`, `${param}[${j}].text`);
  });
}

function checkItem(item: unknown, i: number): void {
  const param = `input[${i}]`;
  if (!isObj(item)) throw bad(`"${param}" must be an object (an input item)`, param);
  const type = item.type ?? (item.role !== undefined ? 'message' : undefined);
  if (typeof type !== 'string') throw bad(`"${param}.type" is required`, `${param}.type`);
  if (type === 'message') {
    if (typeof item.role !== 'string' || !ROLES.has(item.role))
      throw bad(`"${param}.role" must be one of "user", "assistant", "system", "developer"`, `${param}.role`);
    checkContent(item.content, `${param}.content`);
  } else if (type === 'function_call') {
    for (const k of ['call_id', 'name', 'arguments'])
      if (typeof item[k] !== 'string') throw bad(`"${param}.${k}" must be a string`, `${param}.${k}`);
  } else if (type === 'function_call_output' || type === 'custom_tool_call_output') {
    if (typeof item.call_id !== 'string')
      throw bad(`"${param}.call_id" must be a string`, `${param}.call_id`);
    checkContent(item.output, `${param}.output`);
  } else if (type === 'custom_tool_call') {
    for (const k of ['call_id', 'name', 'input'])
      if (typeof item[k] !== 'string') throw bad(`"${param}.${k}" must be a string`, `${param}.${k}`);
  }
  // Other item types (reasoning, web_search_call, item_reference, …) pass through untouched.
}

function optNumber(body: Json, name: string): number | null {
  const v = body[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`"${name}" must be a number`, name);
  return v;
}

/** Content as the chat counter reads it: parts other than text and images (files, audio) by their JSON text. */
function countable(content: unknown): unknown {
  if (!Array.isArray(content)) return content;
  return content.map((p) =>
    isObj(p) && typeof p.text !== 'string' && p.type !== 'input_image' && p.type !== 'input_file'
      ? { type: 'input_text', text: JSON.stringify(p) }
      : p,
  );
}

/** The local prompt count: instructions, every input item, tool definitions. */
function promptOf(body: Json): PromptCount {
  const msgs: unknown[] = [];
  if (typeof body.instructions === 'string') msgs.push({ content: body.instructions });
  const input = body.input;
  if (typeof input === 'string') msgs.push({ content: input });
  else if (Array.isArray(input))
    for (const item of input) {
      if (!isObj(item)) continue;
      const type = item.type ?? 'message';
      if (type === 'message') msgs.push({ content: countable(item.content) });
      else if (type === 'function_call')
        msgs.push({ content: '', tool_calls: { name: item.name, arguments: item.arguments } });
      else if (type === 'function_call_output' || type === 'custom_tool_call_output')
        msgs.push({ content: countable(item.output) });
      // Reasoning (encrypted or not), hosted tool calls…: their JSON text bounds them from above.
      else msgs.push({ content: JSON.stringify(item) });
    }
  const tools = Array.isArray(body.tools) && body.tools.length > 0 ? body.tools : undefined;
  const text = body.text;
  return promptCount(msgs, definitionsOf(tools, schemaOf(isObj(text) ? text.format : undefined)));
}

// ── request → canonical ─────────────────────────────────────────────────────────────────────

function partsOf(content: unknown, param: string): Part[] {
  if (typeof content === 'string') return content ? [{ type: 'text', text: content }] : [];
  if (!Array.isArray(content)) return [];
  const out: Part[] = [];
  content.forEach((p, j) => {
    if (!isObj(p)) return;
    const at = `${param}[${j}]`;
    switch (p.type) {
      case 'input_text':
      case 'output_text':
      case 'text':
        if (typeof p.text === 'string') out.push({ type: 'text', text: p.text });
        return;
      case 'refusal':
        if (typeof p.refusal === 'string') out.push({ type: 'text', text: p.refusal });
        return;
      case 'input_image': {
        const url = str(p.image_url) ?? (isObj(p.image_url) ? str(p.image_url.url) : undefined);
        if (!url)
          throw bad(
            `"${at}": an image by file_id lives in OpenAI's file store and cannot reach this model's channel; send image_url (an https or data: URL)`,
            at,
          );
        const d = p.detail;
        const detail =
          d === 'low' || d === 'high' || d === 'auto' ? d : d === 'original' ? 'high' : undefined;
        out.push(detail ? { type: 'image', url, detail } : { type: 'image', url });
        return;
      }
      case 'input_file': {
        const data = str(p.file_data);
        const d = data ? parseDataUrl(data) : null;
        const url = str(p.file_url);
        const name = str(p.filename) ? { name: str(p.filename)! } : {};
        if (d) out.push({ type: 'file', mediaType: d.mediaType, url: data!, ...name });
        else if (url) out.push({ type: 'file', mediaType: 'application/pdf', url, ...name });
        else
          throw bad(
            `"${at}": a file by file_id lives in OpenAI's file store and cannot reach this model's channel; send file_data (a data: URL) or file_url`,
            at,
          );
        return;
      }
      default:
        throw bad(
          `"${at}": content parts of type "${String(p.type)}" cannot be translated for this model's channel (only text, images and files can)`,
          at,
        );
    }
  });
  return out;
}

function toolChoiceOf(tc: unknown, hasTools: boolean, declaredHosted: boolean): ToolChoice | null {
  if (tc === undefined || tc === null) return null;
  if (tc === 'auto' || tc === 'none' || tc === 'required') {
    if (!hasTools) {
      if (tc === 'required' && declaredHosted)
        throw bad(
          '"tool_choice": "required" with only hosted tools (web_search, file_search, …): they run only at OpenAI, not on this model\'s channel',
          'tool_choice',
        );
      return null;
    }
    return tc;
  }
  if (isObj(tc)) {
    if ((tc.type === 'function' || tc.type === 'custom') && typeof tc.name === 'string')
      return { name: flatName(str(tc.namespace), tc.name) };
    if (tc.type === 'allowed_tools') {
      if (!hasTools) return null;
      return tc.mode === 'required' ? 'required' : 'auto';
    }
    throw bad(
      `"tool_choice" forces the hosted tool "${String(tc.type)}", which runs only at OpenAI, not on this model's channel`,
      'tool_choice',
    );
  }
  throw bad('"tool_choice" must be "auto", "none", "required" or an object', 'tool_choice');
}

/** `text.format` asking for JSON, as the canonical response format. */
function responseFormatOf(text: unknown): ResponseFormat | null {
  const f = isObj(text) && isObj(text.format) ? text.format : null;
  if (f?.type === 'json_object') return { type: 'json_object' };
  if (f?.type !== 'json_schema' || !isObj(f.schema)) return null;
  return {
    type: 'json_schema',
    name: typeof f.name === 'string' ? f.name : 'response',
    schema: f.schema,
    strict: f.strict === true,
  };
}

/** A tool the client runs: a function or a freeform `custom` tool, maybe inside a namespace. */
interface ClientTool {
  tool: Json & { name: string };
  custom: boolean;
  /** The `namespace` tool it was declared in (its calls carry that namespace). */
  namespace?: string;
}

/** The name a namespaced tool has when translated (tool names allow `[A-Za-z0-9_-]` only). */
const flatName = (namespace: string | undefined, name: string) =>
  namespace ? `${namespace}__${name}` : name;

/**
 * The client-run tools a request declares, by their translated name: functions, freeform
 * `custom` tools (Codex's `apply_patch`), and both inside `namespace` tools (Codex's
 * sub-agent and MCP tools), which become `{namespace}__{name}`; those of `additional_tools`
 * input items too.
 */
function clientTools(body: Json): Map<string, ClientTool> {
  const out = new Map<string, ClientTool>();
  const add = (t: unknown, namespace?: string) => {
    if (!isObj(t) || typeof t.name !== 'string') return;
    if (t.type !== 'function' && t.type !== 'custom') return;
    const tool = t as Json & { name: string };
    out.set(flatName(namespace, tool.name), { tool, custom: t.type === 'custom', namespace });
  };
  const declare = (tools: unknown) => {
    if (!Array.isArray(tools)) return;
    for (const t of tools) {
      if (isObj(t) && t.type === 'namespace' && typeof t.name === 'string' && Array.isArray(t.tools))
        for (const inner of t.tools) add(inner, t.name);
      else add(t);
    }
  };
  declare(body.tools);
  // Newer Codex model families declare their tools in an `additional_tools` input item.
  if (Array.isArray(body.input))
    for (const item of body.input) if (isObj(item) && item.type === 'additional_tools') declare(item.tools);
  return out;
}

/** A call's item fields for the client: its own name, and its namespace when it has one. */
function callName(tools: Map<string, ClientTool>, name: string): Json & { name: string } {
  const t = tools.get(name);
  return t?.namespace ? { name: t.tool.name, namespace: t.namespace } : { name };
}

/** A freeform tool as a function tool taking its raw text as one string, `input`. */
function customAsFunction(t: Json & { name: string }): Tool {
  const f = isObj(t.format) ? t.format : null;
  const grammar =
    f?.type === 'grammar' && typeof f.definition === 'string'
      ? ` It must follow this ${typeof f.syntax === 'string' ? f.syntax : ''} grammar:\n${f.definition}`
      : '';
  const tool: Tool = {
    name: t.name,
    parameters: {
      type: 'object',
      properties: {
        input: {
          type: 'string',
          description: `The tool's whole input as plain text (the text itself, not JSON).${grammar}`,
        },
      },
      required: ['input'],
      additionalProperties: false,
    },
  };
  // Its own description may say "freeform, not JSON": say how to call it here.
  const how = 'Call it with one argument, "input": the raw text.';
  tool.description = typeof t.description === 'string' ? `${t.description}\n\n${how}` : how;
  return tool;
}

/** What a translated call of a freeform tool carries: the `input` string of its arguments. */
function customInput(args: string): string {
  const j = parseObject(args);
  // not a JSON object: the model wrote the raw text itself
  return j !== undefined && typeof j.input === 'string' ? j.input : args;
}

function toCanonical(r: IngressRequest): CanonicalRequest {
  const b = r.body;
  for (const k of ['previous_response_id', 'conversation', 'prompt'] as const)
    if (b[k] !== undefined && b[k] !== null)
      throw bad(
        `"${k}" needs OpenAI's stored responses and cannot be honoured on this model's channel; send the whole conversation in "input" (with "store": false)`,
        k,
      );
  const system: string[] = [];
  if (typeof b.instructions === 'string' && b.instructions) system.push(b.instructions);
  const messages: Message[] = [];
  const names = new Map<string, string>();
  const input = b.input;
  if (typeof input === 'string') messages.push({ role: 'user', content: [{ type: 'text', text: input }] });
  else if (Array.isArray(input)) {
    input.forEach((raw, i) => {
      if (!isObj(raw)) return;
      const at = `input[${i}]`;
      const type = raw.type ?? 'message';
      const last = messages[messages.length - 1];
      if (type === 'message') {
        const role = raw.role;
        const parts = partsOf(raw.content, `${at}.content`);
        if (role === 'system' || role === 'developer') {
          const text = parts
            .filter((p) => p.type === 'text')
            .map((p) => (p as { text: string }).text)
            .join('\n');
          if (text) system.push(text);
        } else if (role === 'assistant') {
          if (last?.role === 'assistant' && last.toolCalls.length === 0) last.content.push(...parts);
          else messages.push({ role: 'assistant', content: parts, toolCalls: [] });
        } else if (last?.role === 'user') last.content.push(...parts);
        else messages.push({ role: 'user', content: parts });
      } else if (type === 'function_call' || type === 'custom_tool_call') {
        const call: ToolCall = {
          id: String(raw.call_id),
          name: flatName(str(raw.namespace), String(raw.name)),
          arguments:
            type === 'custom_tool_call'
              ? JSON.stringify({ input: String(raw.input) })
              : String(raw.arguments),
        };
        names.set(call.id, call.name);
        if (last?.role === 'assistant') last.toolCalls.push(call);
        else messages.push({ role: 'assistant', content: [], toolCalls: [call] });
      } else if (type === 'function_call_output' || type === 'custom_tool_call_output') {
        const id = String(raw.call_id);
        const name = names.get(id);
        const content = partsOf(raw.output, `${at}.output`);
        messages.push(
          name ? { role: 'tool', toolCallId: id, name, content } : { role: 'tool', toolCallId: id, content },
        );
      } else if (type === 'item_reference' && !String(raw.id).startsWith('rs_')) {
        // A reference to a reasoning item (the AI SDK sends them when `store` is on) is left
        // out like reasoning itself; one to a message or call would lose part of the dialogue.
        throw bad(
          `"${at}": item_reference points at an item stored by OpenAI and cannot be resolved on this model's channel; send the item itself (set "store": false; with the Vercel AI SDK: providerOptions.openai.store = false)`,
          at,
        );
      }
      // reasoning, hosted tool calls and unknown item types: no canonical form, left out.
    });
  }
  const tools: Tool[] = [];
  let declaredHosted = false;
  if (Array.isArray(b.tools))
    for (const t of b.tools) {
      if (!isObj(t)) continue;
      if (t.type !== 'function' && t.type !== 'custom' && t.type !== 'namespace') declaredHosted = true;
    }
  for (const [name, { tool: t, custom }] of clientTools(b)) {
    if (custom) {
      tools.push({ ...customAsFunction(t), name });
      continue;
    }
    const tool: Tool = {
      name,
      parameters: isObj(t.parameters) ? t.parameters : { type: 'object', properties: {} },
      // Only when asked outright: Responses' default (strict) would refuse many clients' schemas elsewhere.
      ...(t.strict === true ? { strict: true } : {}),
    };
    if (typeof t.description === 'string') tool.description = t.description;
    tools.push(tool);
  }
  return {
    system,
    messages,
    tools,
    toolChoice: toolChoiceOf(b.tool_choice, tools.length > 0, declaredHosted),
    maxOutputTokens: typeof b.max_output_tokens === 'number' ? b.max_output_tokens : null,
    temperature: typeof b.temperature === 'number' ? b.temperature : null,
    topP: typeof b.top_p === 'number' ? b.top_p : null,
    stop: [],
    stream: r.stream,
    responseFormat: responseFormatOf(b.text),
    parallelToolCalls: typeof b.parallel_tool_calls === 'boolean' ? b.parallel_tool_calls : null,
    settings: settingsOf({ user: b.safety_identifier ?? b.user, promptCacheKey: b.prompt_cache_key }),
  };
}

// ── canonical → request (egress) ────────────────────────────────────────────────────────────

function inputParts(parts: Part[], role: 'user' | 'assistant'): Json[] {
  return parts.map((p) =>
    p.type === 'text'
      ? { type: role === 'assistant' ? 'output_text' : 'input_text', text: p.text }
      : p.type === 'image'
        ? { type: 'input_image', image_url: p.url, detail: p.detail ?? 'auto' }
        : parseDataUrl(p.url)
          ? { type: 'input_file', filename: p.name ?? 'document.pdf', file_data: p.url }
          : { type: 'input_file', file_url: p.url },
  );
}

function fromCanonical(c: CanonicalRequest, upstreamModel: string, outputCap: number): unknown {
  const input: Json[] = [];
  for (const m of c.messages) {
    if (m.role === 'user')
      input.push({ type: 'message', role: 'user', content: inputParts(m.content, 'user') });
    else if (m.role === 'assistant') {
      if (m.content.length > 0)
        input.push({
          type: 'message',
          role: 'assistant',
          content: inputParts(
            m.content.filter((p) => p.type === 'text'),
            'assistant',
          ),
        });
      for (const t of m.toolCalls)
        input.push({
          type: 'function_call',
          call_id: fittedCallId(t.id, CALL_ID_MAX),
          name: t.name,
          arguments: t.arguments,
        });
    } else {
      const only = m.content.length === 1 && m.content[0]?.type === 'text' ? m.content[0].text : null;
      input.push({
        type: 'function_call_output',
        call_id: fittedCallId(m.toolCallId, CALL_ID_MAX),
        output: only ?? (m.content.length === 0 ? '' : inputParts(m.content, 'user')),
      });
    }
  }
  const body: Json = { model: upstreamModel, input };
  if (c.system.length > 0) body.instructions = c.system.join('\n\n');
  if (c.tools.length > 0)
    body.tools = c.tools.map((t) => ({
      type: 'function',
      name: t.name,
      ...(t.description !== undefined ? { description: t.description } : {}),
      parameters: t.parameters,
      strict: t.strict === true,
    }));
  if (c.tools.length > 0 && c.parallelToolCalls === false) body.parallel_tool_calls = false;
  if (c.toolChoice !== null)
    body.tool_choice =
      typeof c.toolChoice === 'string' ? c.toolChoice : { type: 'function', name: c.toolChoice.name };
  body.max_output_tokens = outputCap;
  const rf = c.responseFormat;
  if (rf)
    body.text = {
      format:
        rf.type === 'json_object'
          ? { type: 'json_object' }
          : { type: 'json_schema', name: rf.name, schema: rf.schema, strict: rf.strict },
    };
  if (c.temperature !== null) body.temperature = c.temperature;
  if (c.topP !== null) body.top_p = c.topP;
  if (c.settings?.user !== undefined) body.user = c.settings.user;
  if (c.settings?.promptCacheKey !== undefined) body.prompt_cache_key = c.settings.promptCacheKey;
  // Responses has no stop sequences: c.stop cannot be sent.
  body.store = false;
  if (c.stream) body.stream = true;
  return body;
}

// ── usage ───────────────────────────────────────────────────────────────────────────────────

/** Responses usage → canonical: input_tokens includes cache reads (and writes). */
function readUsage(u: unknown): CanonicalUsage | null {
  if (!isObj(u)) return null;
  const inDetails = isObj(u.input_tokens_details) ? u.input_tokens_details : {};
  const outDetails = isObj(u.output_tokens_details) ? u.output_tokens_details : {};
  const input = int(u.input_tokens);
  const cacheRead = Math.min(int(inDetails.cached_tokens), input);
  const cacheWrite = Math.min(int(inDetails.cache_write_tokens), input - cacheRead);
  return {
    input: input - cacheRead - cacheWrite,
    cacheRead,
    cacheWrite,
    output: int(u.output_tokens),
    reasoning: int(outDetails.reasoning_tokens),
  };
}

/** Canonical usage in Responses terms: input_tokens is all input, cached_tokens inside it. */
function usageJson(u: CanonicalUsage): Json {
  const input = u.input + u.cacheRead + u.cacheWrite;
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: u.cacheRead, cache_write_tokens: u.cacheWrite },
    output_tokens: u.output,
    output_tokens_details: { reasoning_tokens: u.reasoning },
    total_tokens: input + u.output,
  };
}

// ── answers ─────────────────────────────────────────────────────────────────────────────────

const idPart = (s: string) => s.replace(/[^A-Za-z0-9]/g, '').slice(0, 48) || Date.now().toString(36);
const responseId = (id: string) => (id.startsWith('resp_') ? id : `resp_${idPart(id)}`);

function incompleteOf(stop: StopReason): Json | null {
  if (stop === 'length') return { reason: 'max_output_tokens' };
  if (stop === 'content_filter') return { reason: 'content_filter' };
  return null;
}

/** The request's settings a Response object echoes (as OpenAI does). */
function echo(r: IngressRequest): Json {
  const b = r.body;
  return {
    instructions: typeof b.instructions === 'string' ? b.instructions : null,
    max_output_tokens: typeof b.max_output_tokens === 'number' ? b.max_output_tokens : null,
    parallel_tool_calls: typeof b.parallel_tool_calls === 'boolean' ? b.parallel_tool_calls : true,
    previous_response_id: null,
    reasoning: { effort: isObj(b.reasoning) ? (b.reasoning.effort ?? null) : null, summary: null },
    store: false,
    temperature: typeof b.temperature === 'number' ? b.temperature : 1,
    text: isObj(b.text) ? b.text : { format: { type: 'text' } },
    tool_choice: b.tool_choice ?? 'auto',
    tools: Array.isArray(b.tools) ? b.tools : [],
    top_p: typeof b.top_p === 'number' ? b.top_p : 1,
    truncation: 'disabled',
    metadata: isObj(b.metadata) ? b.metadata : {},
  };
}

function responseObject(
  r: IngressRequest,
  id: string,
  model: string,
  createdAt: number,
  status: string,
  output: Json[],
  extra: Json,
): Json {
  return {
    id,
    object: 'response',
    created_at: createdAt,
    status,
    background: false,
    error: null,
    incomplete_details: null,
    ...echo(r),
    model,
    output,
    usage: null,
    user: null,
    ...extra,
  };
}

const textPart = (text: string): Json => ({ type: 'output_text', annotations: [], logprobs: [], text });

function encodeAnswer(a: CanonicalAnswer, r: IngressRequest): unknown {
  const id = responseId(a.id);
  const base = idPart(a.id);
  const output: Json[] = [];
  if (a.reasoning)
    output.push({
      id: `rs_${base}`,
      type: 'reasoning',
      summary: [],
      content: [{ type: 'reasoning_text', text: a.reasoning }],
    });
  if (a.text || a.toolCalls.length === 0)
    output.push({
      id: `msg_${base}`,
      type: 'message',
      status: a.stopReason === 'length' ? 'incomplete' : 'completed',
      role: 'assistant',
      content: [textPart(a.text)],
    });
  const tools = clientTools(r.body);
  for (const [i, t] of a.toolCalls.entries())
    output.push(
      tools.get(t.name)?.custom
        ? {
            id: `ctc_${base}_${i}`,
            type: 'custom_tool_call',
            status: 'completed',
            call_id: t.id,
            ...callName(tools, t.name),
            input: customInput(t.arguments),
          }
        : {
            id: `fc_${base}_${i}`,
            type: 'function_call',
            status: 'completed',
            arguments: t.arguments,
            call_id: t.id,
            ...callName(tools, t.name),
          },
    );
  const incomplete = incompleteOf(a.stopReason);
  const now = Math.floor(Date.now() / 1000);
  return responseObject(r, id, a.model || r.model, now, incomplete ? 'incomplete' : 'completed', output, {
    completed_at: incomplete ? null : now,
    incomplete_details: incomplete,
    usage: a.usage ? usageJson(a.usage) : null,
  });
}

function answerError(json: unknown): string | null {
  if (!isObj(json)) return 'upstream answered 2xx without a JSON object';
  if (isObj(json.error)) return str(json.error.message) ?? JSON.stringify(json.error);
  if (json.type === 'error') return str(json.message) ?? 'upstream reported an error';
  if (json.status === 'failed') return 'upstream response failed';
  if (!Array.isArray(json.output)) return 'upstream answered 2xx without a Response object (no "output")';
  return null;
}

function reasoningText(item: Json): string {
  const texts: string[] = [];
  for (const key of ['content', 'summary'])
    if (Array.isArray(item[key]))
      for (const p of item[key] as unknown[]) if (isObj(p) && typeof p.text === 'string') texts.push(p.text);
  return texts.join('\n');
}

function stopOf(status: unknown, incomplete: unknown, toolCalls: number): StopReason {
  if (status === 'incomplete') {
    const reason = isObj(incomplete) ? incomplete.reason : undefined;
    return reason === 'content_filter' ? 'content_filter' : 'length';
  }
  return toolCalls > 0 ? 'tool_calls' : 'stop';
}

function decodeAnswer(json: unknown): CanonicalAnswer {
  const j = isObj(json) ? json : {};
  let text = '';
  let reasoning = '';
  let refused = false;
  const toolCalls: ToolCall[] = [];
  if (Array.isArray(j.output))
    for (const item of j.output) {
      if (!isObj(item)) continue;
      if (item.type === 'message' && Array.isArray(item.content)) {
        for (const p of item.content) {
          if (!isObj(p)) continue;
          if (p.type === 'output_text' && typeof p.text === 'string') text += p.text;
          else if (p.type === 'refusal' && typeof p.refusal === 'string') {
            text += p.refusal;
            refused = true;
          }
        }
      } else if (item.type === 'function_call')
        toolCalls.push({
          id: str(item.call_id) ?? str(item.id) ?? `call_${toolCalls.length}`,
          name: str(item.name) ?? '',
          arguments: str(item.arguments) ?? '',
        });
      else if (item.type === 'reasoning') reasoning += reasoningText(item);
    }
  const stop = stopOf(j.status, j.incomplete_details, toolCalls.length);
  return {
    id: str(j.id) ?? '',
    model: str(j.model) ?? '',
    text,
    reasoning,
    toolCalls,
    stopReason: refused && stop === 'stop' ? 'content_filter' : stop,
    usage: usageOf(j),
    ...shownSearches(searchCalls(j.output)),
    ...tierOf(j.service_tier),
  };
}

// ── stream decoder (egress) ─────────────────────────────────────────────────────────────────

function streamDecoder(_r: IngressRequest): StreamDecoder {
  const state = new DecodeState();
  let started = false;
  /** output_index → tool call index, and how much of its arguments came as deltas. */
  const calls = new Map<number, { index: number; args: number }>();
  /** output_index of message items whose text came as deltas. */
  const textSeen = new Set<number>();
  const reasoningSeen = new Set<number>();
  let refused = false;

  const startCall = (events: StreamEvent[], out: number, item: Json) => {
    const index = calls.size;
    calls.set(out, { index, args: 0 });
    events.push({
      type: 'tool_call',
      index,
      id: str(item.call_id) ?? str(item.id) ?? `call_${index}`,
      name: str(item.name) ?? '',
    });
    return calls.get(out)!;
  };

  const finish = (events: StreamEvent[], response: unknown) => {
    const resp = isObj(response) ? response : {};
    state.report(events, usageOf(resp, Math.max(searchCalls(resp.output), state.webSearches)));
    let reason = stopOf(resp.status, resp.incomplete_details, calls.size);
    if (refused && reason === 'stop') reason = 'content_filter';
    events.push({ type: 'stop', reason });
    state.done = true;
  };

  return decoder(state, (frame) => {
    const j = parseObject(frame.data);
    if (j === undefined)
      throw new StreamBroken(`upstream sent an unreadable Responses event: ${frame.data.slice(0, 200)}`);
    const type = str(j.type) ?? frame.event ?? '';
    const events: StreamEvent[] = [];
    const out = typeof j.output_index === 'number' ? j.output_index : -1;
    if (!started && type !== 'error') {
      const resp = isObj(j.response) ? j.response : {};
      events.push({ type: 'start', id: str(resp.id) ?? '', model: str(resp.model) ?? '' });
      started = true;
    }
    // The response says its tier from the start ("auto" until it is known).
    if (
      isObj(j.response) &&
      typeof j.response.service_tier === 'string' &&
      j.response.service_tier !== 'auto'
    )
      state.serviceTier = statedTierName(j.response.service_tier);
    switch (type) {
      case 'response.output_text.delta':
      case 'response.refusal.delta':
        if (typeof j.delta === 'string' && j.delta) {
          textSeen.add(out);
          if (type === 'response.refusal.delta') refused = true;
          events.push({ type: 'text', text: j.delta });
        }
        break;
      case 'response.reasoning_text.delta':
      case 'response.reasoning_summary_text.delta':
        if (typeof j.delta === 'string' && j.delta) {
          reasoningSeen.add(out);
          events.push({ type: 'reasoning', text: j.delta });
        }
        break;
      case 'response.output_item.added':
        if (isObj(j.item) && j.item.type === 'function_call' && !calls.has(out)) {
          const c = startCall(events, out, j.item);
          const args = str(j.item.arguments);
          if (args) {
            c.args += args.length;
            events.push({ type: 'tool_args', index: c.index, delta: args });
          }
        }
        break;
      case 'response.function_call_arguments.delta': {
        const c = calls.get(out);
        if (c && typeof j.delta === 'string' && j.delta) {
          c.args += j.delta.length;
          events.push({ type: 'tool_args', index: c.index, delta: j.delta });
        }
        break;
      }
      case 'response.function_call_arguments.done': {
        const c = calls.get(out);
        const args = str(j.arguments);
        if (c && args && c.args === 0) {
          c.args = args.length;
          events.push({ type: 'tool_args', index: c.index, delta: args });
        }
        break;
      }
      case 'response.output_item.done': {
        // The authoritative item: whatever did not come as deltas comes from here.
        const item = isObj(j.item) ? j.item : {};
        if (item.type === 'function_call') {
          const c = calls.get(out) ?? startCall(events, out, item);
          const args = str(item.arguments);
          if (args && c.args === 0) {
            c.args = args.length;
            events.push({ type: 'tool_args', index: c.index, delta: args });
          }
        } else if (item.type === 'message' && !textSeen.has(out) && Array.isArray(item.content)) {
          textSeen.add(out);
          for (const p of item.content) {
            if (!isObj(p)) continue;
            if (p.type === 'output_text' && typeof p.text === 'string' && p.text)
              events.push({ type: 'text', text: p.text });
            else if (p.type === 'refusal' && typeof p.refusal === 'string' && p.refusal) {
              refused = true;
              events.push({ type: 'text', text: p.refusal });
            }
          }
        } else if (item.type === 'web_search_call') state.webSearches++;
        else if (item.type === 'reasoning' && !reasoningSeen.has(out)) {
          reasoningSeen.add(out);
          const text = reasoningText(item);
          if (text) events.push({ type: 'reasoning', text });
        }
        break;
      }
      case 'response.completed':
      case 'response.incomplete':
        finish(events, j.response);
        break;
      case 'response.failed': {
        const resp = isObj(j.response) ? j.response : {};
        const err = isObj(resp.error) ? resp.error : {};
        // What the failed response used is billed as the upstream counted it.
        state.report([], usageOf(resp));
        const message = str(err.message) ?? 'no reason given';
        throw new StreamBroken(`upstream response failed: ${message}`, {
          code: str(err.code) ?? null,
          message,
        });
      }
      case 'error': {
        const err = isObj(j.error) ? j.error : j;
        const message = str(err.message) ?? frame.data.slice(0, 200);
        throw new StreamBroken(`upstream stream error: ${message}`, { code: str(err.code) ?? null, message });
      }
      default:
        // created, in_progress, content_part.*, *.done echoes, hosted tool progress: nothing new.
        break;
    }
    return { events };
  });
}

/** The delta events that carry a stream's text, as their data begins (`type` written first). */
const DELTAS = [
  'response.output_text.delta',
  'response.function_call_arguments.delta',
  'response.reasoning_text.delta',
  'response.reasoning_summary_text.delta',
].map((type) => ascii(`{"type":"${type}",`));

/**
 * The pass-through check's judge (Responses to a Responses channel: Codex's path). Most of a
 * stream's events are deltas of text or tool arguments, and `feed` neither throws on them nor
 * changes `done` or `usage` when their data is a JSON object whose only top-level `type` names
 * one: those are only scanned (scanJson, or its answer for a delta of the last one's shape:
 * FrameShape) and kept for their text; every other frame is decoded.
 */
function judgeFrame(
  b: Buffer,
  _eventStart: number,
  _eventEnd: number,
  start: number,
  end: number,
  shape: FrameShape | null,
): FrameVerdict {
  if (!DELTAS.some((prefix) => bytesStartWith(b, start, end, prefix))) return FrameVerdict.Decode;
  // A delta shaped like the last one scanned (but for its sequence number) is spared the scan.
  const flags = shape ? shape.scan(b, start, end) : scanJson(b, start, end);
  return (flags & (JSON_OBJECT | JSON_TYPE_TWICE)) === JSON_OBJECT ? FrameVerdict.Keep : FrameVerdict.Decode;
}

/**
 * The pass-through check of a Responses stream, which also remembers what a failure frame
 * must continue: the response the upstream announced (response.created, decoded, is the
 * first frame) and how many frames went out, since OpenAI numbers them from 0 one by one.
 */
class ResponsesPassThrough extends ScannedPassThrough {
  private frames = 0;
  private announced: { id: string; model: string; createdAt: number } | null = null;
  /** Inside checkEventBytes, whose decoded frames come through check as well. */
  private viaBytes = false;

  constructor(private readonly r: IngressRequest) {
    super(
      () => streamDecoder(r),
      judgeFrame,
      null,
      new FrameShape('delta', 'obfuscation', 'sequence_number'),
    );
  }

  // A frame counts once checked: one the check refuses (an error event) never reaches the client.
  override checkEventBytes(
    b: Buffer,
    eventStart: number,
    eventEnd: number,
    start: number,
    end: number,
  ): boolean {
    this.viaBytes = true;
    let hide: boolean;
    try {
      hide = super.checkEventBytes(b, eventStart, eventEnd, start, end);
    } finally {
      this.viaBytes = false;
    }
    if (this.frames++ === 0) this.announce(b.toString('utf8', start, end));
    return hide;
  }

  override check(frame: SseFrame): boolean {
    const hide = super.check(frame);
    if (!this.viaBytes && this.frames++ === 0) this.announce(frame.data);
    return hide;
  }

  private announce(data: string): void {
    try {
      const first = JSON.parse(data) as Json;
      const resp = isObj(first.response) ? first.response : null;
      if (resp && typeof resp.id === 'string')
        this.announced = {
          id: resp.id,
          model: typeof resp.model === 'string' ? resp.model : this.r.model,
          createdAt: typeof resp.created_at === 'number' ? resp.created_at : Math.floor(Date.now() / 1000),
        };
    } catch {
      // Not JSON: the decoder refuses the stream; no failure frame follows an unread one.
    }
  }

  get answerId(): string | null {
    return this.announced?.id ?? null;
  }

  error(code: string, message: string, upstream = false): string {
    const a = this.announced;
    if (a === null) return streamEncoder(this.r, '').error(code, message);
    const resp = responseObject(this.r, a.id, a.model, a.createdAt, 'failed', [], {
      error: { code: upstream ? code : failedCode(code), message },
    });
    return sseFrame(
      JSON.stringify({ type: 'response.failed', sequence_number: this.frames, response: resp }),
      'response.failed',
    );
  }
}

// ── stream encoder (ingress) ────────────────────────────────────────────────────────────────

interface OpenItem {
  kind: 'message' | 'reasoning' | 'function_call' | 'custom_tool_call';
  outputIndex: number;
  id: string;
  text: string;
  /** function calls */
  callId?: string;
  name?: string;
}

/** Codes `response.failed` carries: the ones Codex acts on, else OpenAI's generic one. */
function failedCode(code: string): string {
  return code === 'rate_limit_exceeded' || code === 'insufficient_quota' || code === 'context_length_exceeded'
    ? code
    : 'server_error';
}

function streamEncoder(r: IngressRequest, requestId: string): StreamEncoder {
  let seq = 0;
  let id = responseId(requestId);
  let model = r.model;
  let base = idPart(requestId);
  const createdAt = Math.floor(Date.now() / 1000);
  let started = false;
  let stop: StopReason | null = null;
  /** Finished output items, in output order (for the final Response object). */
  const output: Json[] = [];
  let current: OpenItem | null = null;
  /** Open function calls by canonical tool-call index. */
  const openCalls = new Map<number, OpenItem>();
  let nextIndex = 0;
  const tools = clientTools(r.body);

  const emit = (type: string, payload: Json) =>
    sseFrame(JSON.stringify({ type, sequence_number: seq++, ...payload }), type);

  const snapshot = (status: string, extra: Json = {}) =>
    responseObject(r, id, model, createdAt, status, [...output], extra);

  const start = (): string => {
    if (started) return '';
    started = true;
    const resp = snapshot('in_progress');
    return emit('response.created', { response: resp }) + emit('response.in_progress', { response: resp });
  };

  const itemJson = (it: OpenItem, status: string): Json => {
    if (it.kind === 'message')
      return { id: it.id, type: 'message', status, role: 'assistant', content: [textPart(it.text)] };
    if (it.kind === 'reasoning')
      return {
        id: it.id,
        type: 'reasoning',
        summary: [],
        content: [{ type: 'reasoning_text', text: it.text }],
      };
    if (it.kind === 'custom_tool_call')
      return {
        id: it.id,
        type: 'custom_tool_call',
        status,
        call_id: it.callId,
        ...callName(tools, it.name ?? ''),
        input: status === 'in_progress' ? '' : customInput(it.text),
      };
    return {
      id: it.id,
      type: 'function_call',
      status,
      arguments: it.text,
      call_id: it.callId,
      ...callName(tools, it.name ?? ''),
    };
  };

  const closeItem = (it: OpenItem): string => {
    const status = it.kind === 'message' && stop === 'length' ? 'incomplete' : 'completed';
    let s = '';
    const ref = { item_id: it.id, output_index: it.outputIndex };
    if (it.kind === 'message') {
      s += emit('response.output_text.done', { ...ref, content_index: 0, text: it.text, logprobs: [] });
      s += emit('response.content_part.done', { ...ref, content_index: 0, part: textPart(it.text) });
    } else if (it.kind === 'reasoning') {
      s += emit('response.reasoning_text.done', { ...ref, content_index: 0, text: it.text });
      s += emit('response.content_part.done', {
        ...ref,
        content_index: 0,
        part: { type: 'reasoning_text', text: it.text },
      });
    } else if (it.kind === 'custom_tool_call') {
      // The arguments came as JSON ({"input": "…"}): the raw input goes out whole, once.
      const input = customInput(it.text);
      if (input) s += emit('response.custom_tool_call_input.delta', { ...ref, delta: input });
      s += emit('response.custom_tool_call_input.done', { ...ref, input });
    } else {
      s += emit('response.function_call_arguments.done', {
        ...ref,
        name: callName(tools, it.name ?? '').name,
        arguments: it.text,
      });
    }
    const item = itemJson(it, status);
    output[it.outputIndex] = item;
    s += emit('response.output_item.done', { output_index: it.outputIndex, item });
    return s;
  };

  /** Closes the open message/reasoning item and every open function call. */
  const closeAll = (): string => {
    let s = '';
    const open = [...(current ? [current] : []), ...openCalls.values()].sort(
      (a, b) => a.outputIndex - b.outputIndex,
    );
    current = null;
    openCalls.clear();
    for (const it of open) s += closeItem(it);
    return s;
  };

  const open = (kind: 'message' | 'reasoning'): string => {
    let s = start();
    if (current?.kind === kind && openCalls.size === 0) return s;
    s += closeAll();
    const outputIndex = nextIndex++;
    const it: OpenItem = {
      kind,
      outputIndex,
      id: `${kind === 'message' ? 'msg' : 'rs'}_${base}_${outputIndex}`,
      text: '',
    };
    current = it;
    const added =
      kind === 'message'
        ? { id: it.id, type: 'message', status: 'in_progress', role: 'assistant', content: [] }
        : { id: it.id, type: 'reasoning', summary: [], content: [] };
    output[outputIndex] = added;
    s += emit('response.output_item.added', { output_index: outputIndex, item: added });
    s += emit('response.content_part.added', {
      item_id: it.id,
      output_index: outputIndex,
      content_index: 0,
      part: kind === 'message' ? textPart('') : { type: 'reasoning_text', text: '' },
    });
    return s;
  };

  /** Adds text to the open message or reasoning item, opening it first where need be. */
  const appendText = (kind: 'message' | 'reasoning', text: string): string => {
    if (!text) return '';
    const s = open(kind);
    const it = current!;
    it.text += text;
    if (kind === 'message')
      // The frame nearly every event of an answer becomes, as `emit` writes it: without the
      // spreads, a sixth of the cost.
      return `${s}event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":${seq++},"item_id":${JSON.stringify(it.id)},"output_index":${it.outputIndex},"content_index":0,"delta":${JSON.stringify(text)},"logprobs":[]}\n\n`;
    const delta = { item_id: it.id, output_index: it.outputIndex, content_index: 0, delta: text };
    return s + emit('response.reasoning_text.delta', delta);
  };

  return {
    event(e) {
      switch (e.type) {
        case 'start':
          if (!started) {
            if (e.model) model = e.model;
            if (e.id) {
              id = responseId(e.id);
              base = idPart(e.id);
            }
          }
          return start();
        case 'text':
          return appendText('message', e.text);
        case 'reasoning':
          return appendText('reasoning', e.text);
        case 'tool_call': {
          let s = start();
          if (current) {
            const it = current;
            current = null;
            s += closeItem(it);
          }
          const outputIndex = nextIndex++;
          const custom = tools.get(e.name)?.custom === true;
          const it: OpenItem = {
            kind: custom ? 'custom_tool_call' : 'function_call',
            outputIndex,
            id: `${custom ? 'ctc' : 'fc'}_${base}_${outputIndex}`,
            text: '',
            callId: e.id,
            name: e.name,
          };
          openCalls.set(e.index, it);
          const item = itemJson(it, 'in_progress');
          output[outputIndex] = item;
          return s + emit('response.output_item.added', { output_index: outputIndex, item });
        }
        case 'tool_args': {
          const it = openCalls.get(e.index);
          if (!it || !e.delta) return '';
          it.text += e.delta;
          if (it.kind === 'custom_tool_call') return '';
          return emit('response.function_call_arguments.delta', {
            item_id: it.id,
            output_index: it.outputIndex,
            delta: e.delta,
          });
        }
        case 'stop':
          stop = e.reason;
          return '';
        case 'usage':
          return '';
      }
    },
    finish(usage) {
      let s = start();
      s += closeAll();
      const reason =
        stop ??
        (output.some((o) => o.type === 'function_call' || o.type === 'custom_tool_call')
          ? 'tool_calls'
          : 'stop');
      const incomplete = incompleteOf(reason);
      const now = Math.floor(Date.now() / 1000);
      const resp = snapshot(incomplete ? 'incomplete' : 'completed', {
        completed_at: incomplete ? null : now,
        incomplete_details: incomplete,
        usage: usageJson(usage),
      });
      return s + emit(incomplete ? 'response.incomplete' : 'response.completed', { response: resp });
    },
    // Never opens a response: on pass-through the upstream's own response.created went out
    // already, and this (fresh) encoder only closes the stream.
    error(code, message) {
      const resp = snapshot('failed', { error: { code: failedCode(code), message } });
      return emit('response.failed', { response: resp });
    },
  };
}

// ── errors and headers ──────────────────────────────────────────────────────────────────────

function typeForStatus(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

function errorBody(status: number, code: string, message: string, _requestId: string, param?: string | null) {
  const known = (ERROR_CATALOGUE as Record<string, { type: string }>)[code];
  return {
    error: {
      message,
      type: known ? ERROR_CATALOGUE[code as ErrorCode].type : typeForStatus(status),
      param: param ?? null,
      code,
    },
  };
}

/**
 * Headers that go upstream on pass-through: OpenAI's beta switch and the session headers
 * Codex sends (OpenAI routes prompt caching by them). Credentials and organisation headers
 * belong to the client's own account, never to the channel's: not forwarded.
 */
const FORWARDED = new Set([
  'openai-beta',
  'originator',
  'session_id',
  'session-id',
  'conversation_id',
  'thread-id',
]);

// ── the codec ───────────────────────────────────────────────────────────────────────────────

function parseRequest(body: Json, _route: RouteInfo, defaultMaxOutput: number): IngressRequest {
  const model = checkModelName(body.model);
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean')
    throw bad('"stream" must be a boolean', 'stream');
  const input = body.input;
  if (input === undefined || input === null) {
    if (body.previous_response_id == null && body.conversation == null && body.prompt == null)
      throw bad('"input" is required: a string or an array of input items', 'input');
  } else if (typeof input !== 'string' && !Array.isArray(input))
    throw bad('"input" must be a string or an array of input items', 'input');
  else if (Array.isArray(input)) input.forEach(checkItem);
  if (body.instructions !== undefined && body.instructions !== null && typeof body.instructions !== 'string')
    throw bad('"instructions" must be a string', 'instructions');
  if (body.tools !== undefined && body.tools !== null) {
    if (!Array.isArray(body.tools)) throw bad('"tools" must be an array', 'tools');
    body.tools.forEach((t, i) => {
      if (!isObj(t) || typeof t.type !== 'string')
        throw bad(`"tools[${i}]" must be an object with a "type"`, `tools[${i}]`);
      if (t.type === 'function') {
        if (typeof t.name !== 'string' || !t.name)
          throw bad(`"tools[${i}].name" must be a non-empty string`, `tools[${i}].name`);
        if (t.parameters !== undefined && t.parameters !== null && !isObj(t.parameters))
          throw bad(`"tools[${i}].parameters" must be a JSON Schema object`, `tools[${i}].parameters`);
      }
    });
  }
  const tc = body.tool_choice;
  if (tc !== undefined && tc !== null && typeof tc !== 'string' && !isObj(tc))
    throw bad('"tool_choice" must be a string or an object', 'tool_choice');
  // A background response is fetched later at GET /v1/responses/{id}, which no relay route
  // serves (and a translated answer is never stored): refused rather than lost.
  if (body.background === true)
    throw bad(
      '"background": true is not supported through this gateway (its answer could not be retrieved); send the request without it, streaming if it is long',
      'background',
    );
  optNumber(body, 'temperature');
  optNumber(body, 'top_p');
  const own = positiveInt(body, 'max_output_tokens');
  return {
    protocol: 'responses',
    operation: 'generate',
    model,
    stream: body.stream === true,
    ...promptOf(body),
    maxOutputTokens: own ?? defaultMaxOutput,
    maxWebSearches: searchesHeld(
      Array.isArray(body.tools) && body.tools.some(isWebSearchTool),
      body.max_tool_calls,
    ),
    impliedOutputCap: own === undefined ? defaultMaxOutput : null,
    clientWantsUsage: false,
    ...askedTier(body),
    body,
  };
}

/** OpenAI's hosted web search (`web_search`, `web_search_preview`, dated versions): billed per call. */
const isWebSearchTool = (t: unknown): boolean =>
  isObj(t) && typeof t.type === 'string' && t.type.startsWith('web_search');

/** The searches an answer's output shows: one `web_search_call` item each. */
const searchCalls = (output: unknown): number =>
  Array.isArray(output) ? output.filter((i) => isObj(i) && i.type === 'web_search_call').length : 0;

/** A Response's usage, with the searches its output shows and the tier it says it was served at. */
function usageOf(resp: Json, searches = searchCalls(resp.output)): CanonicalUsage | null {
  const u = readUsage(resp.usage);
  if (!u) return null;
  // Set, not spread, as the chat codec's readUsage does.
  if (searches > 0) u.webSearches = searches;
  const tier = statedTierName(resp.service_tier);
  if (tier !== undefined) u.serviceTier = tier;
  return u;
}

/** Whether an input holds a `call_id` longer than OpenAI takes (a Gemini channel's, signed). */
const longCallIds = (input: unknown): boolean =>
  Array.isArray(input) &&
  input.some((i) => isObj(i) && typeof i.call_id === 'string' && i.call_id.length > CALL_ID_MAX);

function passThroughBody(r: IngressRequest, upstreamModel: string): unknown {
  const body: Json = { ...r.body, model: upstreamModel };
  // A conversation that began on a Gemini channel: its call ids fitted, each call and its output alike.
  if (longCallIds(r.body.input))
    body.input = (r.body.input as unknown[]).map((i) =>
      isObj(i) && typeof i.call_id === 'string' ? { ...i, call_id: fittedCallId(i.call_id, CALL_ID_MAX) } : i,
    );
  // Admission assumed this cap; the upstream must keep to it.
  if (r.impliedOutputCap !== null) body.max_output_tokens = r.impliedOutputCap;
  return body;
}

/**
 * The client's bytes when its model name goes unchanged (Codex's context is large), with the
 * implied `max_output_tokens` appended; rebuilt when that key is there already (null: replaced).
 */
function passThroughBytes(r: IngressRequest, upstreamModel: string): Buffer | null {
  const cap = r.impliedOutputCap;
  if (
    upstreamModel !== r.model ||
    (cap !== null && 'max_output_tokens' in r.body) ||
    longCallIds(r.body.input)
  )
    return null;
  const raw = asSent(r.raw, r.body);
  return raw && cap !== null ? appendMember(raw, `"max_output_tokens":${cap}`) : raw;
}

export const responsesCodec: ProtocolCodec = {
  protocol: 'responses',
  parseRequest,
  toCanonical,
  encodeAnswer,
  streamEncoder,
  errorBody,
  forwardedHeaders: (headers) => headersNamed(headers, (name) => FORWARDED.has(name)),
  passThroughBody,
  passThroughBytes,
  fromCanonical,
  answerError,
  decodeAnswer,
  passThroughCheck: (r: IngressRequest) => new ResponsesPassThrough(r),
  streamDecoder,
};
