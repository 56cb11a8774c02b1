// The bytes of a pass-through stream's text frames. A pass-through check scans every frame
// whole (scanJson) to know it is one JSON object with nothing the check must read, though
// nearly every frame is the one before it with other text. A frame that has exactly a scanned
// frame's bytes before and after that frame's text literal, and one JSON string between them,
// is that frame with another string in a value's place: the same answer from the scan, which
// it is spared (bench/stream-check.ts, a 16-token OpenAI stream: 22 → 15 µs to check).
//
// Why the answer is the same: the bytes before the literal are the same, so a scan reaches it
// in the same state; it stands after `"<key>":`, so it is a member's value, never a key, and a
// string there ends where its closing quote does, as the learnt one did; the bytes after it
// are the same. What a scan reports of a top-level member (an error, a usage, a type) depends
// on its name and on whether its value is null, which another string does not change.
//
// A shape may end in a volatile member, as DeltaShape's may (OpenAI's `obfuscation`, last in
// every chunk with a random value): its value is left out of the shape when it is plain
// printable ASCII (no quote, backslash or control character: any such value is one string).
// It may also hold a counter before the text, a member whose value is a non-negative integer
// that changes in every frame (Responses' `sequence_number`): any such integer is one number
// token in the same value's place.
import { plainValueChar } from './delta-shape.js';
import { JSON_OBJECT, scanJson, skipString } from './json-scan.js';

/**
 * Shapes in a row learnt and replaced without matching one frame, before a stream stops
 * learning (its frames keep changing somewhere the shape cannot leave out).
 */
const MAX_USELESS = 3;

/** The most digits a counter's value may have in a shape: a frame with a longer one is scanned. */
const MAX_COUNTER_DIGITS = 15;

const QUOTE = 0x22;
const CLOSE_BRACE = 0x7d;

/**
 * Whether b holds `bytes` at `at`. A loop for a few bytes: Buffer#compare costs ~100 ns a call
 * whatever the length, a loop ~1.6 ns a byte.
 */
function sameBytes(bytes: Buffer, b: Buffer, at: number): boolean {
  const n = bytes.length;
  if (n > 64) return bytes.compare(b, at, at + n) === 0;
  for (let k = 0; k < n; k++) if (b[at + k] !== bytes[k]) return false;
  return true;
}

/**
 * Copies of b's ranges [r0, r1), [r2, r3), … in one piece of memory of their own: a Buffer.from
 * copy of a few bytes comes from the shared 8 KiB pool, and a stream holding it for its life
 * would hold that whole slab; one allocation for them all costs less than one each.
 */
function ownCopies(b: Buffer, ...ranges: number[]): Buffer[] {
  let size = 0;
  for (let k = 0; k < ranges.length; k += 2) size += ranges[k + 1]! - ranges[k]!;
  const own = Buffer.allocUnsafeSlow(size);
  const copies: Buffer[] = [];
  for (let k = 0, at = 0; k < ranges.length; k += 2) {
    const n = b.copy(own, at, ranges[k]!, ranges[k + 1]!);
    copies.push(own.subarray(at, at + n));
    at += n;
  }
  return copies;
}

const isDigit = (c: number | undefined) => c !== undefined && c >= 0x30 && c <= 0x39;

/** The index after the non-negative JSON integer at b[i] (no leading zero); -1 when none is there. */
function skipCounter(b: Buffer, i: number, end: number): number {
  if (i >= end || !isDigit(b[i])) return -1;
  if (b[i] === 0x30) return i + 1;
  const limit = Math.min(end, i + MAX_COUNTER_DIGITS);
  let k = i + 1;
  while (k < limit && isDigit(b[k])) k++;
  return k < end && isDigit(b[k]) ? -1 : k;
}

export class FrameShape {
  /** The bytes up to the counter's value, with a counter in the shape; else null. */
  private head: Buffer | null = null;
  /** The bytes before the literal (after the counter's value, with one). */
  private prefix: Buffer | null = null;
  private suffix: Buffer = Buffer.alloc(0);
  /** `,"<volatile key>":"` when the learnt shape ends in that member, else null. */
  private tail: Buffer | null = null;
  /** What the scan answered for the learnt frame. */
  private flags = 0;
  /** Frames the learnt shape matched. */
  private hits = 0;
  /** Shapes in a row replaced without a match. */
  private useless = 0;
  /** `"<key>":`, the member whose string value is the frame's text. */
  private readonly key: Buffer;
  private readonly volatileOpening: Buffer | null;
  private readonly counterKey: Buffer | null;

