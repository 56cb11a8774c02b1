// A Gemini upstream (generativelanguage API or anything speaking it), over undici with
// keep-alive pools. `base_url` is the bare origin (e.g. https://generativelanguage.googleapis.com);
// a trailing `/`, `/v1beta` or `/v1` is tolerated. The model goes in the path, the key in
// `x-goog-api-key`. It generates and embeds.
import { geminiOrigin } from '../../channels/base-url.js';
import type { Operation } from '../canonical.js';
import { geminiEmbedMethod } from '../protocols/embeddings.js';
import { singleProtocolTransport, type UpstreamTimeouts } from './openai.js';

/** The upstream URL of a `method` call for `model` (a `models/` prefix is tolerated). */
export function geminiUrl(baseUrl: string, model: string, method: string): string {
  const m = model.startsWith('models/') ? model.slice('models/'.length) : model;
  return `${geminiOrigin(baseUrl)}/v1beta/models/${encodeURIComponent(m)}:${method}`;
}

const OPERATIONS: readonly Operation[] = ['generate', 'embeddings'];

export const createGeminiTransport = (t: UpstreamTimeouts) =>
  singleProtocolTransport(
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
