// Small helpers every codec uses to read untrusted JSON bodies.
import { AppError } from '../../http/errors.js';
import type { Settings } from '../canonical.js';

export type Json = Record<string, unknown>;

/** A plain JSON object (not null, not an array). */
export const isObject = (v: unknown): v is Json => !!v && typeof v === 'object' && !Array.isArray(v);

/** A client mistake in the request body: 400 invalid_request naming the field. */
export const bad = (message: string, param: string | null = null) =>
  new AppError('invalid_request', message, { param });

/** The largest count a request may name (output caps, `n`): far above any model's limit. */
export const MAX_COUNT = 10_000_000;

/** What is wrong with an integer field: not an integer, below its least, above MAX_COUNT. */
export type IntProblem = 'integer' | 'min' | 'max';

/** The plain wording of an IntProblem (OpenAI's and Gemini's codecs use it). */
export const intProblem = (p: IntProblem, min: number): string =>
  p === 'integer'
    ? 'must be an integer'
    : p === 'min'
      ? `must be at least ${min}`
      : `must be at most ${MAX_COUNT}`;

/**
 * An optional integer field from `min` to MAX_COUNT, or the 400 `refuse` makes for what is
 * wrong with it (each protocol words it its own way).
 */
export function boundedInt(
  v: unknown,
  min: number,
  refuse: (problem: IntProblem) => AppError,
): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw refuse('integer');
  if (v < min) throw refuse('min');
  if (v > MAX_COUNT) throw refuse('max');
  return v;
}

/** An optional positive integer field (output caps, `n`), refused in OpenAI's wording. */
export const positiveInt = (body: Json, name: string): number | undefined =>
  boundedInt(body[name], 1, (p) => bad(`"${name}" ${intProblem(p, 1)}`, name));

const TEXT_SETTINGS = new Set<keyof Settings>(['user', 'promptCacheKey']);

/**
 * The settings in `pick` that hold a value of their kind (a finite number; for `user` and
 * `promptCacheKey` a string); undefined when none does.
 */
export function settingsOf(pick: { [K in keyof Settings]?: unknown }): Settings | undefined {
  let out: Record<string, number | string> | undefined;
  for (const [k, v] of Object.entries(pick) as Array<[keyof Settings, unknown]>) {
    const fits = TEXT_SETTINGS.has(k)
      ? typeof v === 'string' && v !== ''
      : typeof v === 'number' && Number.isFinite(v);
    if (!fits) continue;
    out ??= {};
    out[k] = v as number | string;
  }
  return out as Settings | undefined;
}

/** A field by its lowerCamelCase name, or its proto snake_case name (Google accepts both). */
export function protoField(o: Json, camel: string): unknown {
  const v = o[camel];
  if (v !== undefined) return v;
  const snake = camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return snake === camel ? undefined : o[snake];
}

/** A model name as clients send it: a non-empty string without control characters. */
export function checkModelName(m: unknown, param = 'model'): string {
  if (typeof m !== 'string' || m.length === 0 || m.length > 256)
    throw bad(`"${param}" is required and must be a string`, param);
  // No model name has control characters; refusing them keeps them out of logs and SQL text.
  if (/[\u0000-\u001f\u007f]/.test(m)) throw bad(`"${param}" must not contain control characters`, param);
  return m;
}

/** `text` parsed as a JSON object; undefined when it is not JSON, or JSON but not an object. */
export function parseObject(text: string): Json | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  return isObject(v) ? v : undefined;
}

/**
 * A tool call's `arguments` (JSON text) as the object a protocol carries them in: a JSON value
 * that is not an object is wrapped as `{ value }`; empty or broken JSON (a model can write it)
 * is an empty input rather than a failed answer.
 */
export function argsObject(args: string): Json {
  try {
    const v: unknown = JSON.parse(args || '{}');
    return isObject(v) ? v : { value: v };
  } catch {
    return {};
  }
}

/** The index of the quote that closes the JSON string whose opening quote is at raw[i]; -1: none. */
function stringEnd(raw: Buffer, i: number): number {
  for (;;) {
    const q = raw.indexOf(0x22, i + 1);
    if (q < 0) return -1;
    let slashes = 0;
    while (raw[q - 1 - slashes] === 0x5c) slashes++;
    if (slashes % 2 === 0) return q;
    i = q;
  }
}

