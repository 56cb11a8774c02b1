// Provider adapters: given a channel and a canonical (OpenAI-format) request, talk to the
// upstream in its own protocol and answer in the OpenAI wire format, so the pipeline is the
// same for every provider. New providers (anthropic, gemini) add an adapter here.
import type { Readable } from 'node:stream';
import type { Channel } from '../../channels/service.js';
import type { Endpoint } from '../protocols/openai.js';

export interface UpstreamCall {
  channel: Channel;
  endpoint: Endpoint;
  body: Record<string, unknown>;
  stream: boolean;
  signal: AbortSignal;
  /** Extra request headers allowed through from the client. */
  headers: Record<string, string>;
}

export interface UpstreamResponse {
  status: number;
  /** OpenAI-format bytes: JSON for plain answers, SSE for streams. */
  body: Readable;
  retryAfter: string | undefined;
}

/** Thrown for failures that never produced an HTTP answer. */
export class UpstreamFailure extends Error {
  constructor(
    message: string,
    readonly timeout: boolean,
  ) {
    super(message);
  }
}

export interface ProviderAdapter {
  send(call: UpstreamCall): Promise<UpstreamResponse>;
}
