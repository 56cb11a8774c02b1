// zod at the edges: parse or answer 422 with the first problem, phrased for a person.
import { z } from 'zod';
import { AppError } from './errors.js';

/** Path to the first string (value or object key) holding a NUL character, or null. */
function findNul(v: unknown, path: string[], depth = 0): string[] | null {
  if (typeof v === 'string') return v.includes('\u0000') ? path : null;
  if (depth > 32 || v === null || typeof v !== 'object') return null;
  for (const [k, child] of Object.entries(v)) {
    const p = [...path, k.replace(/\u0000/g, '\\0').slice(0, 64)];
    if (k.includes('\u0000')) return p;
    const found = findNul(child, p, depth + 1);
    if (found) return found;
  }
  return null;
}

export function parseInput<T extends z.ZodType>(
  schema: T,
  value: unknown,
  where: 'body' | 'query' | 'params',
): z.infer<T> {
  if (where === 'body' && (value === undefined || value === null)) value = {};
  // PostgreSQL text cannot hold NUL ("invalid byte sequence"), so such input would fail in the
  // database as a 500 there while SQLite stored it. Refuse it up front, the same on both.
  const nul = findNul(value, []);
  if (nul)
    throw new AppError(
      'validation_error',
      `invalid ${where}: ${nul.length ? nul.join('.') + ': ' : ''}must not contain NUL characters`,
      { param: nul.join('.') || null },
    );
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = issue.path.join('.');
  const message =
    issue.code === 'unrecognized_keys'
      ? `unknown field${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.map((k) => k.slice(0, 64)).join(', ')}`
      : `${path ? path + ': ' : ''}${issue.message}`;
  throw new AppError('validation_error', `invalid ${where}: ${message}`, { param: path || null });
}

// Reusable field shapes.
/**
 * A row id in a path or query string: its decimal digits only. Coercion took `0x1`, `1e0`, `+1`
 * and `1.0` for row 1.
 */
export const zId = z
  .string()
  .regex(/^[1-9][0-9]{0,15}$/, 'must be a positive integer')
  .transform(Number)
  .pipe(z.number().max(Number.MAX_SAFE_INTEGER));
/** A row id in a JSON body: a number (coercion made `true` and `[3]` ids, of users 1 and 3). */
export const zIdField = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
/** The params of a route on one row: `…/:id`. */
export const IdParams = z.object({ id: zId }).strict();
export const zLimit = z.coerce.number().int().min(1).max(500).default(50);
export const zCursor = zId.optional();
export const zUsd = z.number().finite().min(0).max(9_000_000);
/** Whether a date's day exists in its month: Date.parse rolls 2027-02-30 over to March 2. */
function dayExists(s: string): boolean {
  const m = /^\s*(\d{4})-(\d{2})-(\d{2})/.exec(s);
  if (!m) return true;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const d = new Date(Date.UTC(year, month - 1, day));
  return d.getUTCMonth() === month - 1 && d.getUTCDate() === day;
}
export const zIsoTime = z
  .string()
  .max(64)
  .refine((s) => !Number.isNaN(Date.parse(s)) && dayExists(s), 'must be an ISO 8601 time');
export const zName = z.string().trim().min(1).max(128);
export const zGroupName = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only');
export const zModelName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^\s*]+\*?$/, 'a model name, optionally ending in "*"');
/** A key's model allowlist entry: a model name, a prefix ending in "*", or "*" alone (every model). */
export const zModelPattern = z
  .string()
  .min(1)
  .max(128)
  .regex(/^(?:[^\s*]+\*?|\*)$/, 'a model name, optionally ending in "*", or "*"');
