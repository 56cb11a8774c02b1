// Reading an upstream's answer body: bounded, and never passing on the credential we sent.
import { UpstreamFailure } from './providers/failure.js';

/** Flow control over where a body's bytes come from (an undici request's controller). */
export interface BodySource {
  pause(): void;
  resume(): void;
  abort(reason: Error): void;
}

/** What a body's one reader is told. */
interface BodyReader {
  data(chunk: Buffer): void;
  end(): void;
  error(err: Error): void;
}

/** Bytes a body holds for a reader that is not taking them (yet) before it pauses its source. */
const HIGH_WATER = 64 * 1024;

/** The most of an upstream answer read whole: a plain answer (answer.ts), a piece of a split batch. */
export const MAX_UPSTREAM_BODY = 64 * 1024 * 1024;

/**
 * An upstream answer's body, fed by the transport (`push`, `end`, `fail`) and read once, by
 * `readAll` or `consume`. It replaces undici's BodyReadable on the relay's path: a Readable
 * costs a stream, its buffering and its events per answer, and `for await` a promise per chunk.
 * Chunks that arrive before the reader (an answer's first bytes come with its headers) or while
 * it is busy are queued; past HIGH_WATER the source is paused, as it is while the reader waits.
 */
export class UpstreamBody {
  private queue: Buffer[] = [];
  private queued = 0;
  private ended = false;
  private failure: Error | null = null;
  private reader: BodyReader | null = null;
  /** The reader is busy with a chunk (a promise from consume's callback). */
  private waiting = false;
  private sourcePaused = false;
  /** Set once the reader was told the end or a failure: nothing more reaches it. */
  private settled = false;

  constructor(private readonly source: BodySource | null = null) {}

  /** A body that is already complete (in-process answers). */
  static of(...chunks: Buffer[]): UpstreamBody {
    const body = new UpstreamBody();
    for (const c of chunks) body.push(c);
    body.end();
    return body;
  }

  push(chunk: Buffer): void {
    if (this.ended || this.failure) return;
    if (this.reader && !this.waiting && this.queue.length === 0) {
      this.reader.data(chunk);
      return;
    }
    this.queue.push(chunk);
    this.queued += chunk.length;
    if (this.queued >= HIGH_WATER) this.pauseSource();
  }

  end(): void {
    if (this.ended || this.failure) return;
    this.ended = true;
    this.flush();
  }

  fail(err: Error): void {
    if (this.ended || this.failure) return;
    this.failure = err;
    this.queue = [];
    this.queued = 0;
    this.flush();
  }

  /** Stops the upstream (the reader gave up): a reader still waiting fails with `err`. */
  destroy(err: Error = new Error('Premature close')): void {
    if (this.ended || this.failure) return;
    this.fail(err);
    this.source?.abort(err);
  }

  /**
   * Calls `onChunk` with each chunk in order; when it returns a promise, the next chunk waits
   * for it (and the upstream is paused meanwhile: backpressure). Resolves at the body's end;
   * rejects with the body's failure, or with what `onChunk` threw (the upstream is then stopped).
   */
  consume(onChunk: (chunk: Buffer) => void | Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      const failed = (err: unknown) => {
        this.waiting = false;
        this.destroy(err instanceof Error ? err : new Error(String(err)));
        reject(err);
      };
      const resumed = () => {
        this.waiting = false;
        this.flush();
      };
      this.read({
        data: (chunk) => {
          let next: void | Promise<void>;
          try {
            next = onChunk(chunk);
          } catch (err) {
            failed(err);
            return;
          }
          if (next === undefined) return;
          this.waiting = true;
          this.pauseSource();
          next.then(resumed, failed);
        },
        end: resolve,
        error: reject,
      });
    });
  }

  private read(reader: BodyReader): void {
    if (this.reader) throw new Error('an upstream body is read once');
    this.reader = reader;
    this.flush();
  }

  /**
   * Hands the reader what is queued, then the end or failure; resumes the source when drained.
   * A reader busy with a chunk hears of a failure only when done with it, as with `for await`.
   */
  private flush(): void {
    const reader = this.reader;
    if (!reader) return;
    while (this.queue.length > 0 && !this.waiting && !this.failure) {
      const chunk = this.queue.shift()!;
      this.queued -= chunk.length;
      reader.data(chunk);
    }
    if (this.settled || this.waiting) return;
    if (this.failure) {
      this.settled = true;
      reader.error(this.failure);
    } else if (this.queue.length > 0) return;
    else if (this.ended) {
      this.settled = true;
      reader.end();
    } else if (this.sourcePaused) {
      this.sourcePaused = false;
      this.source?.resume();
    }
  }

  private pauseSource(): void {
    if (this.sourcePaused) return;
    this.sourcePaused = true;
    this.source?.pause();
  }
}

/**
 * The whole body, at most `max` bytes. An answer is usually one chunk: it is returned as is.
 */
export function readAll(body: UpstreamBody, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  return body
    .consume((c) => {
      size += c.length;
      if (size > max) throw new UpstreamFailure('upstream answer too large', false);
      chunks.push(c);
    })
    .then(() => (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
}

/**
 * The forms a credential may be quoted in: as sent, inside a JSON string (escaped), and in a
 * URL (percent-encoded). A credential shorter than 8 characters is not looked for: it would
 * match ordinary words.
 */
function quotedForms(credential: string): string[] {
  if (credential.length < 8) return [];
  const forms = new Set([
    credential,
    JSON.stringify(credential).slice(1, -1),
    encodeURIComponent(credential),
  ]);
  return [...forms];
}

/** An upstream error we pass on may quote the credential we sent it; never let that through. */
export function scrubCredential(body: Buffer, credential: string): Buffer {
  if (!quotedForms(credential).some((f) => body.indexOf(f) >= 0)) return body;
  return Buffer.from(scrubText(body.toString('utf8'), credential));
}

/** The same for text we keep (an attempt's error on the log row, a warn line). */
export function scrubText(text: string, credential: string): string {
  for (const form of quotedForms(credential)) text = text.split(form).join('[redacted]');
  return text;
}

/** `text` ending in one full stop: an upstream's own message often has one already. */
export const sentence = (text: string): string => (/[.!?]$/.test(text) ? text : `${text}.`);

/** The error code an upstream's error body names (any protocol's shape), for the log row. */
export function upstreamErrorCode(body: Buffer): string {
  try {
    const e = (
      JSON.parse(body.toString('utf8')) as { error?: { code?: unknown; type?: unknown; status?: unknown } }
    ).error;
    for (const v of [e?.code, e?.type, e?.status])
      if (typeof v === 'string' && v.length > 0 && v.length < 64) return v;
    return 'upstream_error';
  } catch {
    return 'upstream_error';
  }
}
