// Server-sent events: the frames of an SSE byte stream (event name, data, raw text), from
// bytes that arrive in any chunking.
import { StringDecoder } from 'node:string_decoder';
import type { SseFrame } from './canonical.js';

/**
 * Splits an SSE byte stream into its frames, chunk by chunk. Frames without data are dropped.
 * One pass over each chunk's text with a cursor: a stream arrives as many small frames, and
 * re-scanning or re-slicing the rest of the buffer for each of them is quadratic.
 */
export class SseFrameParser {
  private readonly decoder = new StringDecoder('utf8');
  private buf = '';

  feed(chunk: Buffer): SseFrame[] {
    const text = this.buf + this.decoder.write(chunk);
    const out: SseFrame[] = [];
    let start = 0;
    let nl = text.indexOf('\n');
    while (nl >= 0) {
      // A frame ends at a blank line: the line after this line end is empty (LF or CRLF).
      const next = nl + 1;
      const c = text.charCodeAt(next);
      const end = c === 10 ? next + 1 : c === 13 && text.charCodeAt(next + 1) === 10 ? next + 2 : -1;
      if (end < 0) {
        nl = text.indexOf('\n', next);
        continue;
      }
      const frame = frameOf(text, start, end);
      if (frame) out.push(frame);
      start = end;
      nl = text.indexOf('\n', start);
    }
    this.buf = start === 0 ? text : text.slice(start);
    return out;
  }

  /** What is left when the stream ends without a final blank line. */
  end(): SseFrame[] {
    const rest = this.buf + this.decoder.end();
    this.buf = '';
    if (!rest.trim()) return [];
    const raw = rest.endsWith('\n') ? `${rest}\n` : `${rest}\n\n`;
    const frame = frameOf(raw, 0, raw.length);
    return frame?.data.trim() ? [frame] : [];
  }
}

/** The frame in text[start, end): its `data:` lines joined, its `event:` name, its raw text. */
function frameOf(text: string, start: number, end: number): SseFrame | null {
  let data: string | null = null;
  let event: string | null = null;
  for (let at = start; at < end; ) {
    let eol = text.indexOf('\n', at);
    if (eol < 0 || eol > end) eol = end;
    const lineEnd = eol > at && text.charCodeAt(eol - 1) === 13 ? eol - 1 : eol;
    if (text.startsWith('data:', at)) {
      const v = text.slice(text.charCodeAt(at + 5) === 32 ? at + 6 : at + 5, lineEnd);
      data = data === null ? v : `${data}\n${v}`;
    } else if (text.startsWith('event:', at)) {
      event = text.slice(text.charCodeAt(at + 6) === 32 ? at + 7 : at + 6, lineEnd);
    }
    at = eol + 1;
  }
  return data === null ? null : { event, data, raw: text.slice(start, end) };
}

/** One SSE frame as text: `event:` line (when named) and `data:` line, blank line after. */
export function sseFrame(data: string, event?: string): string {
  return event ? `event: ${event}\ndata: ${data}\n\n` : `data: ${data}\n\n`;
}

/** Splits an SSE byte stream into the data payloads of its events (the OpenAI relay's reader). */
export class SseParser {
  private readonly frames = new SseFrameParser();

  feed(chunk: Buffer): string[] {
    return this.frames.feed(chunk).map((f) => f.data);
  }

  end(): string[] {
    return this.frames.end().map((f) => f.data);
  }
}
