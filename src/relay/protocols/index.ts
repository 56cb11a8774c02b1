// The codec registry: one codec per wire protocol. Adding a protocol is one codec file and
// one line here (plus its routes); the pipeline does not change.
import type { Protocol } from '../canonical.js';
import { anthropicCodec } from './anthropic.js';
import { geminiCodec } from './gemini.js';
import { openaiCodec } from './openai.js';
import { responsesCodec } from './responses.js';
import type { ProtocolCodec } from './types.js';

const CODECS: Partial<Record<Protocol, ProtocolCodec>> = {
  openai: openaiCodec,
  anthropic: anthropicCodec,
  responses: responsesCodec,
  gemini: geminiCodec,
};

export const codecFor = (p: Protocol): ProtocolCodec | undefined => CODECS[p];

/** The codec of a protocol the relay speaks (every ingress route's protocol is one). */
export function codec(p: Protocol): ProtocolCodec {
  const c = CODECS[p];
  if (!c) throw new Error(`no codec for protocol ${p}`);
  return c;
}
