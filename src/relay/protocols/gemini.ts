// Gemini (generativelanguage API, as @google/genai and Gemini CLI speak it), both ways:
// ingress `/v1beta/models/{model}:generateContent` / `:streamGenerateContent?alt=sse` bodies,
// answers, `data:` stream frames and Google's error shape; egress to a Gemini upstream.
//
// Wire facts the code relies on:
// - the model and streaming come from the path, not the body;
// - Google's JSON parser accepts each field in lowerCamelCase and in the proto's snake_case
//   (`system_instruction`, `inline_data`, `mime_type` in Google's own curl examples);
// - function calls may carry no ids: a client's history gets `call_<n>` (within the request),
//   an upstream's answer ids unique across answers; a `functionResponse` is matched to its call
//   by id when the client echoed one, else by name;
// - `promptTokenCount` includes `cachedContentTokenCount`; `thoughtsTokenCount` is output
//   that `candidatesTokenCount` leaves out; `toolUsePromptTokenCount` is input on top;
// - a function call ends with finishReason STOP (there is no tool-use reason);
// - the stream is `data: <GenerateContentResponse>` frames with no event names and no
//   terminator; the frame with a finishReason is the last content frame.
import { randomBytes } from 'node:crypto';
import { ERROR_CATALOGUE } from '../../http/errors.js';
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
  type Settings,
} from '../canonical.js';
import { sseFrame } from '../sse.js';
import { DecodeState, decoder, parseDataUrl, searchesHeld, shownSearches } from './common.js';
import {
  decodeGeminiEmbed,
  encodeGeminiEmbed,
  geminiEmbedFromCanonical,
  geminiEmbedPassThroughBody,
  geminiEmbedToCanonical,
  parseGeminiEmbed,
} from './embeddings.js';
import {
  base64Bytes,
  definitionsOf,
  exactCount,
  exactCountAhead,
  type PromptCount,
  promptCount,
  schemaOf,
} from '../tokens.js';
import type { IngressRequest, ProtocolCodec, RouteInfo } from './types.js';
import {
  appendMember,
  argsObject,
  asSent,
  bad,
  isObject as isObj,
  type Json,
  memberObject,
  parseObject,
  protoField as field,
  topLevelKeyCount,
  settingsOf,
  boundedInt,
  intProblem,
} from './json.js';

/** The model named in a Gemini path, without the `models/` prefix clients may add. */
export function geminiModelName(pathModel: string): string {
  return pathModel.startsWith('models/') ? pathModel.slice('models/'.length) : pathModel;
}

// ── Google status names ─────────────────────────────────────────────────────────────────────

/** Google's canonical status name for an HTTP status. */
export function googleStatus(http: number): string {
  switch (http) {
    case 400:
    case 413:
    case 422:
      return 'INVALID_ARGUMENT';
    case 401:
      return 'UNAUTHENTICATED';
    case 403:
      return 'PERMISSION_DENIED';
    case 404:
      return 'NOT_FOUND';
    case 409:
      return 'ABORTED';
    case 429:
      return 'RESOURCE_EXHAUSTED';
    case 499:
      return 'CANCELLED';
    case 501:
      return 'UNIMPLEMENTED';
    case 502:
    case 503:
    case 529:
      return 'UNAVAILABLE';
    case 504:
      return 'DEADLINE_EXCEEDED';
    default:
      return http >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT';
  }
}

/**
 * 429 refusals that waiting will not cure (contract §7's `x-should-retry: false` ones). Gemini
 * CLI retries every 429 with backoff unless its message reads like an exhausted Google quota
 * (`limit: 0`), so those say so: the CLI then stops at once and shows the message.
 */
const FINAL_429 = new Set(['insufficient_quota', 'budget_exceeded']);

function geminiErrorBody(
  status: number,
  code: string,
  message: string,
  requestId: string,
  param?: string | null,
) {
  const metadata: Record<string, string> = { request_id: requestId };
  if (param) metadata.param = param;
  return {
    error: {
      code: status,
      message:
        status === 429 && FINAL_429.has(code) ? `${message} Retrying will not help (limit: 0).` : message,
      status: googleStatus(status),
      details: [
        { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: code, domain: 'moleapi', metadata },
      ],
    },
  };
}

// ── request validation and counting ─────────────────────────────────────────────────────────

const ROLES = new Set(['user', 'model', 'function']);
const MODES = new Set(['AUTO', 'ANY', 'NONE', 'VALIDATED', 'MODE_UNSPECIFIED']);

function optInt(o: Json, name: string, path: string, min: number): number | undefined {
  return boundedInt(field(o, name), min, (p) => bad(`"${path}" ${intProblem(p, min)}`, path));
}

function optNumber(o: Json, name: string, path: string): number | undefined {
  const v = field(o, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`"${path}" must be a number`, path);
  return v;
}

/** Function parts: each names its function and may carry an object payload. */
const FUNCTION_PARTS = [
  ['functionCall', 'args'],
  ['functionResponse', 'response'],
] as const;

