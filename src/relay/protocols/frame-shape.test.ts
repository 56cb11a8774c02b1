import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../test/helpers/codec.js';
import { FrameShape } from './frame-shape.js';
import { scanJson } from './json-scan.js';

// FrameShape spares a pass-through check the scan of a frame that is a scanned frame with
// another string in its text's place. Whatever it matches, the scan must answer alike.

const chunk = (text: string, extra = '', pad?: string) =>
  `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m"${extra},"choices":[{"index":0,"delta":{"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}],"usage":null${pad === undefined ? '' : `,"obfuscation":"${pad}"`}}`;

const scan = (text: string) => {
  const b = Buffer.from(text);
  return scanJson(b, 0, b.length);
};

/** Where `text` stands in a larger buffer, as a frame does in its chunk. */
const inChunk = (text: string) => {
  const b = Buffer.from(`data: ${text}\n\n`);
  return [b, 6, b.length - 2] as const;
};

/** A shape learnt from (scanning) `text`, tried on other frames. */
function shapeOf(text: string, key = 'content', volatile?: string, counter?: string) {
  const s = new FrameShape(key, volatile, counter);
  s.scan(...inChunk(text));
  return Object.assign((other: string) => s.matches(...inChunk(other)), {
    scan: (other: string) => s.scan(...inChunk(other), false),
  });
}

