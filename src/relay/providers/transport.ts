// Channel transports (replacing types.ts' ProviderAdapter as the relay moves to codecs): how to reach one type of upstream (URL, credential headers, pooling).
// A transport speaks one or more wire protocols natively; the pipeline sends it a body
// already in one of them (pass-through or translated by a codec) and reads the answer back
// with that protocol's codec.
import { EventEmitter } from 'node:events';
import type { Channel } from '../../channels/service.js';
import type { Operation, Protocol } from '../canonical.js';
import type { UpstreamBody } from '../upstream-body.js';

export { UpstreamFailure } from './failure.js';

export interface UpstreamCall {
  channel: Channel;
  /** The wire protocol `body` is in (one of `protocols()`). */
  protocol: Protocol;
  operation: Operation;
  /** The upstream's model name (Gemini puts it in the URL). */
  model: string;
  /**
   * The JSON body: a value to serialise, or (pass-through) the JSON text itself, as a string or
   * the client's raw bytes, sent as is.
   */
  body: unknown;
  stream: boolean;
  signal: AbortSignal | AttemptSignal;
  /** Client headers allowed through (pass-through only). */
  headers: Record<string, string>;
}

export interface UpstreamResponse {
  status: number;
  /** The upstream's bytes in `call.protocol`: JSON for plain answers, SSE for streams. */
  body: UpstreamBody;
}

/**
 * Aborts one upstream attempt. postJson listens to it (as undici's request() would to an
 * EventEmitter with `aborted` and `reason`); this costs a fraction of an AbortController (and its
 * EventTarget listeners) per attempt, and aborts with the same reason an AbortController gives.
 */
export class AttemptSignal extends EventEmitter {
  aborted = false;
  reason: unknown = undefined;

  /** `reason` is what reading the answer then fails with (an AbortError when none is given). */
  abort(reason?: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason ?? new DOMException('This operation was aborted', 'AbortError');
    this.emit('abort');
  }
}

export interface ChannelTransport {
  /**
   * The protocols this channel serves `operation` in, preferred first; empty when it cannot
   * serve it at all (e.g. embeddings on an Anthropic channel).
   */
  protocols(channel: Channel, operation: Operation): readonly Protocol[];
  send(call: UpstreamCall): Promise<UpstreamResponse>;
  close?(): Promise<void>;
}
