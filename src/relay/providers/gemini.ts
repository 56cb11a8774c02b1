// A Gemini upstream (generativelanguage API or anything speaking it), over undici with
// keep-alive pools. `base_url` is the bare origin (e.g. https://generativelanguage.googleapis.com);
// a trailing `/`, `/v1beta` or `/v1` is tolerated. The model goes in the path, the key in
// `x-goog-api-key`.
import { geminiOrigin } from '../../channels/base-url.js';
import { generateOnlyTransport, type UpstreamTimeouts } from './openai.js';

/** The upstream URL of a generate call for `model` (a `models/` prefix is tolerated). */
export function geminiUrl(baseUrl: string, model: string, stream: boolean): string {
  const m = model.startsWith('models/') ? model.slice('models/'.length) : model;
  return `${geminiOrigin(baseUrl)}/v1beta/models/${encodeURIComponent(m)}:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`;
}

export const createGeminiTransport = (t: UpstreamTimeouts) =>
  generateOnlyTransport(
    t,
    'gemini',
    (call) => geminiUrl(call.channel.baseUrl, call.model, call.stream),
    (call) => ({ 'x-goog-api-key': call.channel.apiKey }),
  );
