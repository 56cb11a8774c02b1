// A Gemini upstream (generativelanguage API or anything speaking it), over undici with
// keep-alive pools. `base_url` is the bare origin (e.g. https://generativelanguage.googleapis.com);
// a trailing `/`, `/v1beta` or `/v1` is tolerated. The model goes in the path, the key in
// `x-goog-api-key`. It generates and embeds.
import { geminiOrigin } from '../../channels/base-url.js';
import type { Operation } from '../canonical.js';
import { geminiEmbedMethod } from '../protocols/embeddings.js';
import { MAX_UPSTREAM_BODY, readAll, UpstreamBody } from '../upstream-body.js';
import { singleProtocolTransport, type UpstreamTimeouts } from './openai.js';
import type { ChannelTransport, UpstreamCall, UpstreamResponse } from './transport.js';

/** The upstream URL of a `method` call for `model` (a `models/` prefix is tolerated). */
export function geminiUrl(baseUrl: string, model: string, method: string): string {
  const m = model.startsWith('models/') ? model.slice('models/'.length) : model;
  return `${geminiOrigin(baseUrl)}/v1beta/models/${encodeURIComponent(m)}:${method}`;
}

const OPERATIONS: readonly Operation[] = ['generate', 'embeddings'];

/**
 * Google takes at most this many requests a batchEmbedContents call; OpenAI 2,048 inputs a
 * call, and its SDKs send up to that. A longer batch goes in pieces, one after another,
 * answered as one.
 */
export const EMBED_BATCH = 100;

export function createGeminiTransport(t: UpstreamTimeouts): ChannelTransport & { close(): Promise<void> } {
  const inner = singleProtocolTransport(
    t,
    'gemini',
    OPERATIONS,
    (call) =>
      geminiUrl(
        call.channel.baseUrl,
        call.model,
        call.operation === 'embeddings'
          ? geminiEmbedMethod(call.body)
          : call.stream
            ? 'streamGenerateContent?alt=sse'
            : 'generateContent',
      ),
    (call) => ({ 'x-goog-api-key': call.channel.apiKey }),
  );
  const requestsOf = (call: UpstreamCall): unknown[] | null => {
    const requests = (call.body as { requests?: unknown } | null)?.requests;
    return call.operation === 'embeddings' && Array.isArray(requests) ? requests : null;
  };
  return {
    ...inner,
    send(call) {
      const requests = requestsOf(call);
      return requests && requests.length > EMBED_BATCH ? inBatches(inner, call, requests) : inner.send(call);
    },
  };
}

/** The batch's pieces in order; the first answer that is not their vectors answers for all. */
async function inBatches(
  inner: ChannelTransport,
  call: UpstreamCall,
  requests: unknown[],
): Promise<UpstreamResponse> {
  const embeddings: unknown[] = [];
  for (let i = 0; i < requests.length; i += EMBED_BATCH) {
    const piece = { ...(call.body as object), requests: requests.slice(i, i + EMBED_BATCH) };
    const res = await inner.send({ ...call, body: piece });
    if (res.status >= 300) return res;
    const bytes = await readAll(res.body, MAX_UPSTREAM_BODY);
    let json: { embeddings?: unknown } | null = null;
    try {
      json = JSON.parse(bytes.toString('utf8')) as { embeddings?: unknown };
    } catch {
      /* not JSON: answered as it came */
    }
    if (!Array.isArray(json?.embeddings)) return { status: res.status, body: UpstreamBody.of(bytes) };
    embeddings.push(...json.embeddings);
  }
  return { status: 200, body: UpstreamBody.of(Buffer.from(JSON.stringify({ embeddings }))) };
}
