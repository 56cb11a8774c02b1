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
    const frame = lastFrame(this.buf + this.decoder.end());
    this.buf = '';
    return frame ? [frame] : [];
  }
}

const NO_BYTES = Buffer.alloc(0);

/**
 * The frames of an SSE byte stream as SseFrameParser finds them, without decoding the bytes
 * (pass-through): a cursor (`next`) over them, no object per frame. A frame that is one
 * `data:` line (OpenAI's kind), or an `event:` line and a `data:` line (Anthropic's), tells
 * where its data and event name are; any other is read as text (`text`).
 */
export class SseByteFrames {
  /** The current frame, once `next` found one: bytes[start, end), its blank line included. */
  bytes: Buffer = NO_BYTES;
  start = 0;
  end = 0;
  /**
   * The current frame's data, when the frame is one `data:` line, or one `event:` line then one
   * `data:` line: bytes[dataStart, dataEnd); else -1.
   */
  dataStart = -1;
  dataEnd = -1;
  /** The event name, when the frame is an `event:` line then a `data:` line: bytes[eventStart, eventEnd); else -1. */
  eventStart = -1;
  eventEnd = -1;

  push(chunk: Buffer): void {
    // The bytes after the last frame found are an unfinished frame: it continues in `chunk`.
    this.bytes = this.end < this.bytes.length ? Buffer.concat([this.bytes.subarray(this.end), chunk]) : chunk;
    this.start = 0;
    this.end = 0;
  }

  /** Moves to the next complete frame; false when the bytes pushed hold no further one. */
  next(): boolean {
    const b = this.bytes;
    const start = this.end;
    /** The line ends before the frame's last one: none (-1), one (its index), or more (-2). */
    let firstNl = -1;
    for (let nl = b.indexOf(0x0a, start); nl >= 0; nl = b.indexOf(0x0a, nl + 1)) {
      // A frame ends at a blank line: the line after this line end is empty (LF or CRLF).
      const c = b[nl + 1];
      const end = c === 0x0a ? nl + 2 : c === 0x0d && b[nl + 2] === 0x0a ? nl + 3 : -1;
      if (end < 0) {
        firstNl = firstNl === -1 ? nl : -2;
        continue;
      }
      this.start = start;
      this.end = end;
      this.eventStart = this.eventEnd = this.dataStart = this.dataEnd = -1;
      if (firstNl === -1) this.dataAt(start, nl);
      else if (firstNl >= 0 && startsEvent(b, start)) {
        this.dataAt(firstNl + 1, nl);
        if (this.dataStart >= 0) {
          this.eventStart = b[start + 6] === 0x20 ? start + 7 : start + 6;
          this.eventEnd = Math.max(this.eventStart, b[firstNl - 1] === 0x0d ? firstNl - 1 : firstNl);
        }
      }
      return true;
    }
    return false;
  }

  /** The data of the line b[at, nl), when it is a `data:` line. */
  private dataAt(at: number, nl: number): void {
    const b = this.bytes;
    if (nl - at < 5 || !startsData(b, at)) return;
    this.dataStart = b[at + 5] === 0x20 ? at + 6 : at + 5;
    // A CR ending the line is not data (dataEnd stays >= dataStart: the CR is at dataStart or after).
    this.dataEnd = b[nl - 1] === 0x0d ? nl - 1 : nl;
  }

  /** The current frame as text, as SseFrameParser reads it (null: it has no data, so it is dropped). */
  text(): SseFrame | null {
    return frameOf(this.bytes.toString('utf8', this.start, this.end), 0, this.end - this.start);
  }

  /** The stream ended: the frame left without its blank line, as SseFrameParser.end reads it. */
  last(): SseFrame | null {
    const rest = this.bytes.toString('utf8', this.end);
    this.bytes = NO_BYTES;
    this.start = 0;
    this.end = 0;
    return lastFrame(rest);
  }
}

/** Whether b holds `data:` at `at`. */
const startsData = (b: Buffer, at: number) =>
  b[at] === 0x64 && b[at + 1] === 0x61 && b[at + 2] === 0x74 && b[at + 3] === 0x61 && b[at + 4] === 0x3a;

/** Whether b holds `event:` at `at`. */
const startsEvent = (b: Buffer, at: number) =>
  b[at] === 0x65 &&
  b[at + 1] === 0x76 &&
  b[at + 2] === 0x65 &&
  b[at + 3] === 0x6e &&
  b[at + 4] === 0x74 &&
  b[at + 5] === 0x3a;

/** The text left when a stream ends, as a last frame given its missing blank line (null: none). */
function lastFrame(rest: string): SseFrame | null {
  if (!rest.trim()) return null;
  const raw = rest.endsWith('\n') ? `${rest}\n` : `${rest}\n\n`;
  const frame = frameOf(raw, 0, raw.length);
  return frame?.data.trim() ? frame : null;
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
