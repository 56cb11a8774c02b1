// Any OpenAI-compatible upstream, over undici with keep-alive pools. It speaks chat
// completions, legacy completions and embeddings, and — unless the channel says
// `responses: false` — the Responses API too.
import type { Agent, Dispatcher } from 'undici';
import { loadedUndici, loadUndici } from '../../shared/undici.js';
import type { Operation, Protocol } from '../canonical.js';
import { UpstreamBody } from '../upstream-body.js';
import {
  AttemptSignal,
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
  return new (loadUndici().Agent)({
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

/** An upstream URL split as undici dispatches it. Channels are few, so their URLs are kept. */
const targets = new Map<string, { origin: string; path: string }>();
function target(url: string): { origin: string; path: string } {
  let t = targets.get(url);
  if (!t) {
    const u = new URL(url);
    t = { origin: u.origin, path: u.pathname + u.search };
    if (targets.size >= 1024) targets.clear(); // per-model URLs (Gemini) must not grow it forever
    targets.set(url, t);
  }
  return t;
}

/**
 * One POST through `Agent.dispatch`: resolves at the answer's headers with an UpstreamBody that
 * the answer's bytes are pushed into. undici's `request()` would wrap each answer in a
 * BodyReadable stream; this costs about 13 µs less per plain answer and 20 µs per stream
 * (bench/upstream-io.ts). The attempt's signal aborts the request (and a body being read).
 */
class PostHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private body: UpstreamBody | null = null;
  private readonly onAbort = () => {
    this.controller?.abort(this.signal.reason as Error);
  };

  constructor(
    private readonly signal: AbortSignal | AttemptSignal,
    private readonly resolve: (res: UpstreamResponse) => void,
    private readonly reject: (err: UpstreamFailure) => void,
  ) {
    if (signal.aborted) return;
    if (signal instanceof AttemptSignal) signal.once('abort', this.onAbort);
    else signal.addEventListener('abort', this.onAbort, { once: true });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Aborted while queued for a connection (or before): undici fails the request now.
    if (this.signal.aborted) controller.abort(this.signal.reason as Error);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number): void {
    if (statusCode < 200) return; // 1xx: the answer is still to come
    this.body = new UpstreamBody(controller);
    this.resolve({ status: statusCode, body: this.body });
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.body!.push(chunk);
  }

  onResponseEnd(): void {
    this.unlisten();
    this.body!.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.unlisten();
    if (this.body) this.body.fail(err);
    else this.reject(asFailure(err));
  }

  private unlisten(): void {
    if (this.signal instanceof AttemptSignal) this.signal.off('abort', this.onAbort);
    else this.signal.removeEventListener('abort', this.onAbort);
  }
}

/** A pass-through body may be the client's own bytes: they go as sent, never re-serialised. */
function bodyBytes(body: unknown): string | Buffer {
  return typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
}

/** POSTs a JSON body with undici; network failures become UpstreamFailure. */
export function postJson(
  agent: Agent,
  url: string,
  call: UpstreamCall,
  headers: Record<string, string>,
): Promise<UpstreamResponse> {
  return new Promise((resolve, reject) => {
    const handler = new PostHandler(call.signal, resolve, reject);
    try {
      const { origin, path } = target(url);
      agent.dispatch(
        {
          origin,
          path,
          method: 'POST',
          headers: {
            ...call.headers,
            ...headers,
            'content-type': 'application/json',
            accept: call.stream ? 'text/event-stream' : 'application/json',
          },
          body: bodyBytes(call.body),
        },
        handler,
      );
    } catch (err) {
      handler.onResponseError(null as never, err as Error);
    }
  });
}

const NONE: readonly Protocol[] = [];

/**
 * A transport's pool, made at its first request (so undici loads then, not at start); close()
 * closes it if it was made.
 */
function lazyAgent(t: UpstreamTimeouts): { agent(): Agent; close(): Promise<void> } {
  let agent: Agent | null = null;
  return {
    agent: () => (agent ??= upstreamAgent(t)),
    close: async () => {
      await agent?.close();
    },
  };
}

/**
 * A transport for an upstream that speaks one protocol, for `operations` only: each call is a
 * POST to `url(call)` with the credential `headers(call)`.
 */
export function singleProtocolTransport(
  t: UpstreamTimeouts,
  protocol: Protocol,
  operations: readonly Operation[],
  url: (call: UpstreamCall) => string,
  headers: (call: UpstreamCall) => Record<string, string>,
): ChannelTransport & { close(): Promise<void> } {
  const pool = lazyAgent(t);
  const served: readonly Protocol[] = [protocol];
  return {
    protocols: (_channel, operation) => (operations.includes(operation) ? served : NONE),
    send: (call) => postJson(pool.agent(), url(call), call, headers(call)),
    close: pool.close,
  };
}

const PATHS: Record<string, string> = {
  'openai:generate': '/chat/completions',
  'openai:completions': '/completions',
  'openai:embeddings': '/embeddings',
  'responses:generate': '/responses',
};

export function createOpenAITransport(t: UpstreamTimeouts): ChannelTransport & { close(): Promise<void> } {
  const pool = lazyAgent(t);
  return {
    protocols(channel, operation: Operation): readonly Protocol[] {
      if (operation !== 'generate') return ['openai'];
      return channel.responses ? ['openai', 'responses'] : ['openai'];
    },
    send(call: UpstreamCall): Promise<UpstreamResponse> {
      const path = PATHS[`${call.protocol}:${call.operation}`];
      if (!path)
        throw new UpstreamFailure(`an OpenAI channel cannot serve ${call.protocol} ${call.operation}`, false);
      return postJson(pool.agent(), call.channel.baseUrl + path, call, {
        authorization: `Bearer ${call.channel.apiKey}`,
      });
    },
    close: pool.close,
  };
}

export function asFailure(err: unknown): UpstreamFailure {
  if (err instanceof UpstreamFailure) return err;
  const errors = loadedUndici()?.errors;
  const timeout =
    errors !== undefined &&
    (err instanceof errors.HeadersTimeoutError ||
      err instanceof errors.BodyTimeoutError ||
      err instanceof errors.ConnectTimeoutError);
  const code = (err as { code?: string }).code;
  return new UpstreamFailure(
    timeout ? 'upstream timed out' : `upstream connection failed${code ? ` (${code})` : ''}`,
    timeout,
  );
}
