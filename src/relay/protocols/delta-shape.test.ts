import { describe, expect, it } from 'vitest';
import type { StreamDecoder } from '../canonical.js';
import { DeltaShape } from './delta-shape.js';
import { streamDecoder as anthropicDecoder } from './anthropic.js';
import { streamDecoder } from './openai.js';
import { seededRandom, streamIngress } from '../../../test/helpers/codec.js';

// DeltaShape reads a text-only chunk from its text literal alone. The OpenAI stream decoder
// with shapes must give, frame by frame, what it gives parsing every chunk whole: the same
// events, hides, throws, `done` and `usage`.

const content = (obj: unknown): unknown =>
  (obj as { choices?: Array<{ delta?: { content?: unknown } }> }).choices?.[0]?.delta?.content;

const chunk = (text: string, extra = '') =>
  `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m"${extra},"choices":[{"index":0,"delta":{"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}],"usage":null}`;

describe('DeltaShape', () => {
  it('reads a chunk of the learnt shape from its literal, escapes and all', () => {
    const s = new DeltaShape();
    expect(s.textOf(chunk('a'))).toBeUndefined(); // nothing learnt yet
    s.learn(chunk('first'), 'content', content);
    for (const text of ['', 'x', 'quote " \\ slash', 'line\nbreak', '\u2028 é 漢 😀', '"content":"'])
      expect(s.textOf(chunk(text))).toBe(text);
  });

  it('refuses bytes that differ around the literal, or a literal that is no JSON string', () => {
    const s = new DeltaShape();
    s.learn(chunk('first'), 'content', content);
    const c = chunk('x');
    for (const other of [
      chunk('x', ',"created":2'), // another field changed
      c.replace('"x"', 'null'),
      c.replace('"x"', '"a","b"'), // two strings where one was
      c.replace('"x"', '"a\\"'), // an escaped quote does not close it
      c.replace('"x"', '"a\u0001"'), // a raw control character
      c.replace('"x"', '"\\q"'), // an unknown escape
      c.replace('"x"', ' "x"'),
      `${c} `,
      '[DONE]',
    ])
      expect(s.textOf(other)).toBeUndefined();
  });

  it('learns nothing where a probe in place of the literal is not read as the text', () => {
    // A key that ends in `"content`, and the real content's key written with an escape.
    const tricky = (text: string) =>
      `{"x\\"content":${JSON.stringify(text)},"choices":[{"delta":{"\\u0063ontent":"real"}}]}`;
    const s = new DeltaShape();
    s.learn(tricky('real'), 'content', content);
    expect(s.textOf(tricky('other'))).toBeUndefined();
    // A duplicate key: the last one is the value.
    const dup = (text: string) => `{"choices":[{"delta":{"content":"a","content":${JSON.stringify(text)}}}]}`;
    s.learn(dup('b'), 'content', content);
    expect(s.textOf(dup('c'))).toBe('c');
  });

  it('stops learning after three shapes (a field that changes in every chunk)', () => {
    const s = new DeltaShape();
    for (let i = 1; i <= 3; i++) s.learn(chunk('t', `,"obfuscation":"${i}"`), 'content', content);
    expect(s.textOf(chunk('u', ',"obfuscation":"3"'))).toBe('u');
    s.learn(chunk('t', ',"obfuscation":"4"'), 'content', content);
    expect(s.textOf(chunk('u', ',"obfuscation":"4"'))).toBeUndefined();
    expect(s.textOf(chunk('u', ',"obfuscation":"3"'))).toBe('u');
  });
});

/** `chunk(text)` padded as api.openai.com pads it: a random `obfuscation` member, last. */
const padded = (text: string, value: string) => `${chunk(text).slice(0, -1)},"obfuscation":"${value}"}`;

