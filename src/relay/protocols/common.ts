// What several protocol codecs share beyond JSON (json.ts): the state a stream decoder keeps,
// the frames a pass-through check keeps for their text, and the client headers a pass-through
// forwards.
import type { IncomingHttpHeaders } from 'node:http';
import { type CanonicalUsage, generatedText, type StreamDecoder, type StreamEvent } from '../canonical.js';

/** The client's headers that `forward` names, as they go upstream (a repeated one joined by ", "). */
export function headersNamed(
  headers: IncomingHttpHeaders,
  forward: (name: string) => boolean,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(headers)) {
    if (v === undefined || !forward(name)) continue;
    out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** The state of one stream decoder: what its `done` and `usage` answer (see `decoder`). */
export class DecodeState {
  /** The protocol's last frame came. */
  done = false;
  /** The usage reported so far (null: none yet). */
  usage: CanonicalUsage | null = null;

  /** A usage the upstream reported: kept, and passed on as an event (none: nothing to do). */
  report(events: StreamEvent[], usage: CanonicalUsage | null): void {
    if (!usage) return;
    this.usage = usage;
    events.push({ type: 'usage', usage });
  }
}

/** A stream decoder whose `done` and `usage` are the state's, which `feed` updates. */
export function decoder(state: DecodeState, feed: StreamDecoder['feed']): StreamDecoder {
  return {
    get done() {
      return state.done;
    },
    get usage() {
      return state.usage;
    },
    feed,
  };
}

/**
 * Pass-through frames kept for a lazy `produced` are decoded once their data passes this size:
 * a short answer (~120 tokens) is never decoded, and a long one holds at most this much of
 * frames beside its text (~200 bytes a token against ~4). At 256 KiB, 100 concurrent
 * 1,000-token streams held ~220 KiB each after a full GC, 8 s in; at 32 KiB ~100 (client and
 * sockets included). The price: a stream past the bound decodes its frames (~0.8 µs each,
 * against a ~13 µs write(2) for each frame that arrives alone).
 */
const KEPT_BYTES = 32 * 1024;

/**
 * The frames a pass-through check let by, in order, kept to be read for their generated text
 * (what a decoder's events give, `generatedText`) only when it is asked for (a local count,
 * rarely needed) or once they pass KEPT_BYTES: by a decoder of their own, fed every frame that
 * carries text in the order they came.
 */
export class KeptText {
  /** Each frame's event name, and its data as text or as bytes[at[2k], at[2k + 1]). */
  private events: (string | null)[] = [];
  private data: (Buffer | string)[] = [];
  private at: number[] = [];
  private bytes = 0;
  private decoded = '';
  private decoder: StreamDecoder | null = null;

  constructor(private readonly newDecoder: () => StreamDecoder) {}

  keep(event: string | null, data: Buffer | string, start: number, end: number): void {
    this.events.push(event);
    this.data.push(data);
    this.at.push(start, end);
    this.bytes += end - start;
    if (this.bytes > KEPT_BYTES) this.decode();
  }

  get text(): string {
    if (this.data.length > 0) this.decode();
    return this.decoded;
  }

  private decode(): void {
    this.decoder ??= this.newDecoder();
    // One flat string per decode: `text +=` a piece per frame left a rope of a node per frame.
    const pieces: string[] = [];
    for (let k = 0; k < this.data.length; k++) {
      const d = this.data[k]!;
      const data = typeof d === 'string' ? d : d.toString('utf8', this.at[2 * k], this.at[2 * k + 1]);
      let events: StreamEvent[] = [];
      try {
        events = this.decoder.feed({ event: this.events[k]!, data, raw: '' }).events;
      } catch {
        // Not reached (every kept frame passed the check); a count must never fail a settlement.
      }
      for (const e of events) pieces.push(generatedText(e));
    }
    this.decoded += pieces.join('');
    this.events = [];
    this.data = [];
    this.at = [];
    this.bytes = 0;
  }
}
