// Gemini (generativelanguage API): POST /v1beta/models/{model}:generateContent,
// :streamGenerateContent (?alt=sse), :countTokens, :embedContent, :batchEmbedContents;
// GET /v1beta/models[/{model}]; the same
// under /v1. An independent implementation of Google's wire format (nothing from src/relay):
// - credential `x-goog-api-key` header or `?key=`; missing → 403 PERMISSION_DENIED, wrong →
//   400 INVALID_ARGUMENT `API key not valid` (ErrorInfo API_KEY_INVALID), as Google answers;
// - plain answers and errors are pretty-printed JSON (2 spaces), as Google's JSON is;
// - stream frames are `data: <json>\r\n\r\n` with Google's spacing (`{"a": 1,"b": 2}`),
//   no event names, no terminator; every frame carries a part; the last one carries the
//   finishReason and the full usageMetadata;
// - unknown top-level request fields are refused ("Unknown name … Cannot find field.").
import type { ServerResponse } from 'node:http';
import {
  argsFromSchema,
  isJsonObject,
  type Json,
  type MockKit,
  type MockRequest,
  playScenario,
  type ProtocolRoutes,
} from './kit.js';
import {
  DEFAULT_COMPLETION_TOKENS,
  countTextTokens,
  makeEmbedding,
  piecesFor,
  type Scenario,
} from './server.js';

export const GEMINI_MODELS: readonly string[] = [
  'gemini-2.5-flash',
  'gemini-2.5-pro',
  'gemini-2.5-flash-lite',
  'gemini-2.0-flash',
];

/** Media parts (inlineData / fileData) count as a flat 258 tokens, Gemini's per-image cost. */
export const GEMINI_MEDIA_TOKENS = 258;

const JSON_CT = 'application/json; charset=UTF-8';
const SSE_CT = 'text/event-stream';
const CRLF2 = '\r\n\r\n';

const KNOWN_FIELDS = new Set(
  [
    'model',
    'contents',
    'tools',
    'toolConfig',
    'safetySettings',
    'systemInstruction',
    'generationConfig',
    'cachedContent',
    'labels',
    'serviceTier',
  ].flatMap((f) => [f, snake(f)]),
);
const COUNT_FIELDS = new Set(['contents', 'generateContentRequest', 'generate_content_request']);

function snake(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** A field in camelCase or its snake_case spelling (Google's JSON parser takes both). */
function get(o: Json, camel: string): unknown {
  return o[camel] !== undefined ? o[camel] : o[snake(camel)];
}

// ── errors ────────────────────────────────────────────────────────────────────────────────

class GoogleError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly status: string,
    readonly details?: unknown[],
  ) {
    super(message);
  }
}

const invalidArgument = (message: string, details?: unknown[]) =>
  new GoogleError(400, message, 'INVALID_ARGUMENT', details);

/** Google's status name for each HTTP status, and the mock's default message where it has one. */
const ERRORS: Record<number, { status: string; message?: string }> = {
  400: { status: 'INVALID_ARGUMENT', message: 'Request contains an invalid argument.' },
  401: {
    status: 'UNAUTHENTICATED',
    message:
      'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
  },
  403: { status: 'PERMISSION_DENIED', message: 'The caller does not have permission' },
  404: { status: 'NOT_FOUND' },
  429: {
    status: 'RESOURCE_EXHAUSTED',
    message:
      'You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.',
  },
  499: { status: 'CANCELLED' },
  501: { status: 'UNIMPLEMENTED' },
  503: { status: 'UNAVAILABLE', message: 'The model is overloaded. Please try again later.' },
  504: { status: 'DEADLINE_EXCEEDED', message: 'Deadline expired before operation could complete.' },
};

const statusName = (code: number): string =>
  ERRORS[code]?.status ?? (code >= 500 ? 'INTERNAL' : 'FAILED_PRECONDITION');

