// Anthropic upstreams (api.anthropic.com or anything speaking its Messages API): POST
// `${base_url}/v1/messages` with `x-api-key`, over undici with keep-alive pools. `base_url`
// is the bare origin (channels/base-url.ts: a trailing `/`, `/v1` or `/v1/messages` is
// tolerated). They serve generation only, in the Anthropic protocol.
import { anthropicOrigin } from '../../channels/base-url.js';
import { singleProtocolTransport, type UpstreamTimeouts } from './openai.js';

/** Sent when the client did not name one (translated requests; clients that omit it). */
export const ANTHROPIC_VERSION = '2023-06-01';

/** The Messages URL for a channel's base_url. */
export function messagesUrl(baseUrl: string): string {
  return `${anthropicOrigin(baseUrl)}/v1/messages`;
}

export const createAnthropicTransport = (t: UpstreamTimeouts) =>
  singleProtocolTransport(
    t,
    'anthropic',
    ['generate'],
    (call) => messagesUrl(call.channel.baseUrl),
    (call) => ({
      // The client's own anthropic-version wins (pass-through forwards it verbatim).
      'anthropic-version': call.headers['anthropic-version'] ?? ANTHROPIC_VERSION,
      'x-api-key': call.channel.apiKey,
    }),
  );
