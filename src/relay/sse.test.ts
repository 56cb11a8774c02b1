import { StringDecoder } from 'node:string_decoder';
import { describe, expect, it } from 'vitest';
import type { SseFrame } from './canonical.js';
import { SseByteFrames, SseFrameParser, SseParser } from './sse.js';
import { seededRandom } from '../../test/helpers/codec.js';

const feedAll = (parts: (string | Buffer)[]) => {
  const p = new SseParser();
  const out: string[] = [];
  for (const part of parts) out.push(...p.feed(Buffer.isBuffer(part) ? part : Buffer.from(part)));
  out.push(...p.end());
  return out;
};

describe('SseParser', () => {
  it('yields one payload per event, whatever the chunking', () => {
    const text = 'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n';
    const whole = feedAll([text]);
    expect(whole).toEqual(['{"a":1}', '{"b":2}', '[DONE]']);
    for (let cut = 1; cut < text.length; cut++)
      expect(feedAll([text.slice(0, cut), text.slice(cut)])).toEqual(whole);
    expect(feedAll([...text])).toEqual(whole);
  });

  it('keeps a multi-byte character split across chunks intact', () => {
    const bytes = Buffer.from('data: {"t":"mole 🐾 é"}\n\n');
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(feedAll([bytes.subarray(0, cut), bytes.subarray(cut)])).toEqual(['{"t":"mole 🐾 é"}']);
    }
  });

  it('accepts CRLF line ends, "data:" without a space, multi-line data, comments and other fields', () => {
    expect(feedAll([': keep-alive\r\n\r\nevent: x\r\ndata:{"a":1}\r\n\r\n'])).toEqual(['{"a":1}']);
    expect(feedAll(['data: line one\ndata: line two\n\n'])).toEqual(['line one\nline two']);
    expect(feedAll([': ping\n\n'])).toEqual([]);
  });

  it('returns a final event that lacks its blank line at the end', () => {
    expect(feedAll(['data: {"a":1}\n\ndata: {"tail":true}'])).toEqual(['{"a":1}', '{"tail":true}']);
    expect(feedAll(['data: {"a":1}\n\n\n'])).toEqual(['{"a":1}']);
  });
  it('keeps the event name and the raw frame for pass-through', () => {
    const p = new SseFrameParser();
    const text = 'event: message_start\ndata: {"type":"message_start"}\n\ndata: {"x":1}\n\n';
    const frames = p.feed(Buffer.from(text));
    expect(frames.map((f) => f.event)).toEqual(['message_start', null]);
    expect(frames.map((f) => f.raw).join('')).toBe(text);
  });
});

describe('SseFrameParser against random streams', () => {
  const rng = seededRandom;

  it('finds the same frames (event, data, raw) in any chunking and with LF or CRLF line ends', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
      const expected: { event: string | null; raw: string }[] = [];
      let text = '';
      for (let f = 0, n = 1 + Math.floor(r() * 12); f < n; f++) {
        const eol = pick(['\n', '\r\n']);
        const event = r() < 0.3 ? pick(['message_start', 'delta', 'x']) : null;
        const lines = Array.from({ length: 1 + Math.floor(r() * 3) }, () =>
          pick(['{"a":1}', 'mole 🐾 é', '', ' spaced', '[DONE]', '{"t":"\\n"}']),
        );
        let raw = r() < 0.2 ? `: comment${eol}` : '';
        if (event) raw += `event: ${event}${eol}`;
        for (const l of lines) raw += `data:${pick([' ', ''])}${l}${eol}`;
        raw += eol;
        text += raw;
        expected.push({ event, raw });
      }
      const bytes = Buffer.from(text);
      const p = new SseFrameParser();
      const got = [];
      for (let at = 0; at < bytes.length; ) {
        const size = 1 + Math.floor(r() * 40);
        got.push(...p.feed(bytes.subarray(at, at + size)));
        at += size;
      }
      got.push(...p.end());
      // data: every data line's value (one optional space after the colon dropped), joined by LF
      const dataOf = (raw: string) =>
        raw
          .split(/\r?\n/)
          .filter((l) => l.startsWith('data:'))
          .map((l) => (l.startsWith('data: ') ? l.slice(6) : l.slice(5)))
          .join('\n');
      expect(got, `seed ${seed}`).toEqual(expected.map((e) => ({ ...e, data: dataOf(e.raw) })));
    }
  });

  it('decodes any chunking of any bytes (split or invalid UTF-8 too) as a StringDecoder does', () => {
    const pieces = [
      Buffer.from('data: '),
      Buffer.from('\n\n'),
      Buffer.from('é🐾'),
      Buffer.from('ab'),
      Buffer.from([0xff]),
      Buffer.from([0xc3]),
      Buffer.from([0xf0, 0x9f]),
    ];
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      const bytes = Buffer.concat(
        Array.from({ length: 4 + Math.floor(r() * 30) }, () => pieces[Math.floor(r() * pieces.length)]!),
      );
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length; ) {
        const size = Math.floor(r() * 9); // empty chunks too
        chunks.push(bytes.subarray(at, at + size));
        at += size;
      }
      const reference = new StringDecoder('utf8');
      const text = chunks.map((c) => reference.write(c)).join('') + reference.end();
      const whole = new SseFrameParser();
      const expected = [...whole.feed(Buffer.from(text)), ...whole.end()];
      const p = new SseFrameParser();
      const got = chunks.flatMap((c) => p.feed(c));
      got.push(...p.end());
      expect(got, `seed ${seed}`).toEqual(expected);
    }
  });
});