function defaultMessage(code: number, model: string): string {
  if (code === 404)
    return `models/${model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.`;
  return (
    ERRORS[code]?.message ??
    (code >= 500
      ? 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting'
      : `Mock error ${code}.`)
  );
}

function errorJson(e: GoogleError, pretty: boolean): string {
  const error: Json = { code: e.code, message: e.message, status: e.status };
  if (e.details) error.details = e.details;
  return pretty ? JSON.stringify({ error }, null, 2) : googleJson({ error });
}

/** JSON as Google's stream frames write it: a space after ':' and none after ','. */
export function googleJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(googleJson).join(',')}]`;
  if (isJsonObject(v))
    return `{${Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => `${JSON.stringify(k)}: ${googleJson(x)}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

// ── request reading ───────────────────────────────────────────────────────────────────────

function checkRequest(body: Json, known: Set<string>): void {
  for (const k of Object.keys(body)) {
    if (!known.has(k))
      throw invalidArgument(`Invalid JSON payload received. Unknown name "${k}": Cannot find field.`, [
        {
          '@type': 'type.googleapis.com/google.rpc.BadRequest',
          fieldViolations: [
            { description: `Invalid JSON payload received. Unknown name "${k}": Cannot find field.` },
          ],
        },
      ]);
  }
}

function checkContents(body: Json, what: string): Json[] {
  const contents = body.contents;
  if (contents === undefined || (Array.isArray(contents) && contents.length === 0))
    throw invalidArgument(`* ${what}.contents: contents is not specified\n`);
  if (!Array.isArray(contents))
    throw invalidArgument(
      `Invalid JSON payload received. Unknown name "contents": Proto field is not repeating, cannot start list.`,
    );
  contents.forEach((c, i) => {
    if (!isJsonObject(c))
      throw invalidArgument(
        `Invalid value at 'contents[${i}]' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content)`,
      );
    if (c.role !== undefined && c.role !== 'user' && c.role !== 'model' && c.role !== 'function')
      throw invalidArgument('Please use a valid role: user, model.');
    const parts = c.parts;
    if (!Array.isArray(parts) || parts.length === 0)
      throw invalidArgument(`* ${what}.contents[${i}].parts: contents.parts must not be empty.\n`);
    parts.forEach((p, j) => {
      if (!isJsonObject(p) || Object.keys(p).length === 0)
        throw invalidArgument(
          `* ${what}.contents[${i}].parts[${j}].data: required oneof field 'data' must have one initialized field\n`,
        );
    });
  });
  return contents as Json[];
}

function maxOutputTokens(body: Json): number {
  const gc = get(body, 'generationConfig');
  if (gc === undefined) return Infinity;
  if (!isJsonObject(gc))
    throw invalidArgument(
      `Invalid value at 'generation_config' (type.googleapis.com/google.ai.generativelanguage.v1beta.GenerationConfig)`,
    );
  const v = get(gc, 'maxOutputTokens');
  if (v === undefined || v === null) return Infinity;
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw invalidArgument(
      `Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), ${JSON.stringify(v)}`,
    );
  if (v < 1) throw invalidArgument('max_output_tokens must be positive.');
  return v;
}

const partsOf = (c: Json): Json[] => (Array.isArray(c.parts) ? (c.parts as Json[]) : []);

function systemText(body: Json): string {
  const si = get(body, 'systemInstruction');
  if (typeof si === 'string') return si;
  if (!isJsonObject(si)) return '';
  return partsOf(si)
    .map((p) => (typeof p.text === 'string' ? p.text : ''))
    .join('');
}

/**
 * promptTokenCount = tok(system text) + Σ contents [tok(text of its parts) + 258 per media part
 *   + tok(call name) + tok(JSON args) per functionCall + tok(name) + tok(JSON response) per
 *   functionResponse] + (tools ? tok(JSON.stringify(tools)) : 0)
 */
export function countGeminiPromptTokens(body: Json): number {
  let n = countTextTokens(systemText(body));
  const contents = Array.isArray(body.contents) ? (body.contents as Json[]) : [];
  for (const c of contents) {
    if (!isJsonObject(c)) continue;
    let text = '';
    for (const p of partsOf(c)) {
      if (!isJsonObject(p)) continue;
      if (typeof p.text === 'string' && p.thought !== true) text += p.text;
      if (get(p, 'inlineData') !== undefined || get(p, 'fileData') !== undefined) n += GEMINI_MEDIA_TOKENS;
      const call = get(p, 'functionCall');
      if (isJsonObject(call))
        n += countTextTokens(String(call.name)) + countTextTokens(JSON.stringify(call.args ?? {}));
      const resp = get(p, 'functionResponse');
      if (isJsonObject(resp))
        n += countTextTokens(String(resp.name)) + countTextTokens(JSON.stringify(resp.response ?? {}));
    }
    n += countTextTokens(text);
  }
  const tools = body.tools;
  if (Array.isArray(tools) && tools.length > 0) n += countTextTokens(JSON.stringify(tools));
  return n;
}

/** Seed of the generated text: system text + "\n", then each content's text + "\n". */
export function geminiSeedText(body: Json): string {
  let s = systemText(body) + '\n';
  const contents = Array.isArray(body.contents) ? (body.contents as Json[]) : [];
  for (const c of contents) {
    if (!isJsonObject(c)) continue;
    for (const p of partsOf(c))
      if (isJsonObject(p) && typeof p.text === 'string' && p.thought !== true) s += p.text;
    s += '\n';
  }
  return s;
}

/** The exact text the mock answers to this request body (`tokens` tokens). */
export function expectedGeminiText(body: Json, tokens = DEFAULT_COMPLETION_TOKENS): string {
  return piecesFor(geminiSeedText(body), tokens).join('');
}

interface ToolPick {
  name: string;
  args: Json;
}

/** The arguments the mock writes: each required property set by its type (in any case). */
export const geminiToolArgs = (schema: unknown): Json => argsFromSchema(schema, true);

/**
 * A candidate's `groundingMetadata` when the request offers Google Search (`googleSearch`):
 * the queries it ran (as many as the scenario's webSearches, 1 by default), each billed.
 */
function groundingOf(body: Json, s: Scenario): Json {
  const offered =
    Array.isArray(body.tools) && body.tools.some((t) => isJsonObject(t) && get(t, 'googleSearch') != null);
  if (!offered) return {};
  const n = s.webSearches ?? 1;
  return {
    groundingMetadata: {
      webSearchQueries: Array.from({ length: n }, (_, i) => `mock query ${i + 1}`),
      searchEntryPoint: { renderedContent: '<div>mock search</div>' },
      groundingChunks: Array.from({ length: n }, (_, i) => ({
        web: { uri: `https://example.com/${i + 1}`, title: `example.com` },
      })),
    },
  };
}

