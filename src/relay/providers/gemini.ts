// A Gemini upstream (generativelanguage API or anything speaking it), over undici with
// keep-alive pools. `base_url` is the bare origin (e.g. https://generativelanguage.googleapis.com);
// a trailing `/`, `/v1beta` or `/v1` is tolerated. The model goes in the path, the key in
// `x-goog-api-key`.
import type { Channel } from '../../channels/service.js';
import type { Operation, Protocol } from '../canonical.js';
import { postJson, type UpstreamTimeouts, upstreamAgent } from './openai.js';
import type { ChannelTransport, UpstreamCall, UpstreamResponse } from './transport.js';

const GENERATE: readonly Protocol[] = ['gemini'];
const NONE: readonly Protocol[] = [];

/** The origin to put `/v1beta/models/…` after. */
export function geminiOrigin(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '').replace(/\/(v1beta|v1)$/, '');
}

/** The upstream URL of a generate call for `model` (a `models/` prefix is tolerated). */
export function geminiUrl(baseUrl: string, model: string, stream: boolean): string {
  const m = model.startsWith('models/') ? model.slice('models/'.length) : model;
  return `${geminiOrigin(baseUrl)}/v1beta/models/${encodeURIComponent(m)}:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`;
}

export function createGeminiTransport(t: UpstreamTimeouts): ChannelTransport & { close(): Promise<void> } {
  const agent = upstreamAgent(t);
  return {
    protocols(_channel: Channel, operation: Operation) {
      return operation === 'generate' ? GENERATE : NONE;
    },
    send(call: UpstreamCall): Promise<UpstreamResponse> {
      return postJson(agent, geminiUrl(call.channel.baseUrl, call.model, call.stream), call, {
        'x-goog-api-key': call.channel.apiKey,
      });
    },
    close: () => agent.close(),
  };
}
