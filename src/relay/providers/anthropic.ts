// Anthropic upstreams (api.anthropic.com or anything speaking its Messages API): POST
// `${base_url}/v1/messages` with `x-api-key`, over undici with keep-alive pools. `base_url`
// is the bare origin (a trailing `/` or `/v1` is tolerated). They serve generation only, in
// the Anthropic protocol.
import type { Channel } from '../../channels/service.js';
import type { Operation, Protocol } from '../canonical.js';
import { postJson, type UpstreamTimeouts, upstreamAgent } from './openai.js';
import type { ChannelTransport, UpstreamCall, UpstreamResponse } from './transport.js';

/** Sent when the client did not name one (translated requests; clients that omit it). */
export const ANTHROPIC_VERSION = '2023-06-01';

/** The Messages URL for a channel's base_url. */
export function messagesUrl(baseUrl: string): string {
  return `${baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '')}/v1/messages`;
}

const GENERATE: readonly Protocol[] = ['anthropic'];
const NONE: readonly Protocol[] = [];

export function createAnthropicTransport(t: UpstreamTimeouts): ChannelTransport & { close(): Promise<void> } {
  const agent = upstreamAgent(t);
  return {
    protocols(_channel: Channel, operation: Operation) {
      return operation === 'generate' ? GENERATE : NONE;
    },
    send(call: UpstreamCall): Promise<UpstreamResponse> {
      return postJson(agent, messagesUrl(call.channel.baseUrl), call, {
        // The client's own anthropic-version wins (pass-through forwards it verbatim).
        'anthropic-version': call.headers['anthropic-version'] ?? ANTHROPIC_VERSION,
        'x-api-key': call.channel.apiKey,
      });
    },
    close: () => agent.close(),
  };
}