function checkParts(parts: unknown, path: string): Json[] {
  if (!Array.isArray(parts)) throw bad(`"${path}" must be an array of parts`, path);
  parts.forEach((p, j) => {
    const pp = `${path}[${j}]`;
    if (!isObj(p)) throw bad(`"${pp}" must be an object`, pp);
    const text = p.text;
    if (text !== undefined && typeof text !== 'string')
      throw bad(`"${pp}.text" must be a string`, `${pp}.text`);
    const inline = field(p, 'inlineData');
    if (inline !== undefined) {
      if (
        !isObj(inline) ||
        typeof field(inline, 'data') !== 'string' ||
        typeof field(inline, 'mimeType') !== 'string'
      )
        throw bad(`"${pp}.inlineData" must have string "mimeType" and "data"`, `${pp}.inlineData`);
    }
    const file = field(p, 'fileData');
    if (file !== undefined) {
      if (!isObj(file) || typeof field(file, 'fileUri') !== 'string')
        throw bad(`"${pp}.fileData" must have a string "fileUri"`, `${pp}.fileData`);
    }
    for (const [kind, payload] of FUNCTION_PARTS) {
      const f = field(p, kind);
      if (f === undefined) continue;
      if (!isObj(f) || typeof f.name !== 'string')
        throw bad(`"${pp}.${kind}" must have a string "name"`, `${pp}.${kind}`);
      const v = f[payload];
      if (v !== undefined && v !== null && !isObj(v))
        throw bad(`"${pp}.${kind}.${payload}" must be an object`, `${pp}.${kind}.${payload}`);
    }
  });
  return parts as Json[];
}

function checkContents(body: Json): Json[] {
  const contents = body.contents;
  if (contents === undefined || contents === null) throw bad('"contents" is required', 'contents');
  if (!Array.isArray(contents) || contents.length === 0)
    throw bad('"contents" must be a non-empty array', 'contents');
  contents.forEach((c, i) => {
    if (!isObj(c)) throw bad(`"contents[${i}]" must be an object`, `contents[${i}]`);
    if (c.role !== undefined && c.role !== null && (typeof c.role !== 'string' || !ROLES.has(c.role)))
      throw bad(`"contents[${i}].role" must be "user" or "model"`, `contents[${i}].role`);
    checkParts(c.parts ?? [], `contents[${i}].parts`);
  });
  return contents as Json[];
}

/** The system instruction's parts (a Content, or a plain string as some clients send). */
function systemParts(body: Json): Json[] {
  const si = field(body, 'systemInstruction');
  if (si === undefined || si === null) return [];
  if (typeof si === 'string') return [{ text: si }];
  if (!isObj(si)) throw bad('"systemInstruction" must be a Content object', 'systemInstruction');
  return checkParts(si.parts ?? [], 'systemInstruction.parts');
}

function functionDeclarations(body: Json): Json[] {
  const tools = body.tools;
  if (tools === undefined || tools === null) return [];
  if (!Array.isArray(tools)) throw bad('"tools" must be an array', 'tools');
  const out: Json[] = [];
  tools.forEach((t, i) => {
    if (!isObj(t)) throw bad(`"tools[${i}]" must be an object`, `tools[${i}]`);
    const decls = field(t, 'functionDeclarations');
    if (decls === undefined || decls === null) return;
    if (!Array.isArray(decls))
      throw bad(`"tools[${i}].functionDeclarations" must be an array`, `tools[${i}].functionDeclarations`);
    decls.forEach((d, j) => {
      const p = `tools[${i}].functionDeclarations[${j}]`;
      if (!isObj(d) || typeof d.name !== 'string' || d.name === '')
        throw bad(`"${p}" must have a string "name"`, `${p}.name`);
      out.push(d);
    });
  });
  return out;
}

function functionCallingConfig(body: Json): Json | null {
  const tc = field(body, 'toolConfig');
  if (tc === undefined || tc === null) return null;
  if (!isObj(tc)) throw bad('"toolConfig" must be an object', 'toolConfig');
  const fc = field(tc, 'functionCallingConfig');
  if (fc === undefined || fc === null) return null;
  if (!isObj(fc))
    throw bad('"toolConfig.functionCallingConfig" must be an object', 'toolConfig.functionCallingConfig');
  const mode = fc.mode;
  if (mode !== undefined && (typeof mode !== 'string' || !MODES.has(mode)))
    throw bad(
      '"toolConfig.functionCallingConfig.mode" must be one of AUTO, ANY, NONE, VALIDATED',
      'toolConfig.functionCallingConfig.mode',
    );
  const names = field(fc, 'allowedFunctionNames');
  if (names !== undefined && (!Array.isArray(names) || names.some((n) => typeof n !== 'string')))
    throw bad(
      '"toolConfig.functionCallingConfig.allowedFunctionNames" must be an array of strings',
      'toolConfig.functionCallingConfig.allowedFunctionNames',
    );
  return fc;
}

/** JSON output as asked by a generation config (a JSON Schema, or Google's OpenAPI-style one). */
function responseFormatOf(gc: Json): ResponseFormat | null {
  if (field(gc, 'responseMimeType') !== 'application/json') return null;
  const json = field(gc, 'responseJsonSchema');
  const openApi = field(gc, 'responseSchema');
  const schema = isObj(json) ? json : isObj(openApi) ? toJsonSchema(openApi) : null;
  // Google enforces the schema it is given; OpenAI's strict mode needs more of one than Google's do.
  return isObj(schema)
    ? { type: 'json_schema', name: 'response', schema, strict: false }
    : { type: 'json_object' };
}

interface GenConfig {
  /** `responseMimeType: application/json`, with `responseJsonSchema` or `responseSchema` if given. */
  responseFormat: ResponseFormat | null;
  maxOutputTokens?: number;
  /** `thinkingConfig.thinkingBudget` when positive (-1 = dynamic, 0 = off). */
  thinkingBudget: number;
  temperature?: number;
  topP?: number;
  /** topK, seed, presencePenalty, frequencyPenalty, as the client set them. */
  sampling: Settings | undefined;
  stop: string[];
  candidateCount: number;
}