describe('FrameShape', () => {
  it('matches a frame of the learnt shape with any JSON string in the text’s place', () => {
    const matches = shapeOf(chunk('first'));
    for (const text of ['', 'x', 'quote " \\ slash', 'line\nbreak', '\u2028 é 漢 😀', '"content":"'])
      expect(matches(chunk(text)), text).toBe(true);
    expect(matches(chunk('x').replace('"x"', '"\\u00e9\\/"'))).toBe(true);
  });

  it('refuses bytes that differ around the literal, or a literal that is no JSON string', () => {
    const matches = shapeOf(chunk('first'));
    const c = chunk('x');
    for (const other of [
      chunk('x', ',"created":2'), // another field changed
      c.replace('"usage":null', '"usage":{"prompt_tokens":1}'),
      c.replace('"x"', 'null'),
      c.replace('"x"', '7'),
      c.replace('"x"', '"a","b"'), // two strings where one was
      c.replace('"x"', '"a\\"'), // an escaped quote does not close it
      c.replace('"x"', '"a\u0001"'), // a raw control character
      c.replace('"x"', '"\\q"'), // an unknown escape
      c.replace('"x"', '"\\u12"'), // a short \u escape
      c.replace('"x"', ' "x"'),
      `${c} `,
      c.slice(0, -1),
      '{}',
      '[DONE]',
    ])
      expect(matches(other), other).toBe(false);
  });

  it('learns nothing from a frame without a string after the key', () => {
    for (const text of [
      '{"choices":[{"delta":{"content":null}}]}',
      '{"choices":[{"delta":{"role":"assistant"}}]}',
      '{"content":',
      '"content":"',
    ]) {
      const matches = shapeOf(text);
      expect(matches(text), text).toBe(false);
    }
  });

  it('takes the literal after a key that only ends in the key’s name: still a value', () => {
    // `"x\"content":` ends in `"content":` too; the value after it is still a value.
    const tricky = (text: string) =>
      `{"x\\"content":${JSON.stringify(text)},"choices":[{"delta":{"\\u0063ontent":"real"}}]}`;
    const matches = shapeOf(tricky('a'));
    expect(matches(tricky('b'))).toBe(true);
    expect(scan(tricky('b'))).toBe(scan(tricky('a')));
  });

  it('leaves a volatile last member out when its value is plain ASCII', () => {
    const matches = shapeOf(chunk('first', '', 'Ab3'), 'content', 'obfuscation');
    for (const pad of ['', 'x', 'Zq9Tk2', ' !#$%&()*+,-./:;<=>?@[]^_`{|}~'])
      expect(matches(chunk('t', '', pad)), pad).toBe(true);
    for (const other of [
      chunk('t', '', 'a\\"b'), // an escape
      chunk('t', '', 'é'),
      chunk('t', '', 'a\tb'),
      chunk('t'), // no such member
      chunk('t', '', 'a').replace(/}$/, ',"z":1}'), // a member after it
      chunk('t', '', 'a').replace(/"}$/, '" }'),
    ])
      expect(matches(other), other).toBe(false);
  });

  it('keeps a frame without the volatile member whole: the shape then has none', () => {
    const matches = shapeOf(chunk('first'), 'content', 'obfuscation');
    expect(matches(chunk('t'))).toBe(true);
    expect(matches(chunk('t', '', 'Ab3'))).toBe(false);
  });

  it('leaves a counter before the text out: any non-negative integer there', () => {
    const delta = (n: string, text: string) =>
      `{"type":"response.output_text.delta","sequence_number":${n},"item_id":"m","delta":${JSON.stringify(text)},"logprobs":[],"obfuscation":"ab"}`;
    const matches = shapeOf(delta('4', 'a'), 'delta', 'obfuscation', 'sequence_number');
    for (const n of ['0', '5', '17', '123456789012345']) expect(matches(delta(n, 'b')), n).toBe(true);
    for (const n of ['05', '-1', '1.5', '1e3', '1234567890123456', '"7"', 'null', '', ' 5'])
      expect(matches(delta(n, 'b')), n).toBe(false);
    // A shape learnt without a counter (its value not an integer) keeps the value's bytes.
    const whole = shapeOf(delta('"x"', 'a'), 'delta', 'obfuscation', 'sequence_number');
    expect(whole(delta('"x"', 'b'))).toBe(true);
    expect(whole(delta('5', 'b'))).toBe(false);
  });

  it('stops learning after three shapes in a row that matched nothing (a field that changes)', () => {
    const s = new FrameShape('content');
    // Frames without the key are not counted.
    for (let i = 1; i <= 5; i++) s.scan(...inChunk(`{"choices":[],"n":${i}}`));
    for (let i = 1; i <= 3; i++) s.scan(...inChunk(chunk('t', `,"n":${i}`)));
    expect(s.matches(...inChunk(chunk('u', ',"n":3')))).toBe(true);
    s.scan(...inChunk(chunk('t', ',"n":4')));
    expect(s.matches(...inChunk(chunk('u', ',"n":4')))).toBe(false);
    expect(s.matches(...inChunk(chunk('u', ',"n":3')))).toBe(true);
  });

  it('goes on learning while its shapes match: only useless ones in a row count', () => {
    const s = new FrameShape('content');
    for (let i = 1; i <= 6; i++) {
      s.scan(...inChunk(chunk('t', `,"n":${i}`)));
      expect(s.matches(...inChunk(chunk('u', `,"n":${i}`))), String(i)).toBe(true);
      s.scan(...inChunk(chunk('u', `,"n":${i}`)));
    }
  });

  it('learns only when asked, and answers the learnt frame’s scan for a frame of its shape', () => {
    const s = new FrameShape('content');
    s.scan(...inChunk(chunk('a')), false);
    expect(s.matches(...inChunk(chunk('b')))).toBe(false);
    // An error member beside the text: its shape answers the error too.
    const withError = (t: string) => chunk(t).replace('"usage":null', '"error":{"message":"x"}');
    expect(s.scan(...inChunk(withError('a')))).toBe(scan(withError('a')));
    expect(s.matches(...inChunk(withError('b')))).toBe(true);
    expect(s.scan(...inChunk(withError('b')))).toBe(scan(withError('b')));
  });

  it('answers like a scan for every frame it matches, over random frames', () => {
    const r = seededRandom(7);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
    const TEXTS = ['', 'a', ' mole', 'é🐾', 'q " \\ s', '\n', '\u2028', '"content":"x"'];
    const BYTES = ['"', '\\', ',', '}', ']', ':', '0', 'n', 'x', ' ', '\u0001', 'é', 'u'];
    /** One byte changed, dropped or added, at random. */
    const damaged = (text: string) => {
      const at = Math.floor(r() * text.length);
      const how = r();
      return how < 0.33
        ? text.slice(0, at) + text.slice(at + 1)
        : text.slice(0, at) + pick(BYTES) + text.slice(at + (how < 0.66 ? 0 : 1));
    };
    const TEMPLATES = [
      (t: string, pad?: string) => chunk(t, '', pad),
      (t: string, pad?: string) =>
        `{"type":"response.output_text.delta","sequence_number":${pick(['0', '7', '42', '05', '-1', '1.5'])},"content":${JSON.stringify(t)},"logprobs":[]${pad === undefined ? '' : `,"obfuscation":"${pad}"`}}`,
      (t: string, pad?: string) =>
        `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","content":${JSON.stringify(t)}}${pad === undefined ? '' : `,"obfuscation":"${pad}"`}}`,
      (t: string, pad?: string) =>
        `{"error":null,"content":${JSON.stringify(t)},"usage":null${pad === undefined ? '' : `,"obfuscation":"${pad}"`}}`,
    ];
    let matched = 0;
    let damagedMatched = 0;
    for (let n = 0; n < 2000; n++) {
      const template = pick(TEMPLATES);
      const padded = r() < 0.5;
      const pad = () => (padded ? pick(['', 'a', 'xY7', 'é', '"']) : undefined);
      const learnt = template(pick(TEXTS), padded ? 'abc' : undefined);
      const matches = shapeOf(
        learnt,
        'content',
        r() < 0.7 ? 'obfuscation' : undefined,
        r() < 0.5 ? 'sequence_number' : undefined,
      );
      for (let k = 0; k < 10; k++) {
        let other = template(pick(TEXTS), pad());
        const broken = r() < 0.6;
        if (broken) other = damaged(other);
        expect(matches.scan(other), `${learnt} → ${other}`).toBe(scan(other));
        if (!matches(other)) continue;
        matched++;
        if (broken) damagedMatched++;
        expect(scan(other), `${learnt} → ${other}`).toBe(scan(learnt));
        expect(() => JSON.parse(other), other).not.toThrow();
      }
    }
    // The property held over many matches, damaged frames among them (a change inside the text).
    expect(matched).toBeGreaterThan(3500);
    expect(damagedMatched).toBeGreaterThan(200);
  });
});
