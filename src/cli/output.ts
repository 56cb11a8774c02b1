// How the CLI prints: aligned tables for people, JSON (--json) for programs. Results go to
// stdout; reasons for failure go to stderr (index.ts).
import { InvalidArgumentError } from 'commander';

export interface Column<T> {
  header: string;
  get: (row: T) => string | number | null | undefined;
  /** Right-align (numbers, money). */
  right?: boolean;
}

export interface Out {
  json: boolean;
  /** Writes one result: `value` as JSON with --json, else `human()`'s text. */
  result(value: unknown, human: () => string): void;
}

export function makeOut(json: boolean, write: (s: string) => void = (s) => process.stdout.write(s)): Out {
  return {
    json,
    result(value, human) {
      const text = json ? JSON.stringify(value, null, 2) : human();
      write(text.endsWith('\n') ? text : text + '\n');
    },
  };
}

const cell = (v: string | number | null | undefined) =>
  v === null || v === undefined || v === '' ? '-' : String(v);

/** An aligned table with a header row; "(none)" style text when there are no rows. */
export function table<T>(rows: readonly T[], columns: Column<T>[], empty = '(none)'): string {
  if (rows.length === 0) return empty;
  const cells = rows.map((r) => columns.map((c) => cell(c.get(r)).replace(/\s+/g, ' ')));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (columns[i]!.right ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n');
}

/** Field: value lines, aligned. */
export function details(pairs: Array<[string, string | number | null | undefined]>): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${(k + ':').padEnd(w + 1)}  ${cell(v)}`).join('\n');
}

/** USD for people: at least 2 decimals, up to 9 (nano-USD), never exponent notation. */
export function usd(v: number | null | undefined): string {
  if (v === null || v === undefined) return '-';
  const fixed = Math.abs(v).toFixed(9).replace(/0+$/, '');
  const [i, f = ''] = fixed.split('.');
  return `${v < 0 ? '-' : ''}$${i}.${f.padEnd(2, '0')}`;
}

/** ISO time as "YYYY-MM-DD HH:MMZ" (UTC, a table cell). */
export const when = (iso: string | null | undefined) =>
  iso ? `${new Date(iso).toISOString().slice(0, 16).replace('T', ' ')}Z` : null;

// Argument parsers: a bad value is a usage error (exit 2), reported by commander.
export function parseId(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('not an id');
  return n;
}

export function parseIntArg(v: string): number {
  const n = Number(v);
  if (!/^-?\d+$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('not an integer');
  return n;
}

export function parseUsd(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('not an amount in USD');
  return n;
}

export const parseList = (v: string): string[] =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** An ISO 8601 time or date, or a time ago: "30m", "12h", "7d". */
export function parseTime(v: string, now = Date.now()): string {
  const ago = /^(\d+)([mhd])$/.exec(v.trim());
  if (ago) {
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000 }[ago[2] as 'm' | 'h' | 'd'];
    return new Date(now - Number(ago[1]) * unit).toISOString();
  }
  if (Number.isNaN(Date.parse(v)))
    throw new InvalidArgumentError('not a time (ISO 8601, or 30m / 12h / 7d ago)');
  return v;
}

/** An expiry: ISO 8601, or from now like 30m / 12h / 30d. */
export function futureTime(v: string): string {
  const rel = /^(\d+)([mhd])$/.exec(v.trim());
  if (!rel) return parseTime(v);
  const unit = { m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 'm' | 'h' | 'd'];
  return new Date(Date.now() + Number(rel[1]) * unit).toISOString();
}