/** The deterministic tool-use rule (see README): one call of the first (allowed) function. */
function pickTool(body: Json, contents: Json[]): ToolPick | null {
  const decls: Json[] = [];
  const tools = body.tools;
  if (Array.isArray(tools))
    for (const t of tools) {
      const d = isJsonObject(t) ? get(t, 'functionDeclarations') : undefined;
      if (Array.isArray(d))
        for (const x of d) if (isJsonObject(x) && typeof x.name === 'string') decls.push(x);
    }
  if (decls.length === 0) return null;
  const tc = get(body, 'toolConfig');
  const fcc = isJsonObject(tc) ? get(tc, 'functionCallingConfig') : undefined;
  const mode = isJsonObject(fcc) ? fcc.mode : undefined;
  if (mode === 'NONE') return null;
  const last = contents[contents.length - 1]!;
  if (last.role === 'model') return null;
  const parts = partsOf(last);
  if (parts.some((p) => get(p, 'functionResponse') !== undefined)) return null;
  if (!parts.some((p) => typeof p.text === 'string')) return null;
  const allowed = isJsonObject(fcc) ? get(fcc, 'allowedFunctionNames') : undefined;
  let decl = decls[0]!;
  if (mode === 'ANY' && Array.isArray(allowed) && allowed.length > 0)
    decl = decls.find((d) => allowed.includes(d.name)) ?? decl;
  const schema = get(decl, 'parametersJsonSchema') ?? decl.parameters;
  return { name: decl.name as string, args: geminiToolArgs(schema) };
}

