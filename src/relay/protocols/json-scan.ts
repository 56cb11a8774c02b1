// A JSON validator that builds nothing: one pass over a frame's UTF-8 bytes, for stream frames
// that go through unchanged and need only be known to be well-formed (and whether their
// top-level object carries an error or a usage). JSON.parse would first decode the bytes and
// then build every object of every frame just to drop it; a loop over bytes is several times
// cheaper than one over a string's char codes.

/** scanJson's answer, as bits: the bytes are one JSON value (RFC 8259; JSON.parse's grammar). */
export const JSON_VALID = 1;
/** The value is an object (set only with JSON_VALID). */
export const JSON_OBJECT = 2;
/** Its top-level `error` member is there and not null (the last one: JSON.parse keeps the last). */
export const JSON_ERROR = 4;
/** Its top-level `usage` member is there and not null (the last one). */
export const JSON_USAGE = 8;
/** Its top-level `type` member is the string "error" (the last one): an Anthropic error event. */
export const JSON_TYPE_ERROR = 16;
/** It has more than one top-level `type` member (JSON.parse keeps the last). */
export const JSON_TYPE_TWICE = 32;

const IN_OBJECT = 1;
const IN_ARRAY = 2;
const MEMBER_ERROR = 1;
const MEMBER_USAGE = 2;
const MEMBER_TYPE = 3;
/** A top-level `type` member was seen (a flag of the scan's own, not answered). */
const SEEN_TYPE = 64;

/** The open containers' kinds, by depth: grown (rarely) and reused, so a scan allocates nothing. */
let open = new Uint8Array(64);

/**
 * Checks that b[start, end) is one JSON value with only whitespace around it, without
 * building it: JSON_* bits, 0 when it is not JSON. Bytes from 0x80 up may only stand inside
 * strings, where any of them is accepted (decoding turns a broken sequence into U+FFFD, which
 * JSON.parse takes). Nesting has no depth limit (no recursion). With `usageAt`, where the last
 * top-level `usage` member's value lies goes into it: b[usageAt[0], usageAt[1]) (with
 * JSON_USAGE; the value alone, to be parsed instead of the whole text).
 */
export function scanJson(b: Uint8Array, start: number, end: number, usageAt?: Int32Array): number {
  let i = skipSpace(b, start, end);
  const object = i < end && b[i] === 0x7b;
  let kinds = open;
  let flags = 0;
  let depth = 0;
  let wantKey = false;
  let member = 0;
  /** A top-level usage value is open: it ends where the nesting is back at the top object. */
  let inUsage = false;
  for (;;) {
    if (wantKey) {
      if (i >= end || b[i] !== 0x22) return 0;
      const after = skipString(b, i, end);
      if (after < 0) return 0;
      if (depth === 1) member = memberOf(b, i + 1, after - 1);
      i = after;
      if (i < end && b[i] !== 0x3a) i = skipSpace(b, i, end);
      if (i >= end || b[i] !== 0x3a) return 0;
      i++;
      if (i < end && b[i]! <= 0x20) i = skipSpace(b, i, end);
      wantKey = false;
    }
    // A value starts at i.
    if (i >= end) return 0;
    const c = b[i]!;
    if (member === MEMBER_TYPE) {
      flags = c === 0x22 && stringIs(b, i, end, ERROR) ? flags | JSON_TYPE_ERROR : flags & ~JSON_TYPE_ERROR;
      if (flags & SEEN_TYPE) flags |= JSON_TYPE_TWICE;
      flags |= SEEN_TYPE;
      member = 0;
    } else if (member !== 0) {
      // `null` is the only value that starts with `n` (checked as a literal below).
      const bit = member === MEMBER_ERROR ? JSON_ERROR : JSON_USAGE;
      flags = c === 0x6e ? flags & ~bit : flags | bit;
      if (bit === JSON_USAGE && usageAt) {
        usageAt[0] = i;
        inUsage = true;
      }
      member = 0;
    }
    if (c === 0x7b || c === 0x5b) {
      if (depth === kinds.length) {
        const grown = new Uint8Array(depth * 2);
        grown.set(kinds);
        open = kinds = grown;
      }
      kinds[depth++] = c === 0x7b ? IN_OBJECT : IN_ARRAY;
      i++;
      if (i < end && b[i]! <= 0x20) i = skipSpace(b, i, end);
      // `{}` or `[]` (a closing bracket is its opening one + 2): closed at once.
      if (i < end && b[i] === c + 2) {
        depth--;
        i++;
      } else {
        wantKey = c === 0x7b;
        continue;
      }
    } else if (c === 0x22) i = skipString(b, i, end);
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) i = skipNumber(b, i, end);
    else if (c === 0x74) i = literal(b, i, end, TRUE);
    else if (c === 0x66) i = literal(b, i, end, FALSE);
    else if (c === 0x6e) i = literal(b, i, end, NULL);
    else return 0;
    if (i < 0) return 0;
    // After a value: close what ends here; a comma leads to the next value (or key).
    for (;;) {
      if (inUsage && depth === 1) {
        usageAt![1] = i;
        inUsage = false;
      }
      if (i < end && b[i]! <= 0x20) i = skipSpace(b, i, end);
      if (depth === 0) return i === end ? (flags & ~SEEN_TYPE) | JSON_VALID | (object ? JSON_OBJECT : 0) : 0;
      if (i >= end) return 0;
      const next = b[i];
      const kind = kinds[depth - 1];
      if (next === 0x2c) {
        i++;
        if (i < end && b[i]! <= 0x20) i = skipSpace(b, i, end);
        wantKey = kind === IN_OBJECT;
        break;
      }
      if (next !== (kind === IN_OBJECT ? 0x7d : 0x5d)) return 0;
      depth--;
      i++;
    }
  }
}