describe('DeltaShape with a volatile last field', () => {
  it('reads chunks that differ only in its plain value from their literal', () => {
    const s = new DeltaShape('obfuscation');
    s.learn(padded('first', 'tgSHj0'), 'content', content);
    for (const [text, value] of [
      ['a', ''],
      ['quote " \\ slash', 'x'],
      ['"obfuscation":"', 'AbC123'],
      ['😀', " {}[],:~!@#$%^&*()_+-=`|<>?/'"],
      ['long', 'z'.repeat(500)],
    ] as const) {
      const data = padded(text, value);
      expect(JSON.parse(data).choices[0].delta.content).toBe(text);
      expect(s.textOf(data), value).toBe(text);
    }
  });

  it('refuses a value that is not plain, a missing or other last field, other bytes before it', () => {
    const s = new DeltaShape('obfuscation');
    s.learn(padded('first', 'v'), 'content', content);
    for (const other of [
      padded('x', 'a\\"b'), // an escaped quote
      padded('x', '\\u0041'), // an escape
      padded('x', 'é'), // not ASCII
      padded('x', 'a\u0001'), // a raw control character
      chunk('x'), // no volatile field
      `${chunk('x').slice(0, -1)},"obfuscatior":"v"}`,
      `${chunk('x').slice(0, -1)},"obfuscation":"v","more":1}`,
      `${chunk('x').slice(0, -1)},"obfuscation":1}`,
      padded('x', 'v').replace('"created":1', '"created":2'),
      `${padded('x', 'v')} `,
    ])
      expect(s.textOf(other), other).toBeUndefined();
  });

  it('is no part of the shape when the chunk does not end in it', () => {
    const s = new DeltaShape('obfuscation');
    s.learn(chunk('first'), 'content', content);
    expect(s.textOf(chunk('x'))).toBe('x');
    expect(s.textOf(padded('x', 'v'))).toBeUndefined();
    // Nor when its value is not plain: the whole chunk is then the shape, as without a key.
    s.learn(padded('first', 'é'), 'content', content);
    expect(s.textOf(padded('x', 'é'))).toBe('x');
    expect(s.textOf(padded('x', 'e'))).toBeUndefined();
  });
});

const ingress = streamIngress;

const rng = seededRandom;

const TEXTS = [
  '',
  'Hello',
  ' mole',
  'é🐾',
  '中文',
  'a\nb',
  'quote " and \\ slash',
  '\u2028',
  '"content":"x"',
];

/** One random OpenAI stream: mostly text deltas, with every other kind of chunk mixed in. */
function randomStream(seed: number): string[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const frames: string[] = [];
  let created = 1;
  const head = () => `"id":"c${seed}","object":"chat.completion.chunk","created":${created},"model":"m"`;
  const choice = (delta: string, finish = 'null') =>
    `{"index":0,"delta":{${delta}},"logprobs":null,"finish_reason":${finish}}`;
  // Half the streams are padded as api.openai.com pads them: a random `obfuscation` member
  // last in each text chunk, now and then with a value that is not plain ASCII.
  const padding = seed % 2 === 0;
  const pad = () => {
    if (!padding) return '';
    let v = '';
    for (let n = Math.floor(r() * 12); n > 0; n--)
      v += r() < 0.97 ? String.fromCharCode(0x20 + Math.floor(r() * 95)) : pick(['é', '\u0001', '\\']);
    return `,"obfuscation":${JSON.stringify(v)}`;
  };
  frames.push(`{${head()},"choices":[${choice('"role":"assistant","content":""')}]}`);
  const n = 5 + Math.floor(r() * 40);
  for (let i = 0; i < n; i++) {
    const k = r();
    const text = JSON.stringify(pick(TEXTS));
    if (k < 0.6) frames.push(`{${head()},"choices":[${choice(`"content":${text}`)}],"usage":null${pad()}}`);
    else if (k < 0.65) created++;
    else if (k < 0.7) frames.push(`{${head()},"choices":[${choice(`"reasoning_content":${text}`)}]}`);
    else if (k < 0.73)
      frames.push(`{${head()},"choices":[${choice(`"content":${text},"reasoning_content":"think"`)}]}`);
    else if (k < 0.76)
      frames.push(
        `{${head()},"choices":[${choice(`"tool_calls":[{"index":${Math.floor(r() * 2)},"id":"t","function":{"name":"f","arguments":${text}}}]`)}]}`,
      );
    else if (k < 0.775)
      frames.push(
        `{${head()},"choices":[${choice(`"content":${text},"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]`)}]}`,
      );
    else if (k < 0.79)
      frames.push(`{${head()},"choices":[${choice(`"content":${text}`)}],"obfuscation":"${i}"}`);
    else if (k < 0.8) frames.push(`{${head()},"choices":[${choice(`"content":${text}`)}],"obfuscation":1}`);
    else if (k < 0.81) frames.push(`{${head()},"choices":[${choice(`"content":null`)}]}`);
    else if (k < 0.83) frames.push(`{${head()},"choices":[${choice(`"content":${text}`)},${choice('')}]}`);
    else if (k < 0.85) frames.push(`{${head()},"choices":[{"index":0,"text":${text}}]}`);
    else if (k < 0.87) frames.push(`  {${head()},"choices":[${choice(`"content":${text}`)}]} `);
    else if (k < 0.89) frames.push(`{${head()},"choices":[${choice(`"content":${text}`, '"stop"')}]}`);
    else if (k < 0.91)
      frames.push(`{${head()},"choices":[],"usage":{"prompt_tokens":${i},"completion_tokens":${n}}}`);
    else if (k < 0.92)
      frames.push(`{${head()},"choices":[${choice(`"content":${text}`)}],"usage":{"prompt_tokens":1}}`);
    else if (k < 0.93)
      frames.push(`{"error":{"message":"boom"},${head()},"choices":[${choice(`"content":${text}`)}]}`);
    else if (k < 0.94) {
      // The last text chunk with one character changed: broken JSON, or other JSON.
      const last = frames.at(-1)!;
      const at = Math.floor(r() * last.length);
      frames.push(last.slice(0, at) + pick(['"', '\\', ',', '}', ']', '0', 'x', ' ']) + last.slice(at + 1));
    } else frames.push(`{${head()},"choices":[${choice(`"content":${text}`)}],"usage":null${pad()}}`);
  }
  frames.push('[DONE]');
  return frames;
}