// ── responses ─────────────────────────────────────────────────────────────────────────────

interface Frame {
  data: string;
  kind: 'content' | 'tail';
}

function usageMetadata(prompt: number, candidates: number, s: Scenario): Json {
  const cached = Math.max(0, Math.min(s.cachedTokens ?? 0, prompt));
  const thoughts = Math.max(0, s.reasoningTokens ?? 0);
  const u: Json = {
    promptTokenCount: prompt,
    candidatesTokenCount: candidates,
    totalTokenCount: prompt + candidates + thoughts,
  };
  if (cached > 0) u.cachedContentTokenCount = cached;
  u.promptTokensDetails = [{ modality: 'TEXT', tokenCount: prompt }];
  if (cached > 0) u.cacheTokensDetails = [{ modality: 'TEXT', tokenCount: cached }];
  if (thoughts > 0) u.thoughtsTokenCount = thoughts;
  return u;
}

function headersFor(s: Scenario, contentType: string): Record<string, string> {
  return { 'content-type': contentType, vary: 'Origin, X-Origin, Referer', ...(s.headers ?? {}) };
}

function sendError(kit: MockKit, res: ServerResponse, e: GoogleError, s: Scenario = {}): void {
  const h = headersFor(s, JSON_CT);
  if (e.code === 429 && h['retry-after'] === undefined) h['retry-after'] = String(s.retryAfterSeconds ?? 1);
  else if (s.retryAfterSeconds !== undefined && h['retry-after'] === undefined)
    h['retry-after'] = String(s.retryAfterSeconds);
  kit.sendJson(res, e.code, errorJson(e, true), h);
}

function scenarioError(s: Scenario, model: string): GoogleError {
  const code = s.status!;
  const details =
    code === 429
      ? [
          {
            '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
            violations: [
              {
                quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests',
                quotaId: 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier',
                quotaDimensions: { location: 'global', model },
                quotaValue: '10',
              },
            ],
          },
          { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${s.retryAfterSeconds ?? 1}s` },
        ]
      : undefined;
  return new GoogleError(code, s.errorMessage ?? defaultMessage(code, model), statusName(code), details);
}

function sendFrames(kit: MockKit, res: ServerResponse, s: Scenario, frames: Frame[]): void {
  const cutAt = s.cutAfterChunks;
  const garbageAt = s.garbageAfterChunks;
  const errorAt = s.midStreamError;
  const out: string[] = [];
  const garbage = `data: {broken${CRLF2}`;
  if (garbageAt === 0) out.push(garbage);
  let seen = 0;
  for (const f of frames) {
    if (seen === cutAt || seen === errorAt) break;
    // A cut stream never gets its last frame (finishReason + usage).
    if (cutAt !== undefined && f.kind === 'tail') break;
    out.push(f.data);
    if (f.kind === 'content' && ++seen === garbageAt) out.push(garbage);
  }
  const errored = errorAt !== undefined && seen === errorAt;
  if (errored)
    out.push(
      `data: ${errorJson(new GoogleError(500, s.errorMessage ?? defaultMessage(500, ''), 'INTERNAL'), false)}${CRLF2}`,
    );
  const cut = !errored && cutAt !== undefined;

  res.writeHead(200, headersFor(s, SSE_CT));
  res.flushHeaders();
  kit.writeFrames(res, s, out, cut);
}

/**
 * The signature this mock gives a call of `name` (standard base64 with '+', '/' and padding, as
 * Google's are), so that a gateway has to carry it back exactly.
 */
export const thoughtSignatureFor = (name: string): string =>
  Buffer.concat([Buffer.from([0xfb, 0xef, 0xff]), Buffer.from(`mole-thought:${name}`)]).toString('base64');

/** Gemini 3's rule: every model turn's first function call comes back with its signature. */
function checkThoughtSignatures(contents: Json[]): void {
  contents.forEach((c, i) => {
    if (c.role !== 'model' || !Array.isArray(c.parts)) return;
    const j = c.parts.findIndex((p) => isJsonObject(p) && get(p, 'functionCall') !== undefined);
    if (j < 0) return;
    const part = c.parts[j] as Json;
    const call = get(part, 'functionCall') as Json;
    const sig = get(part, 'thoughtSignature');
    if (sig === undefined)
      throw invalidArgument(
        `Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call \`default_api:${String(call.name)}\` , position ${i + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.`,
      );
    if (sig !== thoughtSignatureFor(String(call.name))) throw invalidArgument('Corrupted thought signature.');
  });
}

