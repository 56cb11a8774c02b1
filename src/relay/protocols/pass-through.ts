// The pass-through stream checks' parts: the frames a check let by undecoded, kept for their
// text (KeptText), and a check for protocols that hide no frame (ScannedPassThrough), which a
// codec gives a judge of frames by their bytes.
import {
  type CanonicalUsage,
  generatedText,
  type PassThroughCheck,
  type SseFrame,
  type StreamDecoder,
  type StreamEvent,
} from '../canonical.js';
import type { FrameShape } from './frame-shape.js';
import { literal } from './json-scan.js';

/**
 * Pass-through frames kept for a lazy `produced` are decoded once their data passes this size:
 * a short answer (~120 tokens) is never decoded, and a long one holds at most this much of
 * frames beside its text (~200 bytes a token against ~4). At 256 KiB, 100 concurrent
 * 1,000-token streams held ~220 KiB each after a full GC, 8 s in; at 32 KiB ~100 (client and
 * sockets included). The price: a stream past the bound decodes its frames (~0.8 µs each,
 * against a ~13 µs write(2) for each frame that arrives alone).
 */
const KEPT_BYTES = 32 * 1024;

/** How many pieces of decoded text KeptText keeps before it joins them into one string. */
const PIECES_JOINED = 256;

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
  /**
   * The text decoded so far, in pieces joined into one every PIECES_JOINED: `text +=` a piece
   * per frame left a rope of a node per frame.
   */
  private decoded: string[] = [];
  private decoder: StreamDecoder | null = null;
  /**
   * The frames once passed KEPT_BYTES: decoded from then on anyway, so a check decodes them as
   * they come (`decodeNow`) rather than scan them first.
   */
  long = false;

  constructor(private readonly newDecoder: () => StreamDecoder) {}

  keep(event: string | null, data: Buffer | string, start: number, end: number): void {
    this.events.push(event);
    this.data.push(data);
    this.at.push(start, end);
    this.bytes += end - start;
    if (this.bytes > KEPT_BYTES) {
      this.decode();
      this.long = true;
    }
  }

  get text(): string {
    if (this.data.length > 0) this.decode();
    return this.decoded.join('');
  }

  /**
   * Decodes `frame` now, after every frame kept: throws as the decoder's `feed` does, answers
   * its `hide`. The decoder (`reader`) has then read every frame kept or decoded, in order.
   */
  decodeNow(frame: SseFrame): boolean {
    const { events, hide } = this.reader.feed(frame);
    for (const e of events) this.add(generatedText(e));
    return hide === true;
  }

  /** The decoder of the kept frames, once it has read them all. */
  get reader(): StreamDecoder {
    if (this.data.length > 0) this.decode();
    this.decoder ??= this.newDecoder();
    return this.decoder;
  }

  private add(piece: string): void {
    if (piece && this.decoded.push(piece) >= PIECES_JOINED) this.decoded = [this.decoded.join('')];
  }

  private decode(): void {
    this.decoder ??= this.newDecoder();
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
    this.add(pieces.join(''));
    this.events = [];
    this.data = [];
    this.at = [];
    this.bytes = 0;
  }
}

/** What a scanned pass-through does with a frame, from its bytes (see ScannedPassThrough). */
export enum FrameVerdict {
  /** Decode it whole, as the decoder's `feed` reads it. */
  Decode,
  /** It carries text only: keep it undecoded for the text. */
  Keep,
  /** It carries nothing the check answers or the text needs (`feed` would not even parse it). */
  Skip,
}

/**
 * A pass-through check for protocols whose decoder never hides a frame (Anthropic, Responses):
 * the frames `judge` tells apart from their bytes are only kept or skipped, every other frame
 * is fed to the stream decoder whole (its `done`, `usage` and throws are the check's) and kept
 * too, so the text is read from the same frames in the same order (KeptText). `judge` must only
 * keep or skip a frame that `feed` would neither throw on nor change `done` or `usage` for.
 * Past KEPT_BYTES the kept frames are decoded anyway (memory), and then scanning them first
 * only adds to it: a long stream's frames from there on are decoded as they come, by the
 * decoder that read the kept ones (`checked` is then that decoder).
 */
export class ScannedPassThrough implements PassThroughCheck {
  private checked: StreamDecoder;
  private readonly kept: KeptText;

  constructor(
    newDecoder: () => StreamDecoder,
    /**
     * The frame's data is bytes[start, end); its event name bytes[eventStart, eventEnd) (-1:
     * none). `shape`: this stream's, for the judge to scan its text frames with.
     */
    private readonly judge: (
      bytes: Buffer,
      eventStart: number,
      eventEnd: number,
      start: number,
      end: number,
      shape: FrameShape | null,
    ) => FrameVerdict,
    /** The event name a kept frame is read with: the one `judge` keeps frames of (null: none needed). */
    private readonly keptEvent: string | null,
    private readonly shape: FrameShape | null = null,
  ) {
    this.checked = newDecoder();
    this.kept = new KeptText(newDecoder);
  }

  get done(): boolean {
    return this.checked.done;
  }

  get usage(): CanonicalUsage | null {
    return this.checked.usage;
  }

  get webSearches(): number {
    return this.checked.webSearches ?? 0;
  }

  get serviceTier(): string | undefined {
    return this.checked.serviceTier;
  }

  get produced(): string {
    return this.kept.text;
  }

  checkBytes(bytes: Buffer, start: number, end: number): boolean {
    return this.checkEventBytes(bytes, -1, -1, start, end);
  }

  checkEventBytes(bytes: Buffer, eventStart: number, eventEnd: number, start: number, end: number): boolean {
    const verdict = this.kept.long
      ? FrameVerdict.Decode
      : this.judge(bytes, eventStart, eventEnd, start, end, this.shape);
    if (verdict === FrameVerdict.Keep) this.kept.keep(this.keptEvent, bytes, start, end);
    if (verdict !== FrameVerdict.Decode) return false;
    const event = eventStart < 0 ? null : bytes.toString('utf8', eventStart, eventEnd);
    return this.check({ event, data: bytes.toString('utf8', start, end), raw: '' });
  }

  check(frame: SseFrame): boolean {
    // Either throws as `feed` does; these protocols hide no frame.
    if (this.kept.long) {
      this.kept.decodeNow(frame);
      this.checked = this.kept.reader;
    } else {
      this.checked.feed(frame);
      this.kept.keep(frame.event, frame.data, 0, frame.data.length);
    }
    return false;
  }
}

/** Whether b[start, end) is `name` (ASCII bytes). */
export const bytesAre = (b: Buffer, start: number, end: number, name: Uint8Array): boolean =>
  end - start === name.length && literal(b, start, end, name) >= 0;

/** Whether b[start, end) starts with `prefix` (ASCII bytes). */
export const bytesStartWith = (b: Buffer, start: number, end: number, prefix: Uint8Array): boolean =>
  literal(b, start, end, prefix) >= 0;