  /**
   * `key`: the member holding the text; `volatileKey`: a string member, last, that changes in
   * every frame; `counterKey`: an integer member before the text that changes in every frame.
   */
  constructor(key: string, volatileKey?: string, counterKey?: string) {
    this.key = Buffer.from(`"${key}":`);
    this.volatileOpening = volatileKey ? Buffer.from(`,"${volatileKey}":"`) : null;
    this.counterKey = counterKey ? Buffer.from(`"${counterKey}":`) : null;
  }

  /**
   * Where b[start, end)'s bytes before a volatile member end: `end` without one in the shape,
   * -1 when the shape has one and the frame does not end in it with a plain value.
   */
  private fixedEnd(b: Buffer, start: number, end: number, tail: Buffer | null): number {
    if (tail === null) return end;
    let i = end - 1;
    if (i - 1 < start || b[i] !== CLOSE_BRACE || b[--i] !== QUOTE) return -1;
    while (--i >= start && plainValueChar(b[i]!));
    // b[i] is the value's opening quote, the last byte of the member's opening.
    const at = i + 1 - tail.length;
    return at >= start && sameBytes(tail, b, at) ? at : -1;
  }

  /**
   * scanJson's answer for b[start, end): the learnt frame's when the frame has its shape, else
   * a scan's, and then, when `learn` and the frame is an object, its shape is learnt.
   */
  scan(b: Buffer, start: number, end: number, learn = true): number {
    if (this.matches(b, start, end)) {
      this.hits++;
      return this.flags;
    }
    const flags = scanJson(b, start, end);
    if (learn && (flags & JSON_OBJECT) !== 0) this.learn(b, start, end, flags);
    return flags;
  }

  /** Whether b[start, end) is the learnt frame with one JSON string in its literal's place. */
  matches(b: Buffer, start: number, end: number): boolean {
    const prefix = this.prefix;
    if (prefix === null) return false;
    const fixed = this.fixedEnd(b, start, end, this.tail);
    if (fixed < 0) return false;
    let at = start;
    const head = this.head;
    if (head !== null) {
      if (fixed - at < head.length || !sameBytes(head, b, at)) return false;
      at = skipCounter(b, at + head.length, fixed);
      if (at < 0) return false;
    }
    const p = prefix.length;
    if (fixed - at < p + 2 + this.suffix.length) return false;
    if (b[at + p] !== QUOTE || !sameBytes(prefix, b, at)) return false;
    const after = skipString(b, at + p, fixed);
    return after >= 0 && fixed - after === this.suffix.length && sameBytes(this.suffix, b, after);
  }

  /**
   * Learns the shape of b[start, end), a frame that a scan answered `flags` for, a JSON
   * object: the string value after its last `"<key>":`, when there is one. Once MAX_USELESS
   * shapes in a row were replaced without a match, none is. The bytes are copied (ownCopies):
   * the frame's chunk is not held.
   */
  private learn(b: Buffer, start: number, end: number, flags: number): void {
    if (this.prefix !== null && this.useless + (this.hits > 0 ? 0 : 1) >= MAX_USELESS) return;
    // (A negative offset would search from the buffer's end.)
    if (end - start < this.key.length + 2) return;
    const at = b.lastIndexOf(this.key, end - this.key.length - 1);
    const literal = at + this.key.length;
    if (at < start || literal >= end || b[literal] !== QUOTE) return;
    const after = skipString(b, literal, end);
    if (after < 0) return;
    if (this.prefix !== null) this.useless = this.hits > 0 ? 0 : this.useless + 1;
    // The counter, when its value is an integer right after its key, before the literal.
    let headEnd = start;
    let prefixStart = start;
    if (this.counterKey !== null) {
      const k = b.indexOf(this.counterKey, start);
      const value = k + this.counterKey.length;
      const valueEnd = k < 0 ? -1 : skipCounter(b, value, literal);
      if (k >= start && valueEnd >= 0) {
        headEnd = value;
        prefixStart = valueEnd;
      }
    }
    // The volatile member, when the frame ends in it with a plain value, is left out.
    let tail = this.volatileOpening;
    let fixed = this.fixedEnd(b, start, end, tail);
    if (fixed < after) {
      tail = null;
      fixed = end;
    }
    const [head, prefix, suffix] = ownCopies(b, start, headEnd, prefixStart, literal, after, fixed);
    this.head = headEnd > start ? head! : null;
    this.prefix = prefix!;
    this.suffix = suffix!;
    this.tail = tail;
    this.flags = flags;
    this.hits = 0;
  }
}
