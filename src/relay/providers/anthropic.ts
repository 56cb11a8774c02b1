// Anthropic upstreams (api.anthropic.com or anything speaking its Messages API): POST
// `${base_url}/v1/messages` with `x-api-key`, over undici with keep-alive pools. They serve
// generation only, in the Anthropic protocol.
import { Agent, request } from 'undici';
import type { Channel } from '../../channels/service.js';
import type { Operation, Protocol } from '../canonical.js';
import { asFailure, type UpstreamTimeouts } from './openai.js';
import type { ChannelTransport, UpstreamCall, UpstreamResponse } from './transport.js';

export const ANTHROPIC_VERSION = '2023-06-01';

/** The Messages URL for a channel whose base_url is the bare origin (a trailing `/` or `/v1` is tolerated). */
export function messagesUrl(baseUrl: string): string {
  const base = baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
  return `${base}/v1/messages`;
}

const GENERATE: readonly Protocol[] = ['anthropic'];
const NONE: readonly Protocol[] = [];

export function createAnthropicTransport(t: UpstreamTimeouts): ChannelTransport & { close(): Promise<void> } {
  const agent = new Agent({
    connect: { timeout: t.connectMs },
    headersTimeout: t.firstByteMs,
    bodyTimeout: t.idleMs,
    keepAliveTimeout: 30_000,
    ...(t.maxConnections > 0 ? { connections: t.maxConnections } : {}),
    pipelining: 1,
  });
  return {
    protocols(_channel: Channel, operation: Operation) {
      return operation === 'generate' ? GENERATE : NONE;
    },
    async send(call: UpstreamCall): Promise<UpstreamResponse> {
      const { channel } = call;
      const headers: Record<string, string> = {
        // The client's own anthropic-version wins (pass-through forwards it), else the stable one.
        'anthropic-version': ANTHROPIC_VERSION,
        ...call.headers,
        'content-type': 'application/json',
        accept: call.stream ? 'text/event-stream' : 'application/json',
        'x-api-key': channel.apiKey,
      };
      try {
        const res = await request(messagesUrl(channel.baseUrl), {
          method: 'POST',
          dispatcher: agent,
          signal: call.signal,
          headers,
          body: JSON.stringify(call.body),
        });
        return { status: res.statusCode, body: res.body };
      } catch (err) {
        throw asFailure(err);
      }
    },
    close: () => agent.close(),
  };
}