/** Runs `body`, counting the frames DeltaShape read from their literal. */
function countingShapeHits(body: () => void): number {
  const proto = DeltaShape.prototype;
  const original = proto.textOf;
  let hits = 0;
  proto.textOf = function (this: DeltaShape, data: string) {
    const t = original.call(this, data);
    if (t !== undefined) hits++;
    return t;
  };
  try {
    body();
  } finally {
    proto.textOf = original;
  }
  return hits;
}

/** Each frame's outcome: its events and hide, or the error it threw; then done and usage. */
function run(decoder: StreamDecoder, frames: Array<string | [string | null, string]>) {
  return frames.map((f) => {
    const [event, data] = typeof f === 'string' ? [null, f] : f;
    let out: unknown;
    try {
      out = decoder.feed({ event, data, raw: '' });
    } catch (err) {
      out = { threw: String(err) };
    }
    return { out, done: decoder.done, usage: decoder.usage };
  });
}

/**
 * Decodes 2,000 random streams frame by frame with shapes and without (for a client that did
 * not and one that did ask for usage) and holds the two to the same outcomes; checks that most
 * frames were read from their literal.
 */
function holdsToWholeDecoder(
  streams: (seed: number) => Array<string | [string | null, string]>,
  newDecoder: (r: ReturnType<typeof ingress>, shapes: boolean) => StreamDecoder,
): void {
  let read = 0;
  const hits = countingShapeHits(() => {
    for (let seed = 1; seed <= 2000; seed++) {
      const frames = streams(seed);
      for (const wants of [false, true]) {
        const r = ingress(wants);
        expect(run(newDecoder(r, true), frames), `seed ${seed}`).toEqual(run(newDecoder(r, false), frames));
        read += frames.length;
      }
    }
  });
  // Most frames are text deltas of the same shape: most are read from their literal.
  expect(read).toBeGreaterThan(80_000);
  expect(hits / read).toBeGreaterThan(0.3);
}

