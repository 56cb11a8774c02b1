import { describe, expect, it } from 'vitest';
import { anthropicCodec } from './protocols/anthropic.js';
import { openaiCodec } from './protocols/openai.js';
import { responsesCodec } from './protocols/responses.js';
import type { ProtocolCodec } from './protocols/types.js';
import { joinBytes, StreamCheck } from './stream.js';
import { seededRandom, streamIngress } from '../../test/helpers/codec.js';

// OpenAI, Anthropic and Responses pass-throughs check frames as bytes (PassThroughCheck) instead of
// decoding each into events. These tests hold them to the full decoder on the same streams: the
// same frames go out, the same errors end the stream, the same usage, and the same generated text.

const ingress = streamIngress;

interface Step {
  out: string;
  done: boolean;
  usage: unknown;
  error?: string;
  produced?: string;
}

/** What a check makes of `chunks`, step by step, as relayStream drives it. */
function trace(check: StreamCheck, chunks: Buffer[], readProduced: (k: number) => boolean): Step[] {
  const steps: Step[] = [];
  const step = (k: number, run: () => void) => {
    let error: string | undefined;
    try {
      run();
    } catch (err) {
      error = `${(err as Error).constructor.name}: ${(err as Error).message}`;
    }
    const s: Step = { out: String(check.takeReady()), done: check.done, usage: check.usage };
    if (error) s.error = error;
    if (error || readProduced(k)) s.produced = check.produced;
    steps.push(s);
    return !error;
  };
  for (let k = 0; k < chunks.length; k++) if (!step(k, () => check.feed(chunks[k]!))) return steps;
  step(chunks.length, () => check.end());
  steps.push({
    out: String(check.takeTail()),
    done: check.done,
    usage: check.usage,
    produced: check.produced,
  });
  return steps;
}

function compare(
  chunks: Buffer[],
  clientWantsUsage: boolean,
  readProduced: (k: number) => boolean,
  what: string,
  codec: ProtocolCodec = openaiCodec,
) {
  const r = ingress(clientWantsUsage);
  // The pass-through check against feeding the decoder, which reads every frame's events.
  const fast = new StreamCheck(codec.passThroughCheck!(r), null, r.model);
  const full = new StreamCheck(codec.streamDecoder(r), null, r.model);
  const got = trace(fast, chunks, readProduced);
  expect(got, what).toEqual(trace(full, chunks, readProduced));
  return got;
}

/**
 * `compare` on `wire` in random chunks (whole, or 0–79 bytes), its last blank line dropped one
 * time in ten, the text read after one step picked at random.
 */
function compareChunked(
  wire: string,
  r: () => number,
  what: string,
  codec: ProtocolCodec,
  clientWantsUsage = () => false,
) {
  if (r() < 0.1) wire = wire.replace(/\r?\n$/, '');
  const bytes = Buffer.from(wire);
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = r() < 0.3 ? bytes.length : Math.floor(r() * 80);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  const readAt = Math.floor(r() * (chunks.length + 2));
  compare(chunks, clientWantsUsage(), (k) => k === readAt, `${what}: ${wire}`, codec);
}

/** Valid JSON `text` with one byte changed, dropped or added, at random. */
function damaged(text: string, r: () => number): string {
  const at = Math.floor(r() * text.length);
  const ch = ['"', '\\', ',', '}', ']', '0', 'x', ' '][Math.floor(r() * 8)]!;
  const how = r();
  return how < 0.33
    ? text.slice(0, at) + text.slice(at + 1)
    : text.slice(0, at) + ch + text.slice(at + (how < 0.66 ? 0 : 1));
}

const rng = seededRandom;

/** Texts a model might stream: empty, accented, astral, CJK, escapes, a line separator. */
const TEXTS = ['', 'Hello', ' mole', 'é🐾', '中文', 'a\nb', 'quote " and \\ slash', '\u2028'];

/** Seeded random choices for one generated stream. */
function chooser(seed: number) {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const maybe = <T>(p: number, v: () => T) => (r() < p ? v() : undefined);
  return { r, pick, maybe, text: () => pick(TEXTS) };
}

