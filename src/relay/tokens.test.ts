// The admission bound is never below the exact o200k count: a text's UTF-8 byte length is at
// least its token count (every token stands for one byte or more), whatever the script.
import { describe, expect, it, vi } from 'vitest';
import { turnsDuring } from '../../test/helpers/event-loop.js';
import { openaiCodec } from './protocols/openai.js';
import { chatPromptBound, countChatPrompt, countText, loadTokenizer, promptCount } from './tokens.js';

/** Deterministic pseudo-random code points from every plane we care about. */
function randomText(seed: number, len: number): string {
  let x = seed;
  const next = () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x;
  };
  const ranges: Array<[number, number]> = [
    [0x20, 0x7e], // ASCII
    [0x00, 0x1f], // controls
    [0xa0, 0x24f], // Latin
    [0x400, 0x4ff], // Cyrillic
    [0x600, 0x6ff], // Arabic
    [0x900, 0x97f], // Devanagari
    [0x3040, 0x30ff], // kana
    [0x4e00, 0x9fff], // CJK
    [0xac00, 0xd7a3], // Hangul
    [0x1f300, 0x1faff], // emoji
    [0x20000, 0x2a6df], // CJK extension B
    [0x300, 0x36f], // combining marks
  ];
  let s = '';
  for (let i = 0; i < len; i++) {
    const [a, b] = ranges[next() % ranges.length]!;
    s += String.fromCodePoint(a + (next() % (b - a + 1)));
  }
  return s;
}

const SAMPLES = [
  'Hello, mole! Say something short.',
  'The quick brown fox jumps over the lazy dog. '.repeat(40),
  'function add(a: number, b: number): number {\n  return a + b; // sum\n}\n'.repeat(20),
  '{"key": [1, 2, 3], "nested": {"x": null, "y": true}}\n'.repeat(30),
  '    \t\t\n\n   '.repeat(50),
  '0123456789'.repeat(100),
  '我们的网关把请求转发给上游模型，并记录每一次调用的用量和费用。'.repeat(20),
  'これは日本語のテキストです。カタカナとひらがなと漢字。'.repeat(20),
  '한국어 문장도 토큰으로 나뉩니다. '.repeat(20),
  'مرحبا بالعالم، هذا نص عربي للاختبار. '.repeat(20),
  '😀😃😄😁👨‍👩‍👧‍👦🏳️‍🌈👍🏽🇯🇵'.repeat(30),
  'e\u0301\u0302\u0303 a\u0308\u0308\u0308 '.repeat(40),
  '<|endoftext|> <|fim_prefix|> <|im_start|>user'.repeat(10),
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'.repeat(10),
  'zqxjkvbwfpgh'.repeat(50),
  '\ud800 lone \udfff surrogates \ud83d',
  ...Array.from({ length: 40 }, (_, i) => randomText(i + 1, 50 + i * 37)),
];

describe('admission bound', () => {
  it('a text never has more o200k tokens than UTF-8 bytes (ASCII, code, CJK, emoji, random)', () => {
    for (const t of SAMPLES) {
      const tokens = countText(t);
      expect(tokens, JSON.stringify(t.slice(0, 40))).toBeLessThanOrEqual(Buffer.byteLength(t, 'utf8'));
    }
  });

  it('chatPromptBound ≥ countChatPrompt for messages with names, parts, images, tool calls and tools', () => {
    for (let i = 0; i < SAMPLES.length; i++) {
      const t = SAMPLES[i]!;
      const u = SAMPLES[(i + 7) % SAMPLES.length]!;
      const messages = [
        { role: 'system', content: u },
        { role: 'user', name: 'ユーザー😀', content: t },
        {
          role: 'user',
          content: [
            { type: 'text', text: t },
            { type: 'image_url', image_url: { url: 'data:,', detail: 'low' } },
            { type: 'image_url', image_url: { url: 'data:,' } },
            { type: 'text', text: u },
          ],
        },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'c', type: 'function', function: { name: 'f', arguments: JSON.stringify({ t }) } },
          ],
        },
      ];
      const tools = [
        { type: 'function', function: { name: 'f', description: u, parameters: { type: 'object' } } },
      ];
      expect(chatPromptBound(messages, tools)).toBeGreaterThanOrEqual(countChatPrompt(messages, tools));
      expect(chatPromptBound(messages)).toBeGreaterThanOrEqual(countChatPrompt(messages));
    }
  });

  it('prompts, short or long, carry the bound and the exact count on demand', () => {
    const route = { operation: 'generate' as const };
    for (const content of ['Hello, mole!', SAMPLES[6]!]) {
      const messages = [{ role: 'user', content }];
      const r = openaiCodec.parseRequest({ model: 'm', messages }, route as never, 100);
      expect(r.promptTokens).toBe(chatPromptBound(messages));
      expect(r.exactPromptTokens!()).toBe(countChatPrompt(messages));
      expect(r.promptTokens).toBeGreaterThanOrEqual(r.exactPromptTokens!());
    }
  });

  it('promptCount: the bound, and the exact count on demand', () => {
    const tools = [{ type: 'function', function: { name: 'f', parameters: {} } }];
    for (const content of ['Hello, mole!', SAMPLES[6]!, 'x'.repeat(512)]) {
      const messages = [{ role: 'user', content }];
      const c = promptCount(messages, tools);
      expect(c.promptTokens).toBe(chatPromptBound(messages, tools));
      expect(c.exactPromptTokens!()).toBe(countChatPrompt(messages, tools));
    }
  });
});