describe('OpenAI stream decoder with delta shapes', () => {
  it('gives frame by frame what parsing every chunk whole gives (2,000 random streams)', () => {
    holdsToWholeDecoder(randomStream, streamDecoder);
  });

  it.each([
    ['a plain stream', (text: string) => chunk(text)],
    // Another random pad on every chunk.
    ['a padded stream', (text: string, i: number) => padded(text, `p${'Q'.repeat(i)}=`)],
  ])('reads the text deltas of %s from their literals, from the third chunk on', (_, make) => {
    const d = streamDecoder(ingress(false));
    const frames = [make('', 0), ...['a', 'b', 'c', 'd'].map((t, i) => make(t, i + 1)), '[DONE]'];
    let events: unknown[] = [];
    const hits = countingShapeHits(() => {
      events = frames.flatMap((data) => d.feed({ event: null, data, raw: '' }).events);
    });
    expect(events).toEqual([
      { type: 'start', id: 'c1', model: 'm' },
      ...['a', 'b', 'c', 'd'].map((text) => ({ type: 'text', text })),
    ]);
    // The first chunk is decoded whole and not learnt from; the second is learnt from.
    expect(hits).toBe(3);
  });
});

/** One random Anthropic Messages stream: text deltas mostly, every other frame mixed in. */
function randomMessagesStream(seed: number): Array<[string | null, string]> {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const frames: Array<[string | null, string]> = [];
  // An event line, mostly the data's own type; sometimes none, or another.
  const framed = (type: string, data: string) => {
    const k = r();
    frames.push([k < 0.85 ? type : k < 0.95 ? null : pick(['content_block_delta', 'ping', 'error']), data]);
  };
  framed(
    'message_start',
    '{"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":9,"output_tokens":1}}}',
  );
  let index = 0;
  const n = 5 + Math.floor(r() * 40);
  for (let i = 0; i < n; i++) {
    const k = r();
    const text = JSON.stringify(pick(TEXTS));
    const delta = (d: string) => `{"type":"content_block_delta","index":${index},"delta":${d}}`;
    if (k < 0.6) framed('content_block_delta', delta(`{"type":"text_delta","text":${text}}`));
    else if (k < 0.64) {
      framed('content_block_stop', `{"type":"content_block_stop","index":${index}}`);
      index++;
      const block = pick([
        `{"type":"text","text":${text}}`,
        '{"type":"thinking","thinking":"hm"}',
        `{"type":"tool_use","id":"t${i}","name":"f","input":{}}`,
      ]);
      framed(
        'content_block_start',
        `{"type":"content_block_start","index":${index},"content_block":${block}}`,
      );
    } else if (k < 0.68) framed('content_block_delta', delta(`{"type":"thinking_delta","thinking":${text}}`));
    else if (k < 0.72)
      framed('content_block_delta', delta(`{"type":"input_json_delta","partial_json":${text}}`));
    else if (k < 0.75) framed('content_block_delta', delta(`{"type":"text_delta","text":${text},"extra":1}`));
    else if (k < 0.77) framed('content_block_delta', delta(`{"type":"text_delta","text":null}`));
    else if (k < 0.79) framed('ping', '{"type":"ping"}');
    else if (k < 0.81)
      framed('content_block_delta', `{"type":"error","error":{"message":"boom"},"delta":{"text":${text}}}`);
    else if (k < 0.83) framed('content_block_delta', ` ${delta(`{"type":"text_delta","text":${text}}`)}`);
    else if (k < 0.85)
      framed(
        'message_delta',
        `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":${i}}}`,
      );
    else if (k < 0.86) {
      const last = frames.at(-1)![1];
      const at = Math.floor(r() * last.length);
      framed(
        'content_block_delta',
        last.slice(0, at) + pick(['"', '\\', ',', '}', ']', '0', 'x', ' ']) + last.slice(at + 1),
      );
    } else framed('content_block_delta', delta(`{"type":"text_delta","text":${text}}`));
  }
  framed('message_stop', '{"type":"message_stop"}');
  return frames;
}

describe('Anthropic stream decoder with delta shapes', () => {
  it('gives frame by frame what parsing every frame whole gives (2,000 random streams)', () => {
    holdsToWholeDecoder(randomMessagesStream, anthropicDecoder);
  });
});
