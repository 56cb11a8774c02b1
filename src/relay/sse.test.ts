import { describe, expect, it } from 'vitest';
import { SseFrameParser, SseParser } from './sse.js';

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
