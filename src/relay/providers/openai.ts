// Any OpenAI-compatible upstream, over undici with keep-alive pools. It speaks chat
// completions, legacy completions and embeddings, and — unless the channel says
// `responses: false` — the Responses API too.
import { Agent, errors, request } from 'undici';
import type { Operation, Protocol } from '../canonical.js';
import {
  type ChannelTransport,
  UpstreamFailure,
  type UpstreamCall,
  type UpstreamResponse,
} from './transport.js';

export interface UpstreamTimeouts {
  connectMs: number;
  firstByteMs: number;
  idleMs: number;
  /** Connections per upstream origin; 0 = no limit. */
  maxConnections: number;
}

/** One keep-alive pool for a transport, with the relay's timeouts. */
export function upstreamAgent(t: UpstreamTimeouts): Agent {
  return new Agent({
    connect: { timeout: t.connectMs },
    headersTimeout: t.firstByteMs,
    bodyTimeout: t.idleMs,
    keepAliveTimeout: 30_000,
    // Each stream holds its upstream connection for its whole length: a cap here would queue
    // every request past it (5,000 slow streams ran 256 at a time under a cap of 256).
    ...(t.maxConnections > 0 ? { connections: t.maxConnections } : {}),
    pipelining: 1,
  });
}

/** POSTs a JSON body with undici; network failures become UpstreamFailure. */
export async function postJson(
  agent: Agent,
  url: string,
  call: UpstreamCall,
  headers: Record<string, string>,
): Promise<UpstreamResponse> {
  try {
    const res = await request(url, {
      method: 'POST',
      dispatcher: agent,
      signal: call.signal,
      headers: {
        ...call.headers,
        ...headers,
        'content-type': 'application/json',
        accept: call.stream ? 'text/event-stream' : 'application/json',
      },
      body: JSON.stringify(call.body),
    });
    return { status: res.statusCode, body: res.body };
  } catch (err) {
    throw asFailure(err);
  }
}

const NONE: readonly Protocol[] = [];

/**
 * A transport for an upstream that serves generation only, in its one protocol: each call is a
 * POST to `url(call)` with the credential `headers(call)`.
 */
export function generateOnlyTransport(
  t: UpstreamTimeouts,
  protocol: Protocol,
  url: (call: UpstreamCall) => string,
  headers: (call: UpstreamCall) => Record<string, string>,
): ChannelTransport & { close(): Promise<void> } {
  const agent = upstreamAgent(t);
  const generate: readonly Protocol[] = [protocol];
  return {
    protocols: (_channel, operation) => (operation === 'generate' ? generate : NONE),
    send: (call) => postJson(agent, url(call), call, headers(call)),
    close: () => agent.close(),
  };
}

const PATHS: Record<string, string> = {
  'openai:generate': '/chat/completions',
  'openai:completions': '/completions',
  'openai:embeddings': '/embeddings',
  'responses:generate': '/responses',
};

export function createOpenAITransport(t: UpstreamTimeouts): ChannelTransport & { close(): Promise<void> } {
  const agent = upstreamAgent(t);
  return {
    protocols(channel, operation: Operation): readonly Protocol[] {
      if (operation !== 'generate') return ['openai'];
      return channel.responses ? ['openai', 'responses'] : ['openai'];
    },
    send(call: UpstreamCall): Promise<UpstreamResponse> {
      const path = PATHS[`${call.protocol}:${call.operation}`];
      if (!path)
        throw new UpstreamFailure(`an OpenAI channel cannot serve ${call.protocol} ${call.operation}`, false);
      return postJson(agent, call.channel.baseUrl + path, call, {
        authorization: `Bearer ${call.channel.apiKey}`,
      });
    },
    close: () => agent.close(),
  };
}

export function asFailure(err: unknown): UpstreamFailure {
  if (err instanceof UpstreamFailure) return err;
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
