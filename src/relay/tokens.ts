// Local token counting (gpt-tokenizer, o200k_base): an upper bound for admission, and the
// estimate when an upstream reports no usage or a stream is cut.
import { countTokens } from 'gpt-tokenizer';

/** Per-message and reply-priming overhead, as OpenAI's chat format adds. */
const PER_MESSAGE = 4;
const REPLY_PRIMING = 3;

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (p && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : '')).join('\n');
  return '';
}

export const countText = (s: string) => (s ? countTokens(s) : 0);

export function countChatPrompt(messages: unknown[], extra?: unknown): number {
  let n = REPLY_PRIMING;
  for (const m of messages) {
    n += PER_MESSAGE;
    if (m && typeof m === 'object') {
      const msg = m as Record<string, unknown>;
      n += countText(textOf(msg.content));
      if (typeof msg.name === 'string') n += countText(msg.name);
      if (msg.tool_calls !== undefined) n += countText(JSON.stringify(msg.tool_calls));
    }
  }
  // Tool and function definitions are billed as prompt tokens too.
  if (extra !== undefined) n += countText(JSON.stringify(extra));
  return n;
}

export function countInputs(input: unknown): number {
  if (typeof input === 'string') return countText(input);
  if (Array.isArray(input)) {
    let n = 0;
    for (const item of input) {
      if (typeof item === 'string') n += countText(item);
      else if (typeof item === 'number') n += 1;
      else if (Array.isArray(item)) n += item.length;
    }
    return n;
  }
  return 0;
}