/**
 * Walks the top-level object of `raw` (valid JSON, already parsed), calling `onKey` with each
 * of its keys' byte range (inside the quotes) and the index after the key's closing quote;
 * `onKey` may answer an index to go on from (past the member's value), or undefined.
 */
function eachTopLevelKey(raw: Buffer, onKey: (start: number, end: number) => number | undefined): boolean {
  let depth = 0;
  let expectKey = false;
  let i = 0;
  while (i < raw.length) {
    const c = raw[i]!;
    if (c === 0x22) {
      const end = stringEnd(raw, i);
      if (end < 0) return false;
      if (depth === 1 && expectKey) {
        expectKey = false;
        const next = onKey(i + 1, end);
        if (next !== undefined) {
          i = next;
          continue;
        }
      }
      i = end;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x2c && depth === 1) expectKey = true;
    i++;
  }
  return true;
}

/**
 * How many keys the top-level object of `raw` (valid JSON, already parsed) spells out, duplicates
 * included. Equal to `Object.keys(parsed).length` only when no key repeats: a body with a
 * repeated key must not go upstream as sent, since a parser that keeps the first of them would
 * read another model or cap than the one checked and held here (JSON.parse keeps the last).
 */
export function topLevelKeyCount(raw: Buffer): number {
  let keys = 0;
  return eachTopLevelKey(raw, () => {
    keys++;
    return undefined;
  })
    ? keys
    : -1;
}

const isSpace = (c: number | undefined) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * Where the value of the top-level member `name` of `raw` (valid JSON, already parsed) is an
 * object: [start, end), from its `{` to just past its `}`. Null when no key is spelled `name`
 * byte for byte (an escaped spelling is not found) or its value is not an object.
 */
export function memberObject(raw: Buffer, name: string): [number, number] | null {
  const want = Buffer.from(name);
  let found: [number, number] | null = null;
  eachTopLevelKey(raw, (start, end) => {
    if (found || end - start !== want.length || raw.compare(want, 0, want.length, start, end) !== 0)
      return undefined;
    let i = end + 1;
    while (isSpace(raw[i])) i++;
    i++; // the colon
    while (isSpace(raw[i])) i++;
    if (raw[i] !== 0x7b) return undefined;
    const open = i;
    let depth = 0;
    for (; i < raw.length; i++) {
      const c = raw[i]!;
      if (c === 0x22) {
        i = stringEnd(raw, i);
        if (i < 0) return raw.length;
      } else if (c === 0x7b || c === 0x5b) depth++;
      else if (c === 0x7d || c === 0x5d) {
        depth--;
        if (depth === 0) {
          found = [open, i + 1];
          return i + 1;
        }
      }
    }
    return raw.length;
  });
  return found;
}

/**
 * `raw` when it may go upstream as sent in place of `body`, its parse: when it spells each of
 * `body`'s top-level keys once (see `topLevelKeyCount`). Null otherwise, or without `raw`.
 */
export function asSent(raw: Buffer | undefined, body: object): Buffer | null {
  return raw && topLevelKeyCount(raw) === Object.keys(body).length ? raw : null;
}

/** `raw` (a JSON object's bytes) with `member` (`"name":value`) added as its last member. */
export function appendMember(raw: Buffer, member: string): Buffer | null {
  let end = raw.length - 1;
  while (end >= 0 && (raw[end] === 0x20 || raw[end] === 0x0a || raw[end] === 0x0d || raw[end] === 0x09))
    end--;
  if (end < 0 || raw[end] !== 0x7d) return null;
  let before = end - 1;
  while (
    before >= 0 &&
    (raw[before] === 0x20 || raw[before] === 0x0a || raw[before] === 0x0d || raw[before] === 0x09)
  )
    before--;
  const comma = raw[before] === 0x7b ? '' : ',';
  return Buffer.concat([raw.subarray(0, end), Buffer.from(`${comma}${member}}`)]);
}