describe('SseByteFrames', () => {
  /** The frames SseByteFrames finds in `chunks`, as SseFrames (frames it points into decoded here). */
  const byteFrames = (chunks: Buffer[]) => {
    const f = new SseByteFrames();
    const out: (SseFrame & { pointed?: true })[] = [];
    for (const chunk of chunks) {
      f.push(chunk);
      while (f.next()) {
        if (f.dataStart >= 0) {
          const data = f.bytes.toString('utf8', f.dataStart, f.dataEnd);
          const event = f.eventStart >= 0 ? f.bytes.toString('utf8', f.eventStart, f.eventEnd) : null;
          out.push({ event, data, raw: f.bytes.toString('utf8', f.start, f.end), pointed: true });
        } else {
          const frame = f.text();
          if (frame) out.push(frame);
        }
      }
    }
    const last = f.last();
    if (last) out.push(last);
    return out;
  };
  const textFrames = (chunks: Buffer[]) => {
    const p = new SseFrameParser();
    return [...chunks.flatMap((c) => p.feed(c)), ...p.end()];
  };
  const rng = seededRandom;

  it('points at the data (and event name) of a one-line or event-and-data frame, without decoding it', () => {
    const frames = byteFrames([
      Buffer.from(
        'data: {"a":1}\n\ndata:[DONE]\r\n\r\nevent: x\ndata: y\n\nevent:\r\ndata:z\r\n\r\n' +
          ': ping\n\ndata: y\nevent: x\n\nevent: x\nid: 1\ndata: y\n\n',
      ),
    ]);
    expect(frames).toEqual([
      { event: null, data: '{"a":1}', raw: 'data: {"a":1}\n\n', pointed: true },
      { event: null, data: '[DONE]', raw: 'data:[DONE]\r\n\r\n', pointed: true },
      { event: 'x', data: 'y', raw: 'event: x\ndata: y\n\n', pointed: true },
      { event: '', data: 'z', raw: 'event:\r\ndata:z\r\n\r\n', pointed: true },
      // Other shapes are read as text.
      { event: 'x', data: 'y', raw: 'data: y\nevent: x\n\n' },
      { event: 'x', data: 'y', raw: 'event: x\nid: 1\ndata: y\n\n' },
    ]);
  });

  it('finds the frames SseFrameParser finds, in any chunking of any bytes', () => {
    const LINES = [
      'data: {"a":1}',
      'data:{"t":"mole 🐾 é"}',
      'data: ',
      'data:',
      'data:  two spaces',
      'data: [DONE]',
      'data: a\rb',
      'event: delta',
      'event:',
      'event: ',
      'event:content_block_delta',
      ': comment',
      'id: 7',
      'data',
      'dat',
      '',
    ];
    const BROKEN = [
      Buffer.from([0xff]),
      Buffer.from([0xc3]),
      Buffer.from([0xf0, 0x9f]),
      Buffer.from([0xe2, 0x82]),
    ];
    for (let seed = 1; seed <= 400; seed++) {
      const r = rng(seed);
      const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
      const parts: Buffer[] = [];
      for (let f = 0, n = 1 + Math.floor(r() * 10); f < n; f++) {
        const eol = pick(['\n', '\r\n']);
        for (let l = 0, lines = 1 + Math.floor(r() * (r() < 0.6 ? 1 : 3)); l < lines; l++) {
          parts.push(Buffer.from(pick(LINES)));
          if (r() < 0.1) parts.push(pick(BROKEN));
          parts.push(Buffer.from(eol));
        }
        if (r() < 0.9 || f < n - 1) parts.push(Buffer.from(pick(['\n', '\r\n'])));
      }
      const bytes = Buffer.concat(parts);
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length; ) {
        const size = r() < 0.2 ? bytes.length : Math.floor(r() * 12); // whole, tiny, or empty chunks
        chunks.push(bytes.subarray(at, at + size));
        at += size;
      }
      const got = byteFrames(chunks).map(({ pointed: _, ...frame }) => frame);
      expect(got, `seed ${seed}`).toEqual(textFrames(chunks));
    }
  });
});
