// Server-sent events: the data payloads of each event, from bytes that arrive in any chunking.
import { StringDecoder } from 'node:string_decoder';

/** Splits an SSE byte stream into the data payloads of its events, chunk by chunk. */
export class SseParser {
  private readonly decoder = new StringDecoder('utf8');
  private buf = '';

  feed(chunk: Buffer): string[] {
    this.buf += this.decoder.write(chunk);
    const out: string[] = [];
    let idx: number;
    while ((idx = eventEnd(this.buf)) >= 0) {
      const data = dataOf(this.buf.slice(0, idx));
      this.buf = this.buf.slice(idx + (this.buf.startsWith('\r\n\r\n', idx) ? 4 : 2));
      if (data !== null) out.push(data);
    }
    return out;
  }

  /** What is left when the stream ends without a final blank line. */
  end(): string[] {
    const tail = dataOf(this.buf + this.decoder.end());
    this.buf = '';
    return tail !== null && tail.trim() ? [tail] : [];
  }
}

function eventEnd(buf: string): number {
  const a = buf.indexOf('\n\n');
  const b = buf.indexOf('\r\n\r\n');
  if (a < 0) return b;
  if (b < 0) return a;
  return Math.min(a, b);
}

function dataOf(block: string): string | null {
  let data: string | null = null;
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith('data:')) {
      const v = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
      data = data === null ? v : data + '\n' + v;
    }
  }
  return data;
}