function generationConfig(body: Json): GenConfig {
  const gc = field(body, 'generationConfig');
  if (gc === undefined || gc === null)
    return { stop: [], candidateCount: 1, thinkingBudget: 0, responseFormat: null, sampling: undefined };
  if (!isObj(gc)) throw bad('"generationConfig" must be an object', 'generationConfig');
  const stop = field(gc, 'stopSequences');
  if (
    stop !== undefined &&
    stop !== null &&
    (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string'))
  )
    throw bad(
      '"generationConfig.stopSequences" must be an array of strings',
      'generationConfig.stopSequences',
    );
  const tc = field(gc, 'thinkingConfig');
  if (tc !== undefined && tc !== null && !isObj(tc))
    throw bad('"generationConfig.thinkingConfig" must be an object', 'generationConfig.thinkingConfig');
  const budget = isObj(tc)
    ? optInt(tc, 'thinkingBudget', 'generationConfig.thinkingConfig.thinkingBudget', -1)
    : 0;
  return {
    responseFormat: responseFormatOf(gc),
    thinkingBudget: budget !== undefined && budget > 0 ? budget : 0,
    maxOutputTokens: optInt(gc, 'maxOutputTokens', 'generationConfig.maxOutputTokens', 1),
    temperature: optNumber(gc, 'temperature', 'generationConfig.temperature'),
    topP: optNumber(gc, 'topP', 'generationConfig.topP'),
    stop: (stop as string[] | undefined | null) ?? [],
    candidateCount: optInt(gc, 'candidateCount', 'generationConfig.candidateCount', 1) ?? 1,
    sampling: settingsOf({
      topK: field(gc, 'topK'),
      seed: field(gc, 'seed'),
      presencePenalty: field(gc, 'presencePenalty'),
      frequencyPenalty: field(gc, 'frequencyPenalty'),
    }),
  };
}

/**
 * The local prompt count of a Gemini request, read like OpenAI's chat format: system
 * instruction, every content's text, media parts as images, function calls and responses as
 * their JSON, and the tool declarations.
 */
function promptOf(contents: Json[], system: Json[], decls: Json[], schema?: unknown): PromptCount {
  const asMessage = (role: string, parts: Json[]) => {
    const content: Json[] = [];
    const calls: unknown[] = [];
    for (const p of parts) {
      if (typeof p.text === 'string') content.push({ type: 'text', text: p.text });
      const media = field(p, 'inlineData') ?? field(p, 'fileData');
      if (isObj(media)) {
        const mime = field(media, 'mimeType');
        const data = field(media, 'data');
        if (typeof mime === 'string' && !mime.startsWith('image/'))
          content.push({
            type: 'document',
            bytes: typeof data === 'string' ? base64Bytes(data.length) : null,
          });
        else content.push({ type: 'image_url' });
      }
      const call = field(p, 'functionCall');
      if (call !== undefined) calls.push(call);
      const resp = field(p, 'functionResponse');
      if (resp !== undefined) content.push({ type: 'text', text: JSON.stringify(resp) });
    }
    return calls.length > 0 ? { role, content, tool_calls: calls } : { role, content };
  };
  const messages = contents.map((c) =>
    asMessage(c.role === 'model' ? 'assistant' : 'user', (c.parts ?? []) as Json[]),
  );
  if (system.length > 0) messages.unshift(asMessage('system', system));
  return promptCount(messages, definitionsOf(decls.length > 0 ? decls : undefined, schema));
}

/** Token count for `:countTokens` (a plain request, or one wrapped in `generateContentRequest`). */
export const countGeminiTokens = (body: Record<string, unknown>): number => exactCount(countedPrompt(body));

function countedPrompt(body: Record<string, unknown>): PromptCount {
  const wrapped = field(body, 'generateContentRequest');
  const req = isObj(wrapped) ? wrapped : body;
  const contents = req.contents === undefined ? [] : checkContents(req);
  return promptOf(contents, systemParts(req), functionDeclarations(req));
}

/** The `GET /v1beta/models` body for these model ids. */
export function geminiModelList(ids: readonly string[]) {
  return {
    models: ids.map((id) => ({
      name: `models/${id}`,
      version: '001',
      displayName: id,
      description: `${id} through MoleAPI`,
      inputTokenLimit: 1_048_576,
      outputTokenLimit: 65_536,
      supportedGenerationMethods: ['generateContent', 'streamGenerateContent', 'countTokens'],
    })),
  };
}

function parseRequest(body: Json, route: RouteInfo, defaultMaxOutput: number): IngressRequest {
  const pathModel = route.pathModel ?? '';
  const model = geminiModelName(pathModel);
  if (!model)
    throw bad('the model is missing from the path (/v1beta/models/{model}:generateContent)', 'model');
  if (model.length > 256 || /[\u0000-\u001f\u007f]/.test(model))
    throw bad('the model name is invalid', 'model');
  if (route.operation === 'embeddings') return parseGeminiEmbed(body, model);
  const contents = checkContents(body);
  const system = systemParts(body);
  const decls = functionDeclarations(body);
  functionCallingConfig(body);
  const gen = generationConfig(body);
  const own = gen.maxOutputTokens;
  // Gemini's thinking counts against maxOutputTokens: without a cap of its own, a request
  // that grants a thinking budget (Gemini CLI asks for 8192) gets it on top of the default,
  // or the implied cap would cut the answer before it began.
  const implied = defaultMaxOutput + gen.thinkingBudget;
  return {
    protocol: 'gemini',
    operation: 'generate',
    model,
    stream: route.pathStream === true,
    ...promptOf(contents, system, decls, schemaOf(gen.responseFormat)),
    maxOutputTokens: (own ?? implied) * gen.candidateCount,
    // Grounding with Google Search has no bound a request can set, and names its queries only
    // at the end: an answer cut before that is billed one search.
    ...searchTerms(body),
    impliedOutputCap: own === undefined ? implied : null,
    clientWantsUsage: true,
    body,
  };
}

/** What a request offering Google Search (grounding) is held and billed for in searches. */
function searchTerms(body: Json): { maxWebSearches: number; searchesIfCut: number } {
  const offered =
    Array.isArray(body.tools) &&
    body.tools.some(
      (t) => isObj(t) && (field(t, 'googleSearch') != null || field(t, 'googleSearchRetrieval') != null),
    );
  return { maxWebSearches: searchesHeld(offered, undefined), searchesIfCut: offered ? 1 : 0 };
}

// ── Gemini → canonical ──────────────────────────────────────────────────────────────────────

/** Gemini's OpenAPI-style Schema (`type: "OBJECT"`, `nullable`) as JSON Schema. */
function toJsonSchema(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(toJsonSchema);
  if (!isObj(s)) return s;
  const out: Json = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'nullable' || k === 'propertyOrdering') continue;
    if (k === 'type' && typeof v === 'string') out.type = v.toLowerCase();
    else if (k === 'properties' && isObj(v))
      out.properties = Object.fromEntries(Object.entries(v).map(([n, p]) => [n, toJsonSchema(p)]));
    else if (k === 'items' || k === 'anyOf') out[k] = toJsonSchema(v);
    else out[k] = v;
  }
  if (s.nullable === true && typeof out.type === 'string') out.type = [out.type, 'null'];
  return out;
}