describe('countText', () => {
  const tokenizer = loadTokenizer();
  const direct = (t: string) => tokenizer.countTokens(t, { disallowedSpecial: new Set<string>() });

  it('counts exactly, on a first count and on a repeat (ASCII, code, CJK, emoji, random)', () => {
    const long = SAMPLES.filter((t) => t.length >= 256);
    expect(long.length).toBeGreaterThan(10);
    for (const t of SAMPLES) {
      const first = countText(t);
      expect(first, JSON.stringify(t.slice(0, 40))).toBe(direct(t));
      expect(countText(t)).toBe(first);
      // The same text built anew (another string object, the same characters) hits as well.
      expect(countText(t.split('').join(''))).toBe(first);
    }
  });

  it('tokenizes a long text once: an agent resends its context with every turn', () => {
    const spy = vi.spyOn(tokenizer, 'countTokens');
    try {
      const context = randomText(901, 3000);
      const turn = randomText(902, 3000);
      const n = countText(context);
      expect(spy).toHaveBeenCalledTimes(1);
      for (let i = 0; i < 5; i++) expect(countText(`${context}`)).toBe(n);
      expect(spy).toHaveBeenCalledTimes(1);
      // Another text of the same length is its own entry.
      expect(countText(turn)).toBe(direct(turn));
      expect(spy).toHaveBeenCalledTimes(3); // countText's, then direct's
      // Short texts are tokenized every time (hashing them would cost more than it saves).
      countText('short text');
      countText('short text');
      expect(spy).toHaveBeenCalledTimes(5);
    } finally {
      spy.mockRestore();
    }
  });

  it('counts a very long word in pieces: never one BPE over it, the count a little over', () => {
    // Letters only (one word to the pre-split), pseudo-random so BPE finds few merges.
    const letters = Array.from({ length: 40_000 }, (_, i) =>
      String.fromCharCode(97 + (((i * 7919) % 9973) % 26)),
    ).join('');
    const cjk = Array.from({ length: 3_000 }, (_, i) =>
      String.fromCharCode(0x4e00 + ((i * 7919) % 9973)),
    ).join('');
    for (const text of [
      letters,
      `intro text ${letters} and after`,
      `${letters}\ud800`,
      'x'.repeat(30_000),
      cjk,
    ]) {
      const spy = vi.spyOn(tokenizer, 'countTokens');
      let n: number;
      try {
        n = countText(text);
        const longest = Math.max(...spy.mock.calls.map(([t]) => (t as string).length));
        expect(longest).toBeLessThanOrEqual(1024);
      } finally {
        spy.mockRestore();
      }
      const exact = direct(text);
      expect(n).toBeGreaterThanOrEqual(exact);
      expect(n).toBeLessThanOrEqual(Math.ceil(exact * 1.01));
    }
  });

  it('counts an ill-formed text as its well-formed form (U+FFFD for a lone surrogate), cached', () => {
    const a = `${'x'.repeat(300)}\ud800 lone`;
    const b = `${'x'.repeat(300)}\ufffd lone`; // what a's lone surrogate encodes to
    expect(a.toWellFormed()).toBe(b);
    const nb = direct(b);
    const spy = vi.spyOn(tokenizer, 'countTokens');
    try {
      expect(countText(a)).toBe(nb);
      expect(countText(a)).toBe(nb);
      expect(countText(b)).toBe(nb);
      expect(spy).toHaveBeenCalledTimes(1); // one text, counted once
    } finally {
      spy.mockRestore();
    }
  });

  it('warms a long prompt in slices an event-loop turn apart; the exact count then reads them', async () => {
    const word = (i: number) => ['burrow', 'tunnel', 'mole', 'earth', 'dig'][i % 5]!;
    const long = Array.from({ length: 40_000 }, (_, i) => `${word(i)}${i % 97}`).join(' ');
    const p = promptCount([{ role: 'user', content: long }]);
    const spy = vi.spyOn(tokenizer, 'countTokens');
    try {
      const { turns } = await turnsDuring(() => p.warm!());
      // Many slices, each its own turn: other requests ran between them.
      expect(turns).toBeGreaterThan(long.length / (16 * 1024) - 2);
      const sliced = spy.mock.calls.length;
      const exact = p.exactPromptTokens!();
      expect(spy.mock.calls.length).toBe(sliced); // read from the cache, nothing tokenized again
      // Cut only before spaces: the sum of the slices is the whole text's count.
      expect(exact).toBe(direct(long) + 3 + 4); // + reply priming and one message's overhead
    } finally {
      spy.mockRestore();
    }
  });
});
