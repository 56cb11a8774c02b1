// The shape of a stream's text deltas. Nearly every chunk of an answer is the one before it
// with other text: the same bytes before the text's string literal and after it. A chunk
// that has exactly those bytes around a string literal is that chunk with this text, so its
// text is read by parsing the literal alone, not the whole chunk (a translated 16-token
// stream spent ~30 µs in JSON.parse of its chunks).
//
// A shape is learnt from a chunk that was parsed whole and held nothing but its text, and is
// proven before use: the chunk's bytes with a probe in place of the literal must parse to the
// probe at the text's place. Bytes that match the shape then parse like the probe's up to that
// literal, which is a JSON string, and like them after it.
//
// A shape may end in a volatile field: OpenAI pads every delta chunk with a random
// `"obfuscation":"…"` member, last in the object, unless the request turns it off. Its value
// is then left out of the shape when it is plain printable ASCII (no quote, backslash or
// control character, so any such value is one JSON string): chunks that differ only there
// match, and the decoders never read it.

/** What a probe literal holds: no text an upstream sends. */
const PROBE = '\u0001delta-shape-probe\u0002';

/** Learnt shapes a stream may try before it gives up (a field that changes in every chunk). */
const MAX_LEARNT = 3;

/** Whether char or byte `c` may stand in a volatile field's value as it is: printable ASCII, no `"` or `\`. */
export const plainValueChar = (c: number) => c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c;

export class DeltaShape {
  private prefix = '';
  private suffix = '';
  /** `,"<volatile key>":"` when the learnt shape ends in that field, else ''. */
  private tail = '';
  private learnt = 0;
  /** `,"<key>":"`: the opening of the volatile field that may end a chunk. */
  private readonly volatileOpening: string;

  /** `volatileKey`: a string member, last in the chunk, whose value changes from chunk to chunk. */
  constructor(volatileKey?: string) {
    this.volatileOpening = volatileKey ? `,"${volatileKey}":"` : '';
  }

  /**
   * Where the bytes before a volatile field end: `data.length` without one, -1 when the shape
   * has one and `data` does not end in it with a plain value.
   */
  private fixedEnd(data: string): number {
    const t = this.tail;
    if (t === '') return data.length;
    let i = data.length - 1;
    if (data.charCodeAt(i) !== 0x7d || data.charCodeAt(--i) !== 0x22) return -1;
    while (--i >= 0 && plainValueChar(data.charCodeAt(i)));
    // data[i] is the value's opening quote, the last character of the field's opening.
    const start = i + 1 - t.length;
    return start >= 0 && data.slice(start, i + 1) === t ? start : -1;
  }

  /** The text of `data` when it has the shape (and its literal is a JSON string), else undefined. */
  textOf(data: string): string | undefined {
    const p = this.prefix.length;
    const s = this.suffix.length;
    if (p === 0) return undefined;
    const end = this.fixedEnd(data);
    // Slices compared with ===, not startsWith/endsWith: V8 compares those char by char when the
    // prefix is not a constant (~540 against ~45 ns for 200 chars).
    if (end < p + s + 2 || data.slice(0, p) !== this.prefix || data.slice(end - s, end) !== this.suffix)
      return undefined;
    const literal = data.slice(p, end - s);
    if (literal.charCodeAt(0) !== 0x22) return undefined;
    try {
      const text: unknown = JSON.parse(literal);
      return typeof text === 'string' ? text : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Learns the shape of `data`, a chunk just parsed whole whose only content is its text: the
   * string value after its last `"key":`, when `read` finds a probe put there where it finds
   * the text. Once MAX_LEARNT shapes were learnt, none is (the chunks keep changing elsewhere).
   */
  learn(data: string, key: string, read: (parsed: unknown) => unknown): void {
    if (this.learnt >= MAX_LEARNT) return;
    this.learnt++;
    this.prefix = '';
    this.tail = '';
    const name = `"${key}":`;
    const at = data.lastIndexOf(name);
    const start = at + name.length;
    if (at < 0 || data.charCodeAt(start) !== 0x22) return;
    let end = start + 1;
    while (end < data.length) {
      const c = data.charCodeAt(end);
      if (c === 0x22) break;
      end += c === 0x5c ? 2 : 1;
    }
    if (end >= data.length) return;
    const prefix = data.slice(0, start);
    const suffix = data.slice(end + 1);
    try {
      if (read(JSON.parse(prefix + JSON.stringify(PROBE) + suffix)) !== PROBE) return;
    } catch {
      return;
    }
    this.prefix = prefix;
    this.suffix = suffix;
    // The volatile field, when the chunk ends in it with a plain value, is left out of the shape.
    const opening = this.volatileOpening;
    if (opening === '') return;
    this.tail = opening;
    const fixed = this.fixedEnd(data);
    if (fixed >= end + 1) this.suffix = data.slice(end + 1, fixed);
    else this.tail = '';
  }
}
