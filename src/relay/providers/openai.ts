// Any OpenAI-compatible upstream, over undici with keep-alive pools.
import { Agent, errors, request } from 'undici';
import { ENDPOINT_PATHS } from '../protocols/openai.js';
import { UpstreamFailure, type ProviderAdapter, type UpstreamCall, type UpstreamResponse } from './types.js';

export interface UpstreamTimeouts {
  connectMs: number;
  firstByteMs: number;
  idleMs: number;
  /** Connections per upstream origin; 0 = no limit. */
  maxConnections: number;
}

export function createOpenAIAdapter(t: UpstreamTimeouts): ProviderAdapter & { close(): Promise<void> } {
  const agent = new Agent({
    connect: { timeout: t.connectMs },
    headersTimeout: t.firstByteMs,
    bodyTimeout: t.idleMs,
    keepAliveTimeout: 30_000,
    // Each stream holds its upstream connection for its whole length: a cap here would queue
    // every request past it (5,000 slow streams ran 256 at a time under a cap of 256).
    ...(t.maxConnections > 0 ? { connections: t.maxConnections } : {}),
    pipelining: 1,
  });
  return {
    async send(call: UpstreamCall): Promise<UpstreamResponse> {
      const { channel } = call;
      try {
        const res = await request(channel.baseUrl + ENDPOINT_PATHS[call.endpoint], {
          method: 'POST',
          dispatcher: agent,
          signal: call.signal,
          headers: {
            ...call.headers,
            'content-type': 'application/json',
            accept: call.stream ? 'text/event-stream' : 'application/json',
            authorization: `Bearer ${channel.apiKey}`,
          },
          body: JSON.stringify(call.body),
        });
        const ra = res.headers['retry-after'];
        return {
          status: res.statusCode,
          body: res.body,
          retryAfter: typeof ra === 'string' ? ra : undefined,
        };
      } catch (err) {
        throw asFailure(err);
      }
    },
    close: () => agent.close(),
  };
}

export function asFailure(err: unknown): UpstreamFailure {
  const timeout =
    err instanceof errors.HeadersTimeoutError ||
    err instanceof errors.BodyTimeoutError ||
    err instanceof errors.ConnectTimeoutError;
  const code = (err as { code?: string }).code;
  return new UpstreamFailure(
    timeout ? 'upstream timed out' : `upstream connection failed${code ? ` (${code})` : ''}`,
    timeout,
  );
}
