// The built-in `mock` channel type: answers deterministically in-process, with no network,
// in every protocol the relay speaks, so a new install can try keys, billing, logs and each
// client SDK offline. Replies "mole" words, one token each, and reports usage. When the
// request declares tools and the last turn is the user's, it calls the first tool once.
import type { CanonicalAnswer, CanonicalUsage, Protocol, StreamEvent } from '../canonical.js';
import { codec as codecOf } from '../protocols/index.js';
import { countInputs, exactCountAhead } from '../tokens.js';
import { UpstreamBody } from '../upstream-body.js';
import type { ChannelTransport, UpstreamCall, UpstreamResponse } from './transport.js';

const WORDS = [' mole', ' tunnel', ' soil', ' burrow', ' dig', ' dark', ' earth', ' worm'];
const DEFAULT_TOKENS = 12;
const EMBEDDING_DIMS = 8;
const ALL: readonly Protocol[] = ['openai', 'responses', 'anthropic', 'gemini'];

function embedding(text: string): number[] {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return Array.from({ length: EMBEDDING_DIMS }, (_, i) => (((h >>> i) & 0xff) / 255) * 2 - 1);
}

const json = (status: number, obj: unknown): UpstreamResponse => ({
  status,
  body: UpstreamBody.of(Buffer.from(JSON.stringify(obj))),
});
const sse = (text: string): UpstreamResponse => ({ status: 200, body: UpstreamBody.of(Buffer.from(text)) });

/** Arguments that satisfy a tool's schema well enough for a demo: each required property filled. */
function demoArguments(schema: Record<string, unknown>): string {
  const props = (schema.properties ?? {}) as Record<string, { type?: unknown }>;
  const required = Array.isArray(schema.required) ? (schema.required as string[]) : [];
  const args: Record<string, unknown> = {};
  for (const name of required) {
    const t = props[name]?.type;
    args[name] =
      t === 'number' || t === 'integer' ? 1 : t === 'boolean' ? true : t === 'string' ? 'mole' : {};
  }
  return JSON.stringify(args);
}

export const mockTransport: ChannelTransport = {
  protocols(_channel, operation) {
    return operation === 'generate' ? ALL : ['openai'];
  },
  async send(call: UpstreamCall): Promise<UpstreamResponse> {
    // A pass-through body may arrive as the client's JSON text or bytes.
    const b = (
      typeof call.body === 'string' || Buffer.isBuffer(call.body)
        ? JSON.parse(call.body.toString('utf8'))
        : call.body
    ) as Record<string, unknown>;
    const created = Math.floor(Date.now() / 1000);
    const id = `mock-${created}-${Math.floor(Math.random() * 1e9)}`;

    if (call.operation === 'embeddings') {
      const inputs = typeof b.input === 'string' ? [b.input] : (b.input as unknown[]);
      const data = inputs.map((inp, index) => {
        const vec = embedding(JSON.stringify(inp));
        const value =
          b.encoding_format === 'base64' ? Buffer.from(new Float32Array(vec).buffer).toString('base64') : vec;
        return { object: 'embedding', index, embedding: value };
      });
      const prompt = countInputs(b.input);
      return json(200, {
        object: 'list',
        data,
        model: call.model,
        usage: { prompt_tokens: prompt, total_tokens: prompt },
      });
    }

    const codec = codecOf(call.protocol);
    const r = codec.parseRequest(
      b,
      { protocol: call.protocol, operation: call.operation, pathModel: call.model, pathStream: call.stream },
      DEFAULT_TOKENS,
    );
    // Counted in slices when long, as the relay counts its own (tokens.ts `warm`).
    const promptTokens = await exactCountAhead(r);
    const words = Array.from(
      { length: Math.min(DEFAULT_TOKENS, r.maxOutputTokens || DEFAULT_TOKENS) },
      (_, i) => WORDS[i % WORDS.length]!,
    );

    if (call.operation === 'completions') {
      const text = words.join('');
      const usage = {
        prompt_tokens: promptTokens,
        completion_tokens: words.length,
        total_tokens: promptTokens + words.length,
      };
      if (!call.stream)
        return json(200, {
          id,
          object: 'text_completion',
          created,
          model: call.model,
          choices: [{ index: 0, text, finish_reason: 'stop' }],
          usage,
        });
      const chunk = (extra: object) =>
        `data: ${JSON.stringify({ id, object: 'text_completion', created, model: call.model, ...extra })}\n\n`;
      return sse(
        words.map((w) => chunk({ choices: [{ index: 0, text: w, finish_reason: null }] })).join('') +
          chunk({ choices: [{ index: 0, text: '', finish_reason: 'stop' }] }) +
          (r.clientWantsUsage ? chunk({ choices: [], usage }) : '') +
          'data: [DONE]\n\n',
      );
    }

    // Generation in the caller's protocol, through its own codec.
    const c = codec.toCanonical(r);
    const last = c.messages[c.messages.length - 1];
    const tool = c.tools.length && c.toolChoice !== 'none' && last?.role === 'user' ? c.tools[0]! : null;
    const usage: CanonicalUsage = {
      input: promptTokens,
      cacheRead: 0,
      cacheWrite: 0,
      output: tool ? 8 : words.length,
      reasoning: 0,
    };
    const toolCall = tool
      ? { id: `call_${id}`, name: tool.name, arguments: demoArguments(tool.parameters) }
      : null;
    const answer: CanonicalAnswer = {
      id,
      model: call.model,
      text: tool ? '' : words.join(''),
      reasoning: '',
      toolCalls: toolCall ? [toolCall] : [],
      stopReason: tool ? 'tool_calls' : 'stop',
      usage,
    };
    if (!call.stream) return json(200, codec.encodeAnswer(answer, r));
    const events: StreamEvent[] = [{ type: 'start', id, model: call.model }];
    if (toolCall) {
      events.push({ type: 'tool_call', index: 0, id: toolCall.id, name: toolCall.name });
      events.push({ type: 'tool_args', index: 0, delta: toolCall.arguments });
    } else for (const w of words) events.push({ type: 'text', text: w });
    events.push({ type: 'stop', reason: answer.stopReason });
    events.push({ type: 'usage', usage });
    const enc = codec.streamEncoder(r, id);
    return sse(events.map((e) => enc.event(e)).join('') + enc.finish(usage));
  },
};
