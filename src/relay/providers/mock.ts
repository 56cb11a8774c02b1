// The built-in `mock` channel type: answers deterministically in-process, with no network,
// so a new install can try keys, billing and logs offline. Replies "mole" words, one token
// each, and reports usage like OpenAI (the usage chunk only when a stream asks for it).
import { Readable } from 'node:stream';
import { countChatPrompt, countInputs } from '../tokens.js';
import type { ProviderAdapter, UpstreamCall, UpstreamResponse } from './types.js';

const WORDS = [' mole', ' tunnel', ' soil', ' burrow', ' dig', ' dark', ' earth', ' worm'];
const DEFAULT_TOKENS = 12;
const EMBEDDING_DIMS = 8;

function reply(n: number): string[] {
  return Array.from({ length: n }, (_, i) => WORDS[i % WORDS.length]!);
}

function embedding(text: string): number[] {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return Array.from({ length: EMBEDDING_DIMS }, (_, i) => (((h >>> i) & 0xff) / 255) * 2 - 1);
}

export const mockAdapter: ProviderAdapter = {
  async send(call: UpstreamCall): Promise<UpstreamResponse> {
    const b = call.body;
    const model = String(b.model);
    const created = Math.floor(Date.now() / 1000);
    const id = `mock-${created}-${Math.floor(Math.random() * 1e9)}`;
    const json = (status: number, obj: unknown): UpstreamResponse => ({
      status,
      body: Readable.from([Buffer.from(JSON.stringify(obj))]),
      retryAfter: undefined,
    });

    if (call.endpoint === 'embeddings') {
      const inputs = typeof b.input === 'string' ? [b.input] : (b.input as unknown[]);
      const data = inputs.map((inp, index) => {
        const vec = embedding(JSON.stringify(inp));
        const embedding64 =
          b.encoding_format === 'base64' ? Buffer.from(new Float32Array(vec).buffer).toString('base64') : vec;
        return { object: 'embedding', index, embedding: embedding64 };
      });
      const prompt = countInputs(b.input);
      return json(200, {
        object: 'list',
        data,
        model,
        usage: { prompt_tokens: prompt, total_tokens: prompt },
      });
    }

    const isChat = call.endpoint === 'chat';
    const prompt = isChat ? countChatPrompt(b.messages as unknown[]) : countInputs(b.prompt);
    const cap = (b.max_completion_tokens ?? b.max_tokens) as number | undefined;
    const words = reply(Math.min(DEFAULT_TOKENS, cap ?? DEFAULT_TOKENS));
    const usage = {
      prompt_tokens: prompt,
      completion_tokens: words.length,
      total_tokens: prompt + words.length,
      prompt_tokens_details: { cached_tokens: 0 },
    };

    if (!call.stream) {
      const text = words.join('');
      const choice = isChat
        ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }
        : { index: 0, text, finish_reason: 'stop' };
      return json(200, {
        id,
        object: isChat ? 'chat.completion' : 'text_completion',
        created,
        model,
        choices: [choice],
        usage,
      });
    }
    const object = isChat ? 'chat.completion.chunk' : 'text_completion';
    const wantsUsage = (b.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    const events: string[] = [];
    const chunk = (choices: unknown[], extra: object = {}) =>
      `data: ${JSON.stringify({ id, object, created, model, choices, ...extra })}\n\n`;
    if (isChat)
      events.push(chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]));
    for (const w of words)
      events.push(
        chunk([
          isChat
            ? { index: 0, delta: { content: w }, finish_reason: null }
            : { index: 0, text: w, finish_reason: null },
        ]),
      );
    events.push(
      chunk([
        isChat
          ? { index: 0, delta: {}, finish_reason: 'stop' }
          : { index: 0, text: '', finish_reason: 'stop' },
      ]),
    );
    if (wantsUsage) events.push(chunk([], { usage }));
    events.push('data: [DONE]\n\n');
    return { status: 200, body: Readable.from(events.map((e) => Buffer.from(e))), retryAfter: undefined };
  },
};