describe('StreamCheck on OpenAI pass-through', () => {
  it('sends the frames on as received, and hides the usage-only chunk from a client that did not ask', () => {
    const text =
      ': ping\n\n' +
      'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hi é🐾"}}],"usage":null}\n\n' +
      'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n' +
      'data: [DONE]\n\n';
    for (const wants of [false, true]) {
      const r = ingress(wants);
      const check = new StreamCheck(openaiCodec.passThroughCheck!(r), null, r.model);
      check.feed(Buffer.from(text));
      const frames = text.split(/(?<=\n\n)/);
      expect(String(check.takeReady())).toBe(frames[1]! + (wants ? frames[2] : ''));
      expect(String(check.takeTail())).toBe(frames[3]);
      expect(check.done).toBe(true);
      expect(check.usage).toMatchObject({ input: 3, output: 2 });
      expect(check.produced).toBe('Hi é🐾');
    }
  });

  it('ends on a bad frame with the same message, after sending what came before it', () => {
    const good = 'data: {"choices":[{"delta":{"content":"a"}}]}\n\n';
    const cases: [string, string][] = [
      ['data: {"choices":[\n\n', 'upstream sent an unreadable stream event'],
      ['data: [1,2]\n\n', 'upstream sent an unreadable stream event'],
      ['data: {"error":{"message":"overloaded"}}\n\n', 'upstream reported an error mid-stream'],
      ['data: {"\\u0065rror":false,"choices":[]}\n\n', 'upstream reported an error mid-stream'],
    ];
    for (const [bad, message] of cases) {
      const r = ingress(false);
      const check = new StreamCheck(openaiCodec.passThroughCheck!(r), null, r.model);
      expect(() => check.feed(Buffer.from(good + bad + good)), bad).toThrow(message);
      expect(String(check.takeReady())).toBe(good);
      expect(check.produced).toBe('a');
    }
  });

  it('agrees with the full decoder on random streams in random chunkings', () => {
    for (let seed = 1; seed <= 1500; seed++) {
      const { r, pick, maybe, text } = chooser(seed);
      const toolCall = () =>
        r() < 0.1
          ? pick([null, 'x', 3])
          : {
              index: maybe(0.8, () => pick([0, 1, 2, '1'])),
              id: maybe(0.5, () => pick(['call_a', 'call_b', 7])),
              function:
                r() < 0.1
                  ? 'f'
                  : { name: maybe(0.5, () => pick(['lookup', 'run', ''])), arguments: maybe(0.7, text) },
            };
      const choice = () =>
        r() < 0.05
          ? pick([null, 'x'])
          : {
              index: maybe(0.8, () => pick([0, 0, 1])),
              text: maybe(0.1, () => pick(['legacy', '', 5])),
              delta:
                r() < 0.05
                  ? 'd'
                  : {
                      role: maybe(0.2, () => 'assistant'),
                      content: maybe(0.6, () => (r() < 0.1 ? pick([null, 4]) : text())),
                      reasoning_content: maybe(0.1, text),
                      reasoning: maybe(0.1, text),
                      tool_calls: maybe(0.3, () =>
                        r() < 0.1 ? 'none' : Array.from({ length: 1 + Math.floor(r() * 2) }, toolCall),
                      ),
                    },
              finish_reason: maybe(0.3, () => pick([null, 'stop', 'length', 'tool_calls', 'odd'])),
            };
      const usage = () =>
        r() < 0.1
          ? pick([5, 'x', [], {}])
          : {
              prompt_tokens: pick([3, 10, -1]),
              completion_tokens: maybe(0.9, () => pick([2, 7])),
              prompt_tokens_details: maybe(0.5, () => ({ cached_tokens: pick([0, 1, 50]) })),
            };
      const chunk = () => ({
        id: maybe(0.9, () => 'chatcmpl-1'),
        object: 'chat.completion.chunk',
        model: maybe(0.9, () => 'gpt-4o-mini'),
        choices: r() < 0.05 ? 'none' : Array.from({ length: Math.floor(r() * 3) }, choice),
        usage: maybe(0.5, () => (r() < 0.6 ? null : usage())),
        error: maybe(0.05, () => null),
      });
      const json = () => JSON.stringify(chunk());
      const data = (): string => {
        const k = r();
        if (k < 0.7) return json();
        if (k < 0.75) return JSON.stringify({ choices: [], usage: usage() });
        if (k < 0.78) return pick(['[DONE]', ' [DONE] ', '[DONE]\t']);
        if (k < 0.8) return JSON.stringify(chunk(), null, 1); // several data lines
        if (k < 0.82) return pick(['  ', '\u00a0', '\ufeff']) + json() + pick(['', ' ', '\u00a0']);
        if (k < 0.84) return `{"error":{"message":"x"},"error":null,${json().slice(1)}`;
        if (k < 0.86) return `{"usage":{"prompt_tokens":9},"usage":null,${json().slice(1)}`;
        if (k < 0.87)
          return `{"usage":null,"usage":{"prompt_tokens":9,"completion_tokens":1},${json().slice(1)}`;
        if (k < 0.88) return `{"x":{"error":1},"\\u0075sage":{"prompt_tokens":4},${json().slice(1)}`;
        if (k < 0.89) return JSON.stringify({ error: pick([{ message: 'boom' }, 'x', false, 0]) });
        if (k < 0.9) return `{"\\u0065rror":${pick(['null', '1'])},${json().slice(1)}`;
        if (k < 0.92) return pick(['', 'garbage', '[1,2]', '"s"', '42', 'null', '{"a":01}', '{"a":"\t"}']);
        return damaged(json(), r);
      };
      let wire = '';
      for (let f = 0, n = 1 + Math.floor(r() * 25); f < n; f++) {
        const eol = r() < 0.85 ? '\n' : '\r\n';
        if (r() < 0.05) wire += `: keep-alive${eol}${eol}`;
        if (r() < 0.05) wire += `event: chunk${eol}`;
        wire += `${data()
          .split('\n')
          .map((line) => `data:${r() < 0.9 ? ' ' : ''}${line}${eol}`)
          .join('')}${eol}`;
      }
      compareChunked(wire, r, `seed ${seed}`, openaiCodec, () => r() < 0.5);
    }
  });

  it('gives the same text for a long stream whose kept frames are decoded along the way', () => {
    // Far past the frames kept undecoded (256 KiB): tool calls across the flush keep their order.
    const frames: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const delta =
        i % 7 === 0
          ? {
              tool_calls: [
                { index: i % 3, id: `call_${i}`, function: { name: `f${i % 3}`, arguments: `{"i":${i}}` } },
              ],
            }
          : {
              content: `${'word '.repeat(40)}${i} 🐾`,
              reasoning_content: i % 5 === 0 ? 'thinking' : undefined,
            };
      frames.push(`data: ${JSON.stringify({ id: 'c', choices: [{ index: 0, delta }] })}\n\n`);
    }
    frames.push('data: [DONE]\n\n');
    const bytes = Buffer.from(frames.join(''));
    expect(bytes.length).toBeGreaterThan(2 * 256 * 1024);
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += 4096) chunks.push(bytes.subarray(at, at + 4096));
    const steps = compare(chunks, false, () => false, 'long stream');
    expect(steps.at(-1)!.produced!.length).toBeGreaterThan(500_000);
    compare(chunks, false, (k) => k % 40 === 0, 'long stream, text read along the way');
  });

  it('agrees with the full decoder on random streams of chunks alike but for their text', () => {
    // What FrameShape spares the scan: runs of one chunk shape, now and then padded as
    // api.openai.com does, among damaged, error, usage and other chunks.
    for (let seed = 1; seed <= 1000; seed++) {
      const { r, pick, text } = chooser(seed);
      const created = pick([1, 2]);
      const pad = () => (r() < 0.9 ? pick(['', 'a', 'Zq9Tk2', '%^&*']) : pick(['é', 'a\\"b', '\t']));
      const padded = r() < 0.5;
      const chunk = (t: unknown) => {
        const json = `{"id":"c1","object":"chat.completion.chunk","created":${created},"model":"m","choices":[{"index":0,"delta":{"content":${JSON.stringify(t)}},"logprobs":null,"finish_reason":null}],"usage":null`;
        return `${json}${padded ? `,"obfuscation":"${pad()}"` : ''}}`;
      };
      const data = (): string => {
        const k = r();
        if (k < 0.75) return chunk(text());
        if (k < 0.85) return damaged(chunk(text()), r);
        if (k < 0.87) return chunk(pick([null, 7, ['x']]));
        if (k < 0.9) return chunk(text()).replace('"usage":null', '"usage":{"prompt_tokens":3}');
        if (k < 0.92) return chunk(text()).replace('"usage":null', '"error":{"message":"x"}');
        if (k < 0.94) return chunk(text()).replace('"finish_reason":null', '"finish_reason":"stop"');
        if (k < 0.96) return chunk(text()).replace('"created":', '"created": ');
        if (k < 0.98)
          // a literal that is no JSON string: a bad escape or a raw control character
          return chunk(text()).replace(
            '"content":"',
            pick(['"content":"\\q', '"content":"\\u12', '"content":"\u0001']),
          );
        return pick(['[DONE]', '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}']);
      };
      let wire = '';
      for (let f = 0, n = 2 + Math.floor(r() * 30); f < n; f++) wire += `data: ${data()}\n\n`;
      compareChunked(wire, r, `seed ${seed}`, openaiCodec, () => r() < 0.5);
    }
  });
});