function generate(kit: MockKit, r: MockRequest, model: string, stream: boolean): void {
  if (r.parseFailed) throw invalidArgument('Invalid JSON payload received. Unexpected token.');
  if (!isJsonObject(r.body))
    throw invalidArgument('Invalid JSON payload received. Unknown name "": Root element must be a message.');
  const body = r.body;
  checkRequest(body, KNOWN_FIELDS);
  const contents = checkContents(body, 'GenerateContentRequest');
  const cap = maxOutputTokens(body);

  const s = kit.pickScenario(model);
  if (s.thoughtSignatures) checkThoughtSignatures(contents);
  const { res } = r;
  const respond = () => {
    const responseId = kit.nextId();
    if (s.errorInBody) {
      const e = new GoogleError(500, s.errorMessage ?? defaultMessage(500, model), 'INTERNAL');
      if (stream)
        sendFrames(kit, res, { ...s, cutAfterChunks: undefined }, [
          { data: `data: ${errorJson(e, false)}${CRLF2}`, kind: 'tail' },
        ]);
      else kit.sendJson(res, 200, errorJson(e, true), headersFor(s, JSON_CT));
      return;
    }
    const prompt = countGeminiPromptTokens(body);
    const tool = pickTool(body, contents);
    const want = s.completionTokens ?? DEFAULT_COMPLETION_TOKENS;
    const count = Math.max(0, Math.min(want, cap));
    const finishReason = tool ? 'STOP' : want > cap ? 'MAX_TOKENS' : 'STOP';
    const pieces = tool ? [] : piecesFor(geminiSeedText(body), count);
    const candidates = tool ? countTextTokens(tool.name) + countTextTokens(JSON.stringify(tool.args)) : count;
    const usage = s.omitUsage ? undefined : usageMetadata(prompt, candidates, s);
    const toolParts = tool
      ? [
          {
            functionCall: { name: tool.name, args: tool.args },
            ...(s.thoughtSignatures ? { thoughtSignature: thoughtSignatureFor(tool.name) } : {}),
          },
        ]
      : [];

    // Grounding with Google Search: the queries it ran ride on the last candidate.
    const grounding = groundingOf(body, s);
    if (!stream) {
      const parts = tool ? toolParts : [{ text: pieces.join('') }];
      const out = {
        candidates: [{ content: { parts, role: 'model' }, finishReason, ...grounding, index: 0 }],
        usageMetadata: usage,
        modelVersion: model,
        responseId,
      };
      kit.sendJson(res, 200, JSON.stringify(out, null, 2), headersFor(s, JSON_CT));
      return;
    }
    const promptOnly = s.omitUsage
      ? undefined
      : {
          promptTokenCount: prompt,
          totalTokenCount: prompt,
          promptTokensDetails: [{ modality: 'TEXT', tokenCount: prompt }],
        };
    const frame = (parts: Json[], extra: Json, u: Json | undefined): string =>
      `data: ${googleJson({
        candidates: [{ content: { parts, role: 'model' }, ...extra, index: 0 }],
        usageMetadata: u,
        modelVersion: model,
        responseId,
      })}${CRLF2}`;
    const frames: Frame[] = pieces.map((p) => ({
      data: frame([{ text: p }], {}, promptOnly),
      kind: 'content',
    }));
    frames.push({
      data: frame(tool ? toolParts : [{ text: '' }], { finishReason, ...grounding }, usage),
      kind: tool ? 'content' : 'tail',
    });
    sendFrames(kit, res, s, frames);
  };
  playScenario(kit, res, s, stream, () => sendError(kit, res, scenarioError(s, model), s), respond);
}

