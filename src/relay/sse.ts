// Server-sent events: the frames of an SSE byte stream (event name, data, raw text), from
// bytes that arrive in any chunking.
import { StringDecoder } from 'node:string_decoder';
import type { SseFrame } from './canonical.js';

/** Splits an SSE byte stream into its frames, chunk by chunk. Frames without data are dropped. */
export class SseFrameParser {
  private readonly decoder = new StringDecoder('utf8');
  private buf = '';

  feed(chunk: Buffer): SseFrame[] {
    this.buf += this.decoder.write(chunk);
    const out: SseFrame[] = [];
    for (;;) {
      const idx = eventEnd(this.buf);
      if (idx < 0) break;
      const end = idx + (this.buf.startsWith('\r\n\r\n', idx) ? 4 : 2);
      const frame = frameOf(this.buf.slice(0, end));
      this.buf = this.buf.slice(end);
      if (frame) out.push(frame);
    }
    return out;
  }

  /** What is left when the stream ends without a final blank line. */
  end(): SseFrame[] {
    const rest = this.buf + this.decoder.end();
    this.buf = '';
    const frame = rest.trim() ? frameOf(rest.endsWith('\n') ? `${rest}\n` : `${rest}\n\n`) : null;
    return frame && frame.data.trim() ? [frame] : [];
  }
}

function eventEnd(buf: string): number {
  const a = buf.indexOf('\n\n');
  const b = buf.indexOf('\r\n\r\n');
  if (a < 0) return b;
  if (b < 0) return a;
  return Math.min(a, b);
}

function frameOf(raw: string): SseFrame | null {
  let data: string | null = null;
  let event: string | null = null;
  for (const line of raw.split(/\r?\n/)) {
    if (line.startsWith('data:')) {
      const v = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
      data = data === null ? v : `${data}\n${v}`;
    } else if (line.startsWith('event:')) {
      event = line.charCodeAt(6) === 32 ? line.slice(7) : line.slice(6);
    }
  }
  return data === null ? null : { event, data, raw };
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
