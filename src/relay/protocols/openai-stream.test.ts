// The OpenAI stream decoder reads plain content chunks without parsing them whole once it has
// learned their shape. Every frame must decode exactly as a full parse would (compared with a
// decoder that parses it whole), and a garbled chunk must still break the stream.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { StreamBroken, type SseFrame } from '../canonical.js';
import type { IngressRequest } from './types.js';
import { openaiCodec } from './openai.js';

const r: IngressRequest = {
  protocol: 'openai',
  operation: 'generate',
  model: 'gpt-4o-mini',
  stream: true,
  clientWantsUsage: false,
  maxOutputTokens: 100,
  impliedOutputCap: null,
  promptTokens: 5,
  body: {},
};

const frame = (data: string): SseFrame => ({ event: null, data, raw: `data: ${data}\n\n` });
const head =
  '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":';
const tail = '},"logprobs":null,"finish_reason":null}]}';
const content = (literal: string) => frame(head + literal + tail);
const first = frame(
  '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}',
);

/** What a decoder that has only seen `first` makes of `f`: always the full parse. */
function reference(f: SseFrame) {
  const d = openaiCodec.streamDecoder(r);
  d.feed(first);
  try {
    return d.feed(f);
  } catch (e) {
    return e;
  }
}

afterEach(() => vi.restoreAllMocks());

describe('openai stream decoder: the content fast path', () => {
  it('decodes every frame as a full parse would, and skips the whole parse for plain content', () => {
    const frames = [
      content('"Hello"'),
      content('" wor"'),
      content('"ld — é"'),
      content('"\\"quoted\\" \\n"'),
      content('""'),
      content('"😀"'),
      content('"\\u00e9\\ud83d\\ude00"'),
      content(' "spaced" '),
      content('"a","x":1'),
      content('null'),
      content('"a"},"logprobs":null,"finish_reason":null},{"index":1,"delta":{"content":"b"'),
      frame(head.replace('"content":', '"role":"assistant","content":') + '"r"' + tail),
      frame(
        '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},"logprobs":null,"finish_reason":null}]}',
      ),
      frame(head + '"x"' + '},"logprobs":null,"finish_reason":"stop"}]}'),
      frame(
        '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}',
      ),
      content('"after usage"'),
    ];
    const d = openaiCodec.streamDecoder(r);
    d.feed(first);
    const parse = vi.spyOn(JSON, 'parse');
    let wholeParses = 0;
    for (const f of frames) {
      const before = parse.mock.calls.filter((c) => String(c[0]).startsWith('{')).length;
      const got = d.feed(f);
      const after = parse.mock.calls.filter((c) => String(c[0]).startsWith('{')).length;
      wholeParses += after - before;
      expect({ events: got.events, hide: got.hide ?? false }, f.data).toEqual({
        events: (reference(f) as { events: unknown }).events,
        hide: (reference(f) as { hide?: boolean }).hide ?? false,
      });
    }
    expect(d.usage).toEqual({ input: 5, cacheRead: 0, cacheWrite: 0, output: 9, reasoning: 0 });
    // The first content chunk teaches the shape; the other plain ones (7 of them) are not parsed whole.
    expect(wholeParses).toBeLessThanOrEqual(frames.length - 7);
  });

  it('takes the fast path on OpenAI\'s include_usage shape ("usage":null in every chunk)', () => {
    const withNull = (lit: string) => frame(head + lit + tail.replace(/}$/, ',"usage":null}'));
    const d = openaiCodec.streamDecoder(r);
    d.feed(first);
    d.feed(withNull('"one"'));
    const parse = vi.spyOn(JSON, 'parse');
    expect(d.feed(withNull('"two"')).events).toEqual([{ type: 'text', text: 'two' }]);
    expect(parse.mock.calls.some((c) => String(c[0]).startsWith('{'))).toBe(false);
    const last = frame(
      '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}',
    );
    expect(d.feed(last)).toEqual(reference(last));
    expect(d.usage?.output).toBe(2);
  });

  it('a garbled chunk with a learned shape still breaks the stream', () => {
    const d = openaiCodec.streamDecoder(r);
    d.feed(first);
    d.feed(content('"Hello"'));
    expect(d.feed(content('"again"')).events).toEqual([{ type: 'text', text: 'again' }]);
    for (const bad of ['"unterminated', '"a"}', '"\\x"']) {
      expect(reference(content(bad))).toBeInstanceOf(StreamBroken);
      expect(() => d.feed(content(bad))).toThrow(StreamBroken);
    }
  });

  it('learns no shape from chunks with escapes or extra keys outside the content', () => {
    const d = openaiCodec.streamDecoder(r);
    d.feed(first);
    const odd = (lit: string) =>
      frame(head.replace('"id":"chatcmpl-1"', '"id":"chat\\u0063mpl-1"') + lit + tail);
    d.feed(odd('"a"'));
    const parse = vi.spyOn(JSON, 'parse');
    expect(d.feed(odd('"b"')).events).toEqual([{ type: 'text', text: 'b' }]);
    expect(parse.mock.calls.some((c) => String(c[0]).startsWith('{'))).toBe(true);
  });
});
