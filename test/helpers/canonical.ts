// Builders for canonical requests, conversations and answers (src/relay/canonical.ts) in codec
// tests, imported as a namespace (`canon.user('Hi')`): one call a message, named after its role,
// so a test shows its conversation rather than its punctuation. Content is a string or a list
// of parts, a string being a text part.
import {
  type CanonicalAnswer,
  canonicalRequest,
  type Message,
  type Part,
  type ToolCall,
} from '../../src/relay/canonical.js';

type Content = string | (string | Part)[];

const parts = (content: Content): Part[] =>
  (typeof content === 'string' ? [content] : content).map((p) =>
    typeof p === 'string' ? { type: 'text', text: p } : p,
  );

export const image = (url: string): Part => ({ type: 'image', url });
export const call = (id: string, name: string, args: string): ToolCall => ({ id, name, arguments: args });

export const user = (content: Content): Message => ({ role: 'user', content: parts(content) });

export const assistant = (content: Content, ...toolCalls: ToolCall[]): Message => ({
  role: 'assistant',
  content: parts(content),
  toolCalls,
});

/** The result of tool call `toolCallId`, with the function's `name` where the protocol carries one. */
export const tool = (
  toolCallId: string,
  content: Content,
  more: { name?: string; isError?: boolean } = {},
): Message => ({ role: 'tool', toolCallId, ...more, content: parts(content) });

/** A canonical request: no system prompt, tools or sampling settings unless given. */
export const request = canonicalRequest;

/** A canonical answer: no text, reasoning or tool calls, a plain stop and no usage unless given. */
export const answer = (fields: Partial<CanonicalAnswer>): CanonicalAnswer => ({
  id: '',
  model: '',
  text: '',
  reasoning: '',
  toolCalls: [],
  stopReason: 'stop',
  usage: null,
  ...fields,
});