/** An Anthropic Messages stream's wire text, from the frames' event names and data. */
const anthropicWire = (frames: [string | null, string][], eol = '\n') =>
  frames
    .map(([event, data]) => `${event === null ? '' : `event: ${event}${eol}`}data: ${data}${eol}${eol}`)
    .join('');

describe('StreamCheck on Anthropic pass-through', () => {
  const start = (usage: object) =>
    JSON.stringify({ type: 'message_start', message: { id: 'msg_1', model: 'claude-x', usage } });
  const delta = (d: object, index = 0) => JSON.stringify({ type: 'content_block_delta', index, delta: d });

  it('sends the frames on as received, with the usage of message_start and message_delta', () => {
    const wire = anthropicWire([
      ['message_start', start({ input_tokens: 12, output_tokens: 1 })],
      [
        'content_block_start',
        '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
      ],
      ['ping', '{"type": "ping"}'],
      ['content_block_delta', delta({ type: 'text_delta', text: 'Hi é🐾' })],
      ['content_block_delta', delta({ type: 'text_delta', text: ' there' })],
      ['content_block_stop', '{"type":"content_block_stop","index":0}'],
      [
        'message_delta',
        '{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}',
      ],
      ['message_stop', '{"type":"message_stop"}'],
    ]);
    const r = ingress(false);
    const check = new StreamCheck(anthropicCodec.passThroughCheck!(r), null, r.model);
    check.feed(Buffer.from(wire));
    const frames = wire.split(/(?<=\n\n)/);
    expect(String(check.takeReady())).toBe(frames.slice(0, 7).join(''));
    expect(String(check.takeTail())).toBe(frames[7]);
    expect(check.done).toBe(true);
    expect(check.usage).toMatchObject({ input: 12, output: 4 });
    expect(check.produced).toBe('Hi é🐾 there');
  });

  it('ends on a bad or error frame with the same message, after sending what came before it', () => {
    const good = anthropicWire([['content_block_delta', delta({ type: 'text_delta', text: 'a' })]]);
    const cases: [string, string][] = [
      [
        anthropicWire([['content_block_delta', '{"type":"content_block_delta",']]),
        'unreadable content_block_delta',
      ],
      [anthropicWire([['content_block_delta', '[1]']]), 'unreadable content_block_delta'],
      [
        anthropicWire([['content_block_stop', '{"type":"content_block_stop","type":"error"}']]),
        'upstream stream error',
      ],
      [
        anthropicWire([['content_block_delta', '{"t\\u0079pe":"\\u0065rror","error":{"message":"boom"}}']]),
        'boom',
      ],
      [
        anthropicWire([
          ['error', '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'],
        ]),
        'Overloaded',
      ],
    ];
    for (const [bad, message] of cases) {
      for (const codec of [anthropicCodec]) {
        const r = ingress(false);
        const check = new StreamCheck(codec.passThroughCheck!(r), null, r.model);
        expect(() => check.feed(Buffer.from(good + bad + good)), bad).toThrow(message);
        expect(String(check.takeReady())).toBe(good);
        expect(check.produced).toBe('a');
      }
      compare([Buffer.from(good + bad + good)], false, () => true, bad, anthropicCodec);
    }
  });

  it('agrees with the full decoder on random streams in random chunkings', () => {
    for (let seed = 1; seed <= 1500; seed++) {
      const { r, pick, maybe, text } = chooser(seed);
      const usage = () =>
        r() < 0.1
          ? pick([5, 'x', [], null])
          : {
              input_tokens: maybe(0.8, () => pick([3, 10, -1])),
              output_tokens: maybe(0.9, () => pick([1, 7])),
              cache_read_input_tokens: maybe(0.3, () => pick([0, 50])),
              cache_creation_input_tokens: maybe(0.2, () => pick([0, 20])),
            };
      const block = () =>
        pick([
          { type: 'text', text: text() },
          { type: 'thinking', thinking: text() },
          {
            type: 'tool_use',
            id: pick(['toolu_1', 7]),
            name: pick(['lookup', '', 3]),
            input: pick([{}, { q: 1 }, 'x']),
          },
          'x',
        ]);
      const deltaBody = () =>
        pick([
          { type: 'text_delta', text: text() },
          { type: 'thinking_delta', thinking: text() },
          { type: 'input_json_delta', partial_json: pick(['{"q":', '1}', '']) },
          { type: 'signature_delta', signature: 'sig' },
          'd',
        ]);
      const frame = (): [string | null, string] => {
        const k = r();
        const index = pick([0, 1, 2, '1', -1]);
        if (k < 0.45)
          return [
            'content_block_delta',
            JSON.stringify({ type: 'content_block_delta', index, delta: deltaBody() }),
          ];
        if (k < 0.52)
          return [
            'content_block_start',
            JSON.stringify({ type: 'content_block_start', index, content_block: block() }),
          ];
        if (k < 0.57) return ['content_block_stop', JSON.stringify({ type: 'content_block_stop', index })];
        if (k < 0.6) return ['ping', pick(['{"type": "ping"}', 'not json'])];
        if (k < 0.63)
          return [
            'message_start',
            JSON.stringify({ type: 'message_start', message: { id: 'm', model: 'c', usage: usage() } }),
          ];
        if (k < 0.67)
          return [
            'message_delta',
            JSON.stringify({
              type: 'message_delta',
              delta: { stop_reason: pick(['end_turn', 'max_tokens', null]) },
              usage: usage(),
            }),
          ];
        if (k < 0.69) return ['message_stop', '{"type":"message_stop"}'];
        if (k < 0.7) return ['error', JSON.stringify({ type: 'error', error: { message: 'boom' } })];
        if (k < 0.72)
          return [
            pick(['content_block_delta', 'content_block_stop']),
            `{"type":"x","type":"error","error":{"message":"dup"}}`,
          ];
        if (k < 0.74)
          return [
            pick([null, 'content_block_delta']),
            `{"t\\u0079pe":"${pick(['error', '\\u0065rror', 'ok'])}"}`,
          ];
        if (k < 0.77)
          return [null, JSON.stringify({ type: 'content_block_delta', index: 0, delta: deltaBody() })];
        if (k < 0.79)
          return [
            pick(['content_block_delta', 'content_block_stop', 'message_delta']),
            pick(['', 'garbage', '[1,2]', '"s"', 'null', '{"a":01}']),
          ];
        if (k < 0.8)
          return [
            pick(['future_event', 'content_block_deltas', 'Content_block_delta']),
            '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"n"}}',
          ];
        return [
          'content_block_delta',
          damaged(JSON.stringify({ type: 'content_block_delta', index, delta: deltaBody() }), r),
        ];
      };
      let wire = '';
      for (let f = 0, n = 1 + Math.floor(r() * 25); f < n; f++) {
        const eol = r() < 0.85 ? '\n' : '\r\n';
        if (r() < 0.05) wire += `: keep-alive${eol}${eol}`;
        const [event, data] = frame();
        if (event !== null) wire += `event:${r() < 0.9 ? ' ' : ''}${event}${eol}`;
        if (r() < 0.03) wire += `id: ${f}${eol}`;
        wire += `data:${r() < 0.9 ? ' ' : ''}${data}${eol}${eol}`;
      }
      compareChunked(wire, r, `seed ${seed}`, anthropicCodec);
    }
  });

  it('agrees with the full decoder on random streams of text deltas alike but for their text', () => {
    // What FrameShape spares the scan: runs of one delta shape among damaged, error and other frames.
    for (let seed = 1; seed <= 1000; seed++) {
      const { r, pick, text } = chooser(seed);
      const index = pick([0, 1]);
      const textDelta = (t: unknown, i = index) =>
        `{"type":"content_block_delta","index":${i},"delta":{"type":"text_delta","text":${JSON.stringify(t)}}}`;
      const frame = (): [string, string] => {
        const k = r();
        if (k < 0.7) return ['content_block_delta', textDelta(text())];
        if (k < 0.8) return ['content_block_delta', damaged(textDelta(text()), r)];
        if (k < 0.82) return ['content_block_delta', textDelta(pick([null, 7, { x: 1 }]))];
        if (k < 0.84) return ['content_block_delta', textDelta(text(), 2)];
        if (k < 0.86)
          return ['content_block_delta', textDelta(text()).replace('"content_block_delta"', '"error"')];
        if (k < 0.88)
          return [
            'content_block_delta',
            textDelta(text()).replace('"text":"', pick(['"text":"\\q', '"text":"\\u12', '"text":"\u0001'])),
          ];
        if (k < 0.9)
          return ['content_block_delta', delta({ type: 'thinking_delta', thinking: text() }, index)];
        if (k < 0.92) return ['content_block_stop', `{"type":"content_block_stop","index":${index}}`];
        if (k < 0.94) return ['ping', '{"type": "ping"}'];
        if (k < 0.96)
          return [
            'message_delta',
            '{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}',
          ];
        return ['message_stop', '{"type":"message_stop"}'];
      };
      const frames: [string, string][] = [['message_start', start({ input_tokens: 3 })]];
      for (let f = 0, n = 2 + Math.floor(r() * 30); f < n; f++) frames.push(frame());
      compareChunked(anthropicWire(frames), r, `seed ${seed}`, anthropicCodec);
    }
  });

  it('gives the same text for a long stream whose kept frames are decoded along the way', () => {
    const frames: [string, string][] = [['message_start', start({ input_tokens: 5 })]];
    for (let i = 0; i < 3000; i++) {
      if (i % 100 === 0)
        frames.push([
          'content_block_start',
          JSON.stringify({
            type: 'content_block_start',
            index: i,
            content_block: { type: 'tool_use', id: `t${i}`, name: `f${i}`, input: {} },
          }),
        ]);
      frames.push([
        'content_block_delta',
        i % 100 < 3
          ? delta({ type: 'input_json_delta', partial_json: `{"i":${i}` }, i - (i % 100))
          : delta({ type: 'text_delta', text: `${'word '.repeat(40)}${i} 🐾` }, i),
      ]);
    }
    frames.push(['message_stop', '{"type":"message_stop"}']);
    const bytes = Buffer.from(anthropicWire(frames));
    expect(bytes.length).toBeGreaterThan(4 * 32 * 1024);
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += 4096) chunks.push(bytes.subarray(at, at + 4096));
    const steps = compare(chunks, false, () => false, 'long stream', anthropicCodec);
    expect(steps.at(-1)!.produced!.length).toBeGreaterThan(500_000);
    compare(chunks, false, (k) => k % 40 === 0, 'long stream, text read along the way', anthropicCodec);
  });
});