function countTokens(kit: MockKit, r: MockRequest): void {
  if (r.parseFailed) throw invalidArgument('Invalid JSON payload received. Unexpected token.');
  if (!isJsonObject(r.body))
    throw invalidArgument('Invalid JSON payload received. Unknown name "": Root element must be a message.');
  checkRequest(r.body, COUNT_FIELDS);
  const wrapped = get(r.body, 'generateContentRequest');
  let total: number;
  if (isJsonObject(wrapped)) {
    checkRequest(wrapped, KNOWN_FIELDS);
    checkContents(wrapped, 'CountTokensRequest.generate_content_request');
    total = countGeminiPromptTokens(wrapped);
  } else {
    checkContents(r.body, 'CountTokensRequest');
    total = countGeminiPromptTokens(r.body);
  }
  const out = { totalTokens: total, promptTokensDetails: [{ modality: 'TEXT', tokenCount: total }] };
  kit.sendJson(r.res, 200, JSON.stringify(out, null, 2), { 'content-type': JSON_CT });
}

/** Google's default vector size by model family (`outputDimensionality` picks another). */
const embeddingSize = (model: string) => (model.startsWith('gemini-embedding') ? 3072 : 768);

/**
 * embedContent / batchEmbedContents: one vector a content, made from its text as the OpenAI
 * embeddings route makes it, so a test can compare a vector across protocols. A batch's
 * requests each name the model of the URL. No usage: Google's answer has none.
 */
function embed(kit: MockKit, r: MockRequest, model: string, batch: boolean): void {
  if (r.parseFailed) throw invalidArgument('Invalid JSON payload received. Unexpected token.');
  if (!isJsonObject(r.body))
    throw invalidArgument('Invalid JSON payload received. Unknown name "": Root element must be a message.');
  const body = r.body;
  const requests = batch ? get(body, 'requests') : [body];
  if (!Array.isArray(requests) || requests.length === 0)
    throw invalidArgument('* BatchEmbedContentsRequest.requests: contents is not specified');
  if (requests.length > 100)
    throw invalidArgument('* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch');
  const vectors = requests.map((q, i) => {
    const where = batch ? `BatchEmbedContentsRequest.requests[${i}]` : 'EmbedContentRequest';
    if (!isJsonObject(q)) throw invalidArgument(`* ${where}: must be a message`);
    if (batch && get(q, 'model') !== `models/${model}`)
      throw invalidArgument(`* BatchEmbedContentsRequest.requests[${i}].model: unexpected model name format`);
    const content = get(q, 'content');
    const parts = isJsonObject(content) ? get(content, 'parts') : undefined;
    if (!Array.isArray(parts) || parts.length === 0)
      throw invalidArgument(`* ${where}.content: contents is not specified`);
    const text = parts.map((p) => (isJsonObject(p) && typeof p.text === 'string' ? p.text : '')).join('');
    if (text === '') throw invalidArgument(`* ${where}.content: text is not specified`);
    const dims = get(q, 'outputDimensionality');
    const size = typeof dims === 'number' && Number.isInteger(dims) && dims > 0 ? dims : embeddingSize(model);
    return makeEmbedding(text, size).floats;
  });
  const s = kit.pickScenario(model);
  const { res } = r;
  const respond = () => {
    const out = batch
      ? { embeddings: vectors.map((values) => ({ values })) }
      : { embedding: { values: vectors[0] } };
    kit.sendJson(res, 200, JSON.stringify(out), headersFor(s, JSON_CT));
  };
  playScenario(kit, res, s, false, () => sendError(kit, res, scenarioError(s, model), s), respond);
}