function skipSpace(b: Uint8Array, i: number, end: number): number {
  while (i < end) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i++;
  }
  return i;
}

/** What the byte after a backslash stands for (`n`: a line feed, …); 0: no such escape (`u` aside). */
const ESCAPED = new Uint8Array(256);
for (const pair of ['""', '\\\\', '//', 'b\b', 'f\f', 'n\n', 'r\r', 't\t'])
  ESCAPED[pair.charCodeAt(0)] = pair.charCodeAt(1);

/** 1 for the bytes a string holds as they are (not a quote, a backslash or a control char). */
const PLAIN = Uint8Array.from({ length: 256 }, (_, c) => (c >= 0x20 && c !== 0x22 && c !== 0x5c ? 1 : 0));

/** The index after the string that starts (with its quote) at i; -1 when it is not a JSON string. */
export function skipString(b: Uint8Array, i: number, end: number): number {
  for (i++; i < end; ) {
    const c = b[i]!;
    if (PLAIN[c] === 1) {
      i++;
      continue;
    }
    if (c === 0x22) return i + 1;
    if (c !== 0x5c || i + 1 >= end) return -1; // a control char, or a backslash at the end
    const e = b[i + 1]!;
    if (e === 0x75) {
      if (i + 5 >= end || !(isHex(b[i + 2]!) && isHex(b[i + 3]!) && isHex(b[i + 4]!) && isHex(b[i + 5]!)))
        return -1;
      i += 6;
    } else if (ESCAPED[e] !== 0) i += 2;
    else return -1;
  }
  return -1;
}

const isHex = (c: number) => (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);

/** The index after the digits from i on. */
function skipDigits(b: Uint8Array, i: number, end: number): number {
  while (i < end) {
    const c = b[i]!;
    if (c < 0x30 || c > 0x39) return i;
    i++;
  }
  return i;
}

/** The index after the number that starts at i; -1 when it is not a JSON number. */
function skipNumber(b: Uint8Array, i: number, end: number): number {
  if (b[i] === 0x2d) i++;
  if (i >= end) return -1;
  const first = b[i]!;
  if (first === 0x30) i++;
  else if (first >= 0x31 && first <= 0x39) i = skipDigits(b, i + 1, end);
  else return -1;
  if (i < end && b[i] === 0x2e) {
    const digits = skipDigits(b, i + 1, end);
    if (digits === i + 1) return -1;
    i = digits;
  }
  if (i < end && (b[i]! | 0x20) === 0x65) {
    i++;
    if (i < end && (b[i] === 0x2b || b[i] === 0x2d)) i++;
    const digits = skipDigits(b, i, end);
    if (digits === i) return -1;
    i = digits;
  }
  return i;
}

/** A word's ASCII bytes, to compare against with `literal`. */
export const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const TRUE = ascii('true');
const FALSE = ascii('false');
const NULL = ascii('null');
const ERROR = ascii('error');
const USAGE = ascii('usage');
const TYPE = ascii('type');

/** The index after `word` when b holds it at i; -1 otherwise. */
export function literal(b: Uint8Array, i: number, end: number, word: Uint8Array): number {
  if (i + word.length > end) return -1;
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word[k]) return -1;
  return i + word.length;
}

/** Which watched member the key b[start, end) (a valid string's inside) names; 0 for none. */
function memberOf(b: Uint8Array, start: number, end: number): number {
  const length = end - start;
  if (length === 5)
    return literal(b, start, end, ERROR) >= 0
      ? MEMBER_ERROR
      : literal(b, start, end, USAGE) >= 0
        ? MEMBER_USAGE
        : 0;
  if (length === 4) return literal(b, start, end, TYPE) >= 0 ? MEMBER_TYPE : 0;
  // Spelled with escapes (`\u0065rror`): each of the at most 5 letters takes at most 6 bytes.
  if (length < 4 || length > 30 || !hasBackslash(b, start, end)) return 0;
  return escapedKeyIs(b, start, end, ERROR)
    ? MEMBER_ERROR
    : escapedKeyIs(b, start, end, USAGE)
      ? MEMBER_USAGE
      : escapedKeyIs(b, start, end, TYPE)
        ? MEMBER_TYPE
        : 0;
}

function hasBackslash(b: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (b[i] === 0x5c) return true;
  return false;
}

/** Whether the string value that starts (with its quote) at i reads `word` (escapes read). */
function stringIs(b: Uint8Array, i: number, end: number, word: Uint8Array): boolean {
  const after = skipString(b, i, end);
  if (after < 0) return false;
  const length = after - 1 - (i + 1);
  if (length === word.length) return literal(b, i + 1, after - 1, word) >= 0;
  return length > word.length && length <= 6 * word.length && escapedKeyIs(b, i + 1, after - 1, word);
}

/** Whether the key b[start, end), escapes read, spells `word` (ASCII). */
function escapedKeyIs(b: Uint8Array, start: number, end: number, word: Uint8Array): boolean {
  let k = 0;
  for (let i = start; i < end; k++) {
    let c = b[i]!;
    if (c === 0x5c) {
      if (b[i + 1] === 0x75) {
        c = 0;
        for (let h = i + 2; h < i + 6; h++) c = c * 16 + Number.parseInt(String.fromCharCode(b[h]!), 16);
        i += 6;
      } else {
        c = ESCAPED[b[i + 1]!]!;
        i += 2;
      }
    } else i++;
    if (k >= word.length || c !== word[k]) return false;
  }
  return k === word.length;
}