function toolOf(d: Json): Tool {
  const jsonSchema = field(d, 'parametersJsonSchema');
  const params = isObj(jsonSchema)
    ? jsonSchema
    : isObj(d.parameters)
      ? (toJsonSchema(d.parameters) as Json)
      : null;
  const tool: Tool = { name: d.name as string, parameters: params ?? { type: 'object', properties: {} } };
  if (typeof d.description === 'string') tool.description = d.description;
  return tool;
}

function toolChoiceOf(fc: Json | null): ToolChoice | null {
  if (!fc) return null;
  const names = field(fc, 'allowedFunctionNames') as string[] | undefined;
  switch (fc.mode) {
    case 'NONE':
      return 'none';
    case 'ANY':
      return names && names.length === 1 ? { name: names[0]! } : 'required';
    case 'AUTO':
    case 'VALIDATED':
      return 'auto';
    default:
      return null;
  }
}

/** Documents the other protocols take (beside images): PDFs, plain text. */
const DOCUMENT_TYPES = new Set(['application/pdf', 'text/plain']);

/** An image or a document (inline, or by a URI another upstream can fetch); anything else is refused. */
function mediaPart(p: Json): Part | null {
  const inline = field(p, 'inlineData');
  const file = field(p, 'fileData');
  if (!isObj(inline) && !isObj(file)) return null;
  const media = (isObj(inline) ? inline : file) as Json;
  const mime = String(field(media, 'mimeType') ?? '');
  const url = isObj(inline)
    ? `data:${mime};base64,${String(field(inline, 'data'))}`
    : String(field(media, 'fileUri') ?? '');
  if (!isObj(inline) && !/^https?:\/\//.test(url))
    throw bad(
      `a file at ${url.slice(0, 100)} cannot be fetched by this model's channel; send it inline`,
      'contents',
    );
  // Google's own file store answers only to a Google key.
  if (!isObj(inline) && url.startsWith('https://generativelanguage.googleapis.com/'))
    throw bad(
      "a file in Google's file store cannot reach this model's channel; send it inline or by a public https URL",
      'contents',
    );
  const type = mime || (isObj(inline) ? '' : mimeOfUrl(url));
  if (type.startsWith('image/')) return { type: 'image', url };
  if (DOCUMENT_TYPES.has(type)) return { type: 'file', mediaType: type, url };
  throw bad(`a part of type ${type.slice(0, 100)} cannot be translated for this model's channel`, 'contents');
}

/** A function's response object as the text of a tool result (`output`/`error` unwrapped). */
function responseText(resp: Json): { text: string; isError: boolean } {
  const r = resp.response;
  if (!isObj(r)) return { text: '', isError: false };
  const keys = Object.keys(r);
  if (keys.length === 1 && (keys[0] === 'output' || keys[0] === 'result') && typeof r[keys[0]!] === 'string')
    return { text: r[keys[0]!] as string, isError: false };
  if (keys.length === 1 && keys[0] === 'error')
    return { text: typeof r.error === 'string' ? r.error : JSON.stringify(r.error), isError: true };
  return { text: JSON.stringify(r), isError: false };
}

function toCanonical(r: IngressRequest): CanonicalRequest {
  if (r.operation === 'embeddings') return geminiEmbedToCanonical(r);
  const body = r.body;
  // A cache lives at Google: another channel would answer without the context it holds.
  const cached = field(body, 'cachedContent');
  if (cached !== undefined && cached !== null)
    throw bad(
      '"cachedContent" names a cache kept by Google and cannot be honoured on this model\'s channel; send its contents in the request instead',
      'cachedContent',
    );
  const gen = generationConfig(body);
  const system = systemParts(body)
    .map((p) => (typeof p.text === 'string' ? p.text : ''))
    .filter((t) => t !== '');
  const messages: Message[] = [];
  // Calls not answered yet, oldest first: a functionResponse answers the call with its id
  // (when the client echoed one), else the oldest with its name.
  const pending: ToolCall[] = [];
  let seq = 0;
  for (const c of body.contents as Json[]) {
    const parts = (c.parts ?? []) as Json[];
    if (c.role === 'model') {
      const content: Part[] = [];
      const toolCalls: ToolCall[] = [];
      for (const p of parts) {
        if (p.thought === true) continue;
        if (typeof p.text === 'string' && p.text !== '') content.push({ type: 'text', text: p.text });
        const media = mediaPart(p);
        if (media) content.push(media);
        const call = field(p, 'functionCall');
        if (isObj(call)) {
          const tc = {
            id: typeof call.id === 'string' && call.id ? call.id : `call_${seq++}`,
            name: call.name as string,
            arguments: JSON.stringify(call.args ?? {}),
          };
          toolCalls.push(tc);
          pending.push(tc);
        }
      }
      if (content.length > 0 || toolCalls.length > 0)
        messages.push({ role: 'assistant', content, toolCalls });
      continue;
    }
    const content: Part[] = [];
    for (const p of parts) {
      const resp = field(p, 'functionResponse');
      if (isObj(resp)) {
        let at = typeof resp.id === 'string' ? pending.findIndex((t) => t.id === resp.id) : -1;
        if (at < 0) at = pending.findIndex((t) => t.name === resp.name);
        const call = at >= 0 ? pending.splice(at, 1)[0]! : null;
        const { text, isError } = responseText(resp);
        messages.push({
          role: 'tool',
          toolCallId: call?.id ?? `call_${seq++}`,
          name: resp.name as string,
          content: [{ type: 'text', text }],
          ...(isError ? { isError } : {}),
        });
        continue;
      }
      if (typeof p.text === 'string' && p.text !== '') content.push({ type: 'text', text: p.text });
      const media = mediaPart(p);
      if (media) content.push(media);
    }
    if (content.length > 0) messages.push({ role: 'user', content });
  }
  return {
    system,
    messages,
    tools: functionDeclarations(body).map(toolOf),
    toolChoice: toolChoiceOf(functionCallingConfig(body)),
    maxOutputTokens: gen.maxOutputTokens ?? null,
    temperature: gen.temperature ?? null,
    topP: gen.topP ?? null,
    stop: gen.stop,
    stream: r.stream,
    responseFormat: gen.responseFormat,
    parallelToolCalls: null,
    settings: gen.sampling,
  };
}

// ── canonical → Gemini ──────────────────────────────────────────────────────────────────────

const FINISH: Record<StopReason, string> = {
  stop: 'STOP',
  length: 'MAX_TOKENS',
  // Gemini ends a function call with STOP: there is no tool-use reason.
  tool_calls: 'STOP',
  content_filter: 'SAFETY',
};

function usageMetadata(u: CanonicalUsage): Json {
  const prompt = u.input + u.cacheRead + u.cacheWrite;
  const out: Json = {
    promptTokenCount: prompt,
    candidatesTokenCount: Math.max(0, u.output - u.reasoning),
    totalTokenCount: prompt + u.output,
  };
  if (u.cacheRead > 0) out.cachedContentTokenCount = u.cacheRead;
  if (u.reasoning > 0) out.thoughtsTokenCount = u.reasoning;
  return out;
}

function wantsThoughts(r: IngressRequest): boolean {
  const gc = field(r.body, 'generationConfig');
  const tc = isObj(gc) ? field(gc, 'thinkingConfig') : undefined;
  return isObj(tc) && field(tc, 'includeThoughts') === true;
}

function encodeAnswer(a: CanonicalAnswer, r: IngressRequest): unknown {
  if (r.operation === 'embeddings') return encodeGeminiEmbed(a, r);
  const parts: Json[] = [];
  if (a.reasoning && wantsThoughts(r)) parts.push({ text: a.reasoning, thought: true });
  if (a.text) parts.push({ text: a.text });
  for (const tc of a.toolCalls)
    parts.push({ functionCall: { name: tc.name, args: argsObject(tc.arguments) } });
  const out: Json = {
    candidates: [{ content: { parts, role: 'model' }, finishReason: FINISH[a.stopReason], index: 0 }],
  };
  if (a.usage) out.usageMetadata = usageMetadata(a.usage);
  out.modelVersion = r.model;
  out.responseId = a.id;
  return out;
}

function streamEncoder(r: IngressRequest, requestId: string): StreamEncoder {
  /** The answer's id (the upstream's, once it says); errors carry the gateway's request id. */
  let id = requestId;
  const thoughts = wantsThoughts(r);
  const calls: { name: string; args: string }[] = [];
  let reason: StopReason = 'stop';
  const frame = (parts: Json[], last?: { finishReason: string; usageMetadata: Json }) =>
    sseFrame(
      JSON.stringify({
        candidates: [
          {
            content: { parts, role: 'model' },
            ...(last ? { finishReason: last.finishReason } : {}),
            index: 0,
          },
        ],
        ...(last ? { usageMetadata: last.usageMetadata } : {}),
        modelVersion: r.model,
        responseId: id,
      }),
    );
  return {
    event(e: StreamEvent): string {
      switch (e.type) {
        case 'start':
          if (e.id) id = e.id;
          return '';
        case 'text':
          return e.text ? frame([{ text: e.text }]) : '';
        case 'reasoning':
          return thoughts && e.text ? frame([{ text: e.text, thought: true }]) : '';
        case 'tool_call':
          calls[e.index] = { name: e.name, args: '' };
          return '';
        case 'tool_args': {
          const c = calls[e.index];
          if (c) c.args += e.delta;
          return '';
        }
        case 'stop':
          reason = e.reason;
          return '';
        default:
          return '';
      }
    },
    finish(usage: CanonicalUsage): string {
      // Gemini sends a function call whole, in one part; the last frame carries the reason
      // and the usage (and a part: the SDK's chat history drops a chunk without parts).
      const parts: Json[] = calls
        .filter((c) => c !== undefined)
        .map((c) => ({ functionCall: { name: c.name, args: argsObject(c.args) } }));
      if (parts.length === 0) parts.push({ text: '' });
      return frame(parts, { finishReason: FINISH[reason], usageMetadata: usageMetadata(usage) });
    },
    error(code: string, message: string, status?: number): string {
      const at = status ?? (ERROR_CATALOGUE as Record<string, { status: number }>)[code]?.status ?? 500;
      return sseFrame(JSON.stringify(geminiErrorBody(at, code, message, requestId)));
    },
  };
}

function mimeOfUrl(url: string): string {
  const ext = /\.([a-z0-9]+)(?:[?#]|$)/i.exec(url)?.[1]?.toLowerCase();
  switch (ext) {
    case 'png':
      return 'image/png';
    case 'gif':
      return 'image/gif';
    case 'webp':
      return 'image/webp';
    case 'heic':
      return 'image/heic';
    case 'pdf':
      return 'application/pdf';
    case 'txt':
      return 'text/plain';
    default:
      return 'image/jpeg';
  }
}

function partsOf(content: Part[]): Json[] {
  return content.map((p) => {
    if (p.type === 'text') return { text: p.text };
    const d = parseDataUrl(p.url);
    if (d) return { inlineData: { mimeType: d.mediaType, data: d.data } };
    return { fileData: { mimeType: p.type === 'file' ? p.mediaType : mimeOfUrl(p.url), fileUri: p.url } };
  });
}

function responseObject(text: string, isError: boolean | undefined): Json {
  if (isError) return { error: text };
  return parseObject(text) ?? { output: text }; // plain text
}

function fromCanonical(c: CanonicalRequest, upstreamModel: string, outputCap: number): unknown {
  if (c.embed) return geminiEmbedFromCanonical(c.embed, upstreamModel);
  const contents: Json[] = [];
  const names = new Map<string, string>();
  for (const m of c.messages) {
    if (m.role === 'user') contents.push({ role: 'user', parts: partsOf(m.content) });
    else if (m.role === 'assistant') {
      const parts = partsOf(m.content).filter((p) => p.text !== '');
      for (const tc of m.toolCalls) {
        names.set(tc.id, tc.name);
        const signature = signatureOf(tc.id);
        parts.push({
          functionCall: { name: tc.name, args: argsObject(tc.arguments) },
          ...(signature ? { thoughtSignature: signature } : {}),
        });
      }
      if (parts.length > 0) contents.push({ role: 'model', parts });
    } else {
      const text = m.content
        .filter((p) => p.type === 'text')
        .map((p) => p.text)
        .join('\n');
      const part = {
        functionResponse: {
          name: m.name ?? names.get(m.toolCallId) ?? 'function',
          response: responseObject(text, m.isError),
        },
      };
      // A result's images go in the same user content, after the turn's function responses.
      const media = partsOf(m.content.filter((p) => p.type !== 'text'));
      // All of a turn's function responses go in one user content, right after the calls.
      const last = contents[contents.length - 1];
      const lastParts = last?.parts as Json[] | undefined;
      if (last && last.role === 'user' && lastParts?.[0]?.functionResponse !== undefined) {
        const firstMedia = lastParts.findIndex((p) => p.functionResponse === undefined);
        lastParts.splice(firstMedia < 0 ? lastParts.length : firstMedia, 0, part);
        lastParts.push(...media);
      } else contents.push({ role: 'user', parts: [part, ...media] });
    }
  }
  const out: Json = { contents };
  if (c.system.length > 0) out.systemInstruction = { parts: [{ text: c.system.join('\n\n') }] };
  if (c.tools.length > 0)
    out.tools = [
      {
        functionDeclarations: c.tools.map((t) => ({
          name: t.name,
          ...(t.description !== undefined ? { description: t.description } : {}),
          parametersJsonSchema: t.parameters,
        })),
      },
    ];
  const tc = c.toolChoice;
  if (tc !== null && c.tools.length > 0) {
    const fc: Json =
      tc === 'none'
        ? { mode: 'NONE' }
        : tc === 'required'
          ? { mode: 'ANY' }
          : tc === 'auto'
            ? { mode: 'AUTO' }
            : { mode: 'ANY', allowedFunctionNames: [tc.name] };
    out.toolConfig = { functionCallingConfig: fc };
  }
  const gen: Json = { maxOutputTokens: outputCap };
  if (c.temperature !== null) gen.temperature = c.temperature;
  if (c.topP !== null) gen.topP = c.topP;
  const st = c.settings ?? {};
  if (st.topK !== undefined) gen.topK = st.topK;
  if (st.seed !== undefined) gen.seed = st.seed;
  if (st.presencePenalty !== undefined) gen.presencePenalty = st.presencePenalty;
  if (st.frequencyPenalty !== undefined) gen.frequencyPenalty = st.frequencyPenalty;
  if (c.stop.length > 0) gen.stopSequences = c.stop;
  if (c.responseFormat) {
    gen.responseMimeType = 'application/json';
    if (c.responseFormat.type === 'json_schema') gen.responseJsonSchema = c.responseFormat.schema;
  }
  out.generationConfig = gen;
  return out;
}

/** The member the generation config is read from (`field`): camelCase, else snake_case. */
const configKey = (body: Json) =>
  body.generationConfig === undefined && body.generation_config !== undefined
    ? 'generation_config'
    : 'generationConfig';

function passThroughBody(r: IngressRequest, upstreamModel: string): unknown {
  if (r.operation === 'embeddings') return geminiEmbedPassThroughBody(r, upstreamModel);
  // The model is in the URL; the body goes as the client wrote it.
  if (r.impliedOutputCap === null) return r.body;
  const key = configKey(r.body);
  const gc = isObj(r.body[key]) ? (r.body[key] as Json) : {};
  return { ...r.body, [key]: { ...gc, maxOutputTokens: r.impliedOutputCap } };
}

/**
 * `passThroughBody` as bytes (Gemini CLI's context is large): the client's own when it set its
 * own cap, else with the implied cap added to its generation config, or with a config holding
 * only that cap. Null when the body or its config spells a key twice (the cap and
 * `candidateCount` must be read upstream as they were here), or the config is not found as
 * plain bytes.
 */
function passThroughBytes(r: IngressRequest, _upstreamModel: string): Buffer | null {
  if (r.operation === 'embeddings') return null;
  const raw = asSent(r.raw, r.body);
  if (!raw) return null;
  const key = configKey(r.body);
  const gc = r.body[key];
  const cap = `"maxOutputTokens":${r.impliedOutputCap}`;
  if (gc === undefined) return r.impliedOutputCap === null ? raw : appendMember(raw, `"${key}":{${cap}}`);
  if (!isObj(gc)) return null;
  const at = memberObject(raw, key);
  if (!at) return null;
  const config = raw.subarray(at[0], at[1]);
  if (topLevelKeyCount(config) !== Object.keys(gc).length) return null;
  if (r.impliedOutputCap === null) return raw;
  if ('maxOutputTokens' in gc) return null; // its value is replaced: a second key would not be
  const capped = appendMember(config, cap);
  return capped && Buffer.concat([raw.subarray(0, at[0]), capped, raw.subarray(at[1])]);
}

// ── Gemini answers → canonical ──────────────────────────────────────────────────────────────

function answerError(json: unknown): string | null {
  const e = isObj(json) ? json.error : undefined;
  if (e === undefined || e === null) return null;
  if (isObj(e) && typeof e.message === 'string') return e.message;
  return typeof e === 'string' ? e : JSON.stringify(e);
}

const int = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0);

/**
 * usageMetadata in canonical terms; null when absent. `searches`: the Google Search queries
 * grounding ran (billed per query), where the answer's grounding metadata says.
 */
export function geminiUsage(json: unknown, searches = searchQueries(json)): CanonicalUsage | null {
  const u = isObj(json) ? json.usageMetadata : undefined;
  if (!isObj(u)) return null;
  const prompt = int(u.promptTokenCount) + int(u.toolUsePromptTokenCount);
  const cached = Math.min(int(u.cachedContentTokenCount), prompt);
  const thoughts = int(u.thoughtsTokenCount);
  return {
    input: prompt - cached,
    cacheRead: cached,
    cacheWrite: 0,
    output: int(u.candidatesTokenCount) + thoughts,
    reasoning: thoughts,
    ...shownSearches(searches),
  };
}

/** The Google Search queries an answer's (or a stream chunk's) grounding ran: `webSearchQueries`. */
function searchQueries(json: unknown): number {
  const cands = isObj(json) ? json.candidates : undefined;
  const cand = Array.isArray(cands) && isObj(cands[0]) ? cands[0] : null;
  const meta = cand ? field(cand, 'groundingMetadata') : undefined;
  const queries = isObj(meta) ? field(meta, 'webSearchQueries') : undefined;
  return Array.isArray(queries) ? queries.length : 0;
}

function stopOf(finish: unknown, hasCalls: boolean): StopReason {
  if (hasCalls) return 'tool_calls';
  switch (finish) {
    case undefined:
    case null:
    case 'STOP':
    case 'FINISH_REASON_UNSPECIFIED':
    case 'MALFORMED_FUNCTION_CALL':
    case 'UNEXPECTED_TOOL_CALL':
      return 'stop';
    case 'MAX_TOKENS':
      return 'length';
    default:
      // SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, IMAGE_SAFETY, LANGUAGE, OTHER …
      return 'content_filter';
  }
}

interface CandidateRead {
  text: string;
  reasoning: string;
  calls: { name: string; args: string; id?: string; signature?: string }[];
  finish: unknown;
  blocked: boolean;
}

function readCandidate(json: Json): CandidateRead {
  const out: CandidateRead = { text: '', reasoning: '', calls: [], finish: undefined, blocked: false };
  const cands = json.candidates;
  const cand = Array.isArray(cands) && isObj(cands[0]) ? cands[0] : null;
  if (!cand) {
    const fb = json.promptFeedback;
    out.blocked = isObj(fb) && fb.blockReason !== undefined && fb.blockReason !== null;
    return out;
  }
  out.finish = cand.finishReason;
  const content = cand.content;
  const parts = isObj(content) && Array.isArray(content.parts) ? content.parts : [];
  for (const p of parts) {
    if (!isObj(p)) continue;
    if (typeof p.text === 'string') {
      if (p.thought === true) out.reasoning += p.text;
      else out.text += p.text;
    }
    const call = field(p, 'functionCall');
    const signature = field(p, 'thoughtSignature');
    if (isObj(call) && typeof call.name === 'string')
      out.calls.push({
        name: call.name,
        args: JSON.stringify(call.args ?? {}),
        ...(typeof call.id === 'string' && call.id ? { id: call.id } : {}),
        ...(typeof signature === 'string' && signature ? { signature } : {}),
      });
  }
  return out;
}

/** Google's refusals that are about the channel (its key, its project, its region), not the request. */
const CHANNEL_REASONS = new Set([
  'API_KEY_INVALID',
  'API_KEY_EXPIRED',
  'API_KEY_SERVICE_BLOCKED',
  'SERVICE_DISABLED',
  'CONSUMER_SUSPENDED',
  'BILLING_DISABLED',
]);

export function geminiChannelFault(status: number, json: unknown): boolean {
  if (status < 400 || status >= 500) return false;
  const e = isObj(json) ? json.error : undefined;
  if (!isObj(e)) return false;
  if (
    e.status === 'FAILED_PRECONDITION' ||
    e.status === 'UNAUTHENTICATED' ||
    e.status === 'PERMISSION_DENIED'
  )
    return true;
  const details = Array.isArray(e.details) ? e.details : [];
  return details.some((d) => isObj(d) && typeof d.reason === 'string' && CHANNEL_REASONS.has(d.reason));
}

let answerSeq = 0;

/**
 * An id for a function call Gemini sent without one: unique across answers, since a client
 * keeps them in its history (`call_0` in every answer would make one conversation's calls
 * share ids, which an Anthropic upstream refuses once the history goes there).
 */
const newCallId = () => `call_${randomBytes(12).toString('hex')}`;

// Thought signatures. Gemini 3 signs each step's first function call (`thoughtSignature` on its
// part) and refuses a history that sends the call back without it: "Function call is missing a
// thought_signature" (ai.google.dev/gemini-api/docs/thought-signatures). A translated client
// keeps only the call's id, so the signature travels inside it, base64url after a marker, and
// is put back on the call's part when the history returns. No state is kept: any instance, and
// any later turn, can read it.
const SIGNED = '__thought__';
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** The call id a client is given: the call's own, with its signature (if any) inside. */
function signedCallId(id: string, signature: string | undefined): string {
  if (!signature || !BASE64.test(signature)) return id;
  return id + SIGNED + signature.replace(/=+$/, '').replaceAll('+', '-').replaceAll('/', '_');
}

/** The signature a call id carries (standard base64, as Google sends it), if any. */
function signatureOf(id: string): string | undefined {
  const at = id.indexOf(SIGNED);
  if (at < 0) return undefined;
  const b64 = id
    .slice(at + SIGNED.length)
    .replaceAll('-', '+')
    .replaceAll('_', '/');
  return b64 && BASE64.test(b64) ? b64 + '='.repeat((4 - (b64.length % 4)) % 4) : undefined;
}

function decodeAnswer(json: unknown): CanonicalAnswer {
  const j = isObj(json) ? json : {};
  const embedded = decodeGeminiEmbed(j);
  if (embedded) return embedded;
  const c = readCandidate(j);
  return {
    id: typeof j.responseId === 'string' ? j.responseId : `gemini-${Date.now().toString(36)}-${++answerSeq}`,
    model: typeof j.modelVersion === 'string' ? j.modelVersion : '',
    text: c.text,
    reasoning: c.reasoning,
    toolCalls: c.calls.map((t) => ({
      id: signedCallId(t.id ?? newCallId(), t.signature),
      name: t.name,
      arguments: t.args,
    })),
    stopReason: c.blocked ? 'content_filter' : stopOf(c.finish, c.calls.length > 0),
    usage: geminiUsage(j),
    ...shownSearches(searchQueries(j)),
  };
}

function streamDecoder(_r: IngressRequest): StreamDecoder {
  const state = new DecodeState();
  let started = false;
  let calls = 0;
  return decoder(state, (frame) => {
    const data = frame.data.trim();
    if (data === '' || data === '[DONE]') return { events: [] };
    const json = parseObject(data);
    if (json === undefined) throw new StreamBroken('upstream sent an unreadable stream frame');
    const err = answerError(json);
    if (err !== null) throw new StreamBroken(`upstream stream failed: ${err}`);
    const events: StreamEvent[] = [];
    if (!started) {
      started = true;
      events.push({
        type: 'start',
        id: typeof json.responseId === 'string' ? json.responseId : `gemini-${Date.now().toString(36)}`,
        model: typeof json.modelVersion === 'string' ? json.modelVersion : '',
      });
    }
    const c = readCandidate(json);
    if (!state.done) {
      if (c.reasoning) events.push({ type: 'reasoning', text: c.reasoning });
      if (c.text) events.push({ type: 'text', text: c.text });
      for (const t of c.calls) {
        const index = calls++;
        events.push({
          type: 'tool_call',
          index,
          id: signedCallId(t.id ?? newCallId(), t.signature),
          name: t.name,
        });
        events.push({ type: 'tool_args', index, delta: t.args });
      }
      if (c.blocked || (c.finish !== undefined && c.finish !== null)) {
        state.done = true;
        events.push({ type: 'stop', reason: c.blocked ? 'content_filter' : stopOf(c.finish, calls > 0) });
      }
    }
    // Grounding metadata may come in a chunk of its own: the most queries any chunk named.
    state.webSearches = Math.max(state.webSearches, searchQueries(json));
    state.report(events, geminiUsage(json, state.webSearches));
    return { events };
  });
}

export const geminiCodec: ProtocolCodec = {
  protocol: 'gemini',
  parseRequest,
  toCanonical,
  encodeAnswer,
  streamEncoder,
  errorBody: geminiErrorBody,
  forwardedHeaders: () => ({}),
  countTokens: async (body) => ({ totalTokens: await exactCountAhead(countedPrompt(body)) }),
  modelList: geminiModelList,
  passThroughBody,
  passThroughBytes,
  fromCanonical,
  answerError,
  channelFault: geminiChannelFault,
  decodeAnswer,
  streamDecoder,
};
