// The codec registry: one codec per wire protocol. Adding a protocol is one codec file and
// one line here (plus its routes); the pipeline does not change.
import type { Protocol } from '../canonical.js';
import { anthropicCodec } from './anthropic.js';
import { geminiCodec } from './gemini.js';
import { openaiCodec } from './openai.js';
import { responsesCodec } from './responses.js';
import type { ProtocolCodec } from './types.js';

const CODECS: Record<Protocol, ProtocolCodec> = {
  openai: openaiCodec,
  anthropic: anthropicCodec,
  responses: responsesCodec,
  gemini: geminiCodec,
};

/** The codec of a protocol the relay speaks. */
export const codec = (p: Protocol): ProtocolCodec => CODECS[p];
