// Embeddings in OpenAI's protocol (`POST /v1/embeddings`) and Gemini's (`embedContent`,
// `batchEmbedContents`). Same protocol in and out passes through, as generation does. Across
// protocols a request is a list of texts and an optional vector size (the canonical request's
// `embed`), an answer a vector for each text (the canonical answer's `vectors`). Gemini answers
// carry no token counts: the relay bills the texts it counted locally, as for any answer
// without usage. Token-id inputs (OpenAI) and media parts (Gemini) go only as sent.
import {
  type CanonicalAnswer,
  type CanonicalEmbed,
  type CanonicalRequest,
  type CanonicalUsage,
  canonicalRequest,
} from '../canonical.js';
import { countText } from '../tokens.js';
import { bad, isObject, type Json, protoField } from './json.js';
import type { IngressRequest } from './types.js';

const answerOf = (vectors: number[][], usage: CanonicalUsage | null, model = ''): CanonicalAnswer => ({
  id: '',
  model,
  text: '',
  reasoning: '',
  toolCalls: [],
  stopReason: 'stop',
  usage,
  vectors,
});

const requestOf = (embed: CanonicalEmbed): CanonicalRequest => canonicalRequest({ embed });

/** An optional vector size: a positive integer. */
function dimensionsOf(v: unknown, param: string): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65_536)
    throw bad(`"${param}" must be a positive integer`, param);
  return v;
}

// ── Gemini ──────────────────────────────────────────────────────────────────────────────────

/** `batchEmbedContents` carries `requests`; `embedContent` is one request itself. */
const isBatch = (body: Json) => body.requests !== undefined;

interface GeminiEmbedRequest {
  text: string;
  /** Parts other than text (inline or file data): they embed only where sent as they are. */
  media: boolean;
  dimensions: number | null;
}

function geminiEmbedRequests(body: Json, model?: string): GeminiEmbedRequest[] {
  const batch = isBatch(body);
  const list = batch ? body.requests : [body];
  if (!Array.isArray(list) || list.length === 0)
    throw bad('"requests" must be a non-empty array', 'requests');
  return list.map((q: unknown, i) => {
    const at = batch ? `requests[${i}]` : '';
    const path = (name: string) => (at ? `${at}.${name}` : name);
    if (!isObject(q)) throw bad(`"${at}" must be an object`, at);
    // Google refuses a batch request naming another model than the path's.
    const named = q.model;
    if (batch && model !== undefined && named !== undefined && named !== `models/${model}` && named !== model)
      throw bad(`"${path('model')}" must be the model of the path, models/${model}`, path('model'));
    const content = protoField(q, 'content');
    const parts = isObject(content) ? content.parts : undefined;
    if (!Array.isArray(parts) || parts.length === 0)
      throw bad(`"${path('content')}" must be an object with a non-empty "parts" array`, path('content'));
    const texts: string[] = [];
    let media = false;
    parts.forEach((p: unknown, j) => {
      const pp = path(`content.parts[${j}]`);
      if (!isObject(p)) throw bad(`"${pp}" must be an object`, pp);
      if (p.text !== undefined && typeof p.text !== 'string')
        throw bad(`"${pp}.text" must be a string`, `${pp}.text`);
      if (typeof p.text === 'string') texts.push(p.text);
      else media = true;
    });
    return {
      text: texts.join('\n'),
      media,
      dimensions: dimensionsOf(protoField(q, 'outputDimensionality'), path('outputDimensionality')),
    };
  });
}

/** A Gemini embed request, validated and counted (its texts are its prompt; nothing is generated). */
export function parseGeminiEmbed(body: Json, model: string): IngressRequest {
  let promptTokens = 0;
  for (const q of geminiEmbedRequests(body, model)) promptTokens += countText(q.text);
  return {
    protocol: 'gemini',
    operation: 'embeddings',
    model,
    stream: false,
    promptTokens,
    maxOutputTokens: 0,
    impliedOutputCap: null,
    clientWantsUsage: false,
    body,
  };
}

export function geminiEmbedToCanonical(r: IngressRequest): CanonicalRequest {
  const requests = geminiEmbedRequests(r.body);
  if (requests.some((q) => q.media))
    throw bad('only text parts can be embedded by this model’s channel', 'content');
  const dimensions = requests[0]!.dimensions;
  if (requests.some((q) => q.dimensions !== dimensions))
    throw bad('every request must ask for the same outputDimensionality', 'outputDimensionality');
  return requestOf({ inputs: requests.map((q) => q.text), dimensions });
}