function modelInfo(id: string): Json {
  return {
    name: `models/${id}`,
    version: '001',
    displayName: id
      .split('-')
      .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
      .join(' '),
    description: `Mock ${id}`,
    inputTokenLimit: 1_048_576,
    outputTokenLimit: 65_536,
    supportedGenerationMethods: [
      'generateContent',
      'countTokens',
      'createCachedContent',
      'batchGenerateContent',
    ],
    temperature: 1,
    topP: 0.95,
    topK: 64,
    maxTemperature: 2,
    thinking: true,
  };
}

const METHOD_RE = /^\/(v1beta|v1)\/models\/([^/:]+):([A-Za-z]+)$/;
const MODELS_RE = /^\/(v1beta|v1)\/models(?:\/([^/:]+))?$/;

export const geminiRoutes: ProtocolRoutes = (kit, r) => {
  const { route, method, req, query } = r;
  const headerKey = req.headers['x-goog-api-key'];
  const given = typeof headerKey === 'string' ? headerKey : (query.get('key') ?? undefined);
  const m = METHOD_RE.exec(route);
  const list = m ? null : MODELS_RE.exec(route);
  if (!m && !list) return false;
  const version = (m ?? list)![1];
  // GET /v1/models[/{id}] is OpenAI's too: it is Gemini's only with a Google credential.
  if (list && version === 'v1' && given === undefined) return false;
  try {
    if (kit.apiKey !== undefined) {
      if (given === undefined)
        throw new GoogleError(
          403,
          "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
          'PERMISSION_DENIED',
        );
      if (given !== kit.apiKey)
        throw invalidArgument('API key not valid. Please pass a valid API key.', [
          {
            '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
            reason: 'API_KEY_INVALID',
            domain: 'googleapis.com',
            metadata: { service: 'generativelanguage.googleapis.com' },
          },
        ]);
    }
    if (list) {
      if (method !== 'GET') throw new GoogleError(404, `Method not found.`, 'NOT_FOUND');
      const id = list[2] === undefined ? undefined : decodeURIComponent(list[2]);
      if (id === undefined) {
        const body = { models: GEMINI_MODELS.map(modelInfo) };
        kit.sendJson(r.res, 200, JSON.stringify(body, null, 2), { 'content-type': JSON_CT });
        return true;
      }
      if (!GEMINI_MODELS.includes(id))
        throw new GoogleError(
          404,
          `models/${id} is not found for API version ${version}, or is not supported for GET. Call ListModels to see the list of available models and their supported methods.`,
          'NOT_FOUND',
        );
      kit.sendJson(r.res, 200, JSON.stringify(modelInfo(id), null, 2), { 'content-type': JSON_CT });
      return true;
    }
    const model = decodeURIComponent(m![2]!);
    const action = m![3];
    if (method !== 'POST') throw new GoogleError(404, 'Method not found.', 'NOT_FOUND');
    if (action === 'generateContent') generate(kit, r, model, false);
    else if (action === 'streamGenerateContent') {
      if (query.get('alt') !== 'sse')
        throw invalidArgument(
          'The mock provider streams only with ?alt=sse (a JSON array stream is not implemented).',
        );
      generate(kit, r, model, true);
    } else if (action === 'countTokens') countTokens(kit, r);
    else if (action === 'embedContent') embed(kit, r, model, false);
    else if (action === 'batchEmbedContents') embed(kit, r, model, true);
    else throw new GoogleError(404, `Method not found.`, 'NOT_FOUND');
  } catch (e) {
    if (!(e instanceof GoogleError)) throw e;
    sendError(kit, r.res, e);
  }
  return true;
};