describe('StreamCheck on Responses pass-through', () => {
  it('agrees with the full decoder on random streams in random chunkings', () => {
    let kept = 0;
    for (let seed = 1; seed <= 1500; seed++) {
      const { r, pick } = chooser(seed);
      const out = () => pick([0, 1, 2, '1']);
      const response = (status: string) => ({
        id: 'resp_1',
        model: 'gpt-5',
        status,
        usage: pick([
          { input_tokens: 9, output_tokens: 4, input_tokens_details: { cached_tokens: 2 } },
          { input_tokens: 3 },
          null,
          'x',
        ]),
      });
      const item = () =>
        pick([
          { type: 'message', content: [{ type: 'output_text', text: pick(TEXTS) }] },
          { type: 'message', content: [{ type: 'refusal', refusal: 'no' }] },
          {
            type: 'function_call',
            call_id: 'call_1',
            name: pick(['lookup', '']),
            arguments: pick(['', '{"q":1}']),
          },
          { type: 'reasoning', summary: [{ type: 'summary_text', text: 'hmm' }] },
          'x',
        ]);
      const DELTA_TYPES = [
        'response.output_text.delta',
        'response.function_call_arguments.delta',
        'response.reasoning_text.delta',
        'response.reasoning_summary_text.delta',
        'response.refusal.delta',
      ];
      const event = (): Record<string, unknown> => {
        const k = r();
        if (k < 0.5)
          return {
            type: pick(DELTA_TYPES),
            output_index: out(),
            delta: pick([...TEXTS, 5, null]),
            obfuscation: 'ab',
          };
        if (k < 0.58) return { type: 'response.output_item.added', output_index: out(), item: item() };
        if (k < 0.66) return { type: 'response.output_item.done', output_index: out(), item: item() };
        if (k < 0.7)
          return { type: 'response.function_call_arguments.done', output_index: out(), arguments: '{"q":2}' };
        if (k < 0.74)
          return {
            type: pick(['response.created', 'response.in_progress']),
            response: response('in_progress'),
          };
        if (k < 0.78)
          return {
            type: pick(['response.completed', 'response.incomplete']),
            response: response('completed'),
          };
        if (k < 0.79) return { type: 'response.failed', response: { error: { message: 'boom' } } };
        if (k < 0.8) return { type: 'error', message: 'bad' };
        return { type: pick(['response.content_part.added', 'response.output_text.done', 'future.event']) };
      };
      const data = (e: Record<string, unknown>): string => {
        const k = r();
        const json = JSON.stringify(e);
        if (k < 0.8) return json;
        if (k < 0.83)
          return `${json.slice(0, -1)},"type":"${pick(['response.completed', 'error', 'response.output_text.delta'])}"}`;
        if (k < 0.85) return `{"typ\\u0065":"response.failed",${json.slice(1)}`;
        if (k < 0.87) return ` ${json}`;
        if (k < 0.89) return pick(['', 'garbage', '[1,2]', '"s"', '{"type":"response.output_text.delta",}']);
        return damaged(json, r);
      };
      let wire = '';
      for (let f = 0, n = 1 + Math.floor(r() * 25); f < n; f++) {
        const eol = r() < 0.85 ? '\n' : '\r\n';
        const e = event();
        if (e.type === 'response.output_text.delta') kept++;
        if (r() < 0.9) wire += `event: ${r() < 0.9 ? e.type : pick(['error', 'x'])}${eol}`;
        wire += `data:${r() < 0.9 ? ' ' : ''}${data(e)}${eol}${eol}`;
      }
      compareChunked(wire, r, `seed ${seed}`, responsesCodec);
    }
    expect(kept).toBeGreaterThan(1000);
  });

  it('agrees with the full decoder on random streams of deltas alike but for text and number', () => {
    // What FrameShape spares the scan: runs of one delta shape whose sequence_number counts up.
    for (let seed = 1; seed <= 1000; seed++) {
      const { r, pick, text } = chooser(seed);
      let seq = Math.floor(r() * 3) * 1000;
      const type = pick(['response.output_text.delta', 'response.function_call_arguments.delta']);
      const delta = (t: unknown, n: unknown = seq++) =>
        `{"type":"${type}","sequence_number":${n},"item_id":"msg_1","output_index":0,"content_index":0,"delta":${JSON.stringify(t)},"logprobs":[],"obfuscation":"${pick(['mole', 'x', ''])}"}`;
      const data = (): string => {
        const k = r();
        if (k < 0.7) return delta(text());
        if (k < 0.8) return damaged(delta(text()), r);
        // Numbers that are not one JSON integer token, or not a number at all.
        if (k < 0.86)
          return delta(text(), pick(['05', '-1', '1.5', '1e3', '1234567890123456', '"7"', 'null', '']));
        if (k < 0.88) return delta(pick([null, 5]));
        if (k < 0.9) return `${delta(text()).slice(0, -1)},"type":"error"}`;
        if (k < 0.92) return delta(text()).replace('"delta":"', pick(['"delta":"\\q', '"delta":"\u0001']));
        if (k < 0.96)
          return JSON.stringify({
            type: 'response.completed',
            sequence_number: seq++,
            response: {
              id: 'r',
              model: 'm',
              status: 'completed',
              usage: { input_tokens: 3, output_tokens: 2 },
            },
          });
        return JSON.stringify({
          type: 'response.output_item.added',
          sequence_number: seq++,
          output_index: 0,
        });
      };
      let wire = '';
      for (let f = 0, n = 2 + Math.floor(r() * 30); f < n; f++) {
        const d = data();
        const name = /"type":"([^"]*)"/.exec(d)?.[1] ?? 'x';
        wire += `event: ${name}\ndata: ${d}\n\n`;
      }
      compareChunked(wire, r, `seed ${seed}`, responsesCodec);
    }
  });
});

describe('joinBytes', () => {
  it('writes a lone piece as it is, text as text, and bytes with text as their bytes', () => {
    const b = Buffer.from('data: é\n\n');
    expect(joinBytes([])).toBe('');
    expect(joinBytes([b])).toBe(b);
    expect(joinBytes(['a', 'é'])).toBe('aé');
    const mixed = joinBytes([b, 'data: 🐾\n\n', b.subarray(0, 4)]);
    expect(Buffer.isBuffer(mixed)).toBe(true);
    expect(mixed.toString()).toBe('data: é\n\ndata: 🐾\n\ndata');
  });
});