/** Pass-through: as the client wrote it, each batch request naming the upstream's model. */
export function geminiEmbedPassThroughBody(r: IngressRequest, upstreamModel: string): Json {
  const name = `models/${upstreamModel}`;
  if (!isBatch(r.body)) return r.body.model === undefined ? r.body : { ...r.body, model: name };
  return { ...r.body, requests: (r.body.requests as Json[]).map((q) => ({ ...q, model: name })) };
}

export function geminiEmbedFromCanonical(e: CanonicalEmbed, upstreamModel: string): Json {
  return {
    requests: e.inputs.map((text) => ({
      model: `models/${upstreamModel}`,
      content: { parts: [{ text }] },
      ...(e.dimensions === null ? {} : { outputDimensionality: e.dimensions }),
    })),
  };
}

/** The method a Gemini embed body is for, by its shape. */
export const geminiEmbedMethod = (body: unknown): string =>
  isObject(body) && isBatch(body) ? 'batchEmbedContents' : 'embedContent';

/** A Gemini embed answer (`embedding` or `embeddings`) as canonical; null when it is not one. */
export function decodeGeminiEmbed(json: Json): CanonicalAnswer | null {
  const values = (e: unknown): number[] => {
    const v = isObject(e) ? e.values : undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'number')) throw new Error('no values');
    return v as number[];
  };
  if (Array.isArray(json.embeddings)) return answerOf(json.embeddings.map(values), null);
  if (isObject(json.embedding)) return answerOf([values(json.embedding)], null);
  return null;
}

export function encodeGeminiEmbed(a: CanonicalAnswer, r: IngressRequest): Json {
  const vectors = a.vectors ?? [];
  return isBatch(r.body)
    ? { embeddings: vectors.map((values) => ({ values })) }
    : { embedding: { values: vectors[0] ?? [] } };
}

// ── OpenAI ──────────────────────────────────────────────────────────────────────────────────

export function openaiEmbedToCanonical(r: IngressRequest): CanonicalRequest {
  const input = r.body.input;
  const inputs = typeof input === 'string' ? [input] : input;
  if (!Array.isArray(inputs) || inputs.length === 0 || !inputs.every((x) => typeof x === 'string'))
    throw bad('only text "input" (a string or an array of strings) can go to this model’s channel', 'input');
  return requestOf({ inputs, dimensions: dimensionsOf(r.body.dimensions, 'dimensions') });
}

export function openaiEmbedFromCanonical(e: CanonicalEmbed, upstreamModel: string): Json {
  return {
    model: upstreamModel,
    input: e.inputs,
    encoding_format: 'float',
    ...(e.dimensions === null ? {} : { dimensions: e.dimensions }),
  };
}

/** OpenAI's float32 little-endian base64 vector (the SDKs ask for it by default). */
function fromBase64(s: string): number[] {
  const b = Buffer.from(s, 'base64');
  const out = new Array<number>(b.length >> 2);
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(i * 4);
  return out;
}

function toBase64(v: number[]): string {
  const b = Buffer.allocUnsafe(v.length * 4);
  for (let i = 0; i < v.length; i++) b.writeFloatLE(v[i]!, i * 4);
  return b.toString('base64');
}

/** An OpenAI embeddings answer (`data` of embeddings) as canonical; null when it is not one. */
export function decodeOpenAIEmbed(json: Json, usage: CanonicalUsage | null): CanonicalAnswer | null {
  if (!Array.isArray(json.data) || json.choices !== undefined) return null;
  const items = json.data.filter(isObject);
  items.sort((a, b) => Number(a.index ?? 0) - Number(b.index ?? 0));
  const vectors = items.map((d) => {
    const e = d.embedding;
    if (typeof e === 'string') return fromBase64(e);
    if (!Array.isArray(e) || e.some((x) => typeof x !== 'number')) throw new Error('no embedding');
    return e as number[];
  });
  return answerOf(vectors, usage, typeof json.model === 'string' ? json.model : '');
}

export function encodeOpenAIEmbed(a: CanonicalAnswer, r: IngressRequest): Json {
  const base64 = r.body.encoding_format === 'base64';
  const prompt = a.usage ? a.usage.input + a.usage.cacheRead + a.usage.cacheWrite : 0;
  return {
    object: 'list',
    data: (a.vectors ?? []).map((v, index) => ({
      object: 'embedding',
      index,
      embedding: base64 ? toBase64(v) : v,
    })),
    model: r.model,
    usage: { prompt_tokens: prompt, total_tokens: prompt },
  };
}
