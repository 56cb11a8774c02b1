// zod at the edges: parse or answer 422 with the first problem, phrased for a person.
import { z } from 'zod';
import { AppError } from './errors.js';

export function parseInput<T extends z.ZodType>(schema: T, value: unknown, where: 'body' | 'query' | 'params'): z.infer<T> {
  if (where === 'body' && (value === undefined || value === null)) value = {};
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = issue.path.join('.');
  const message = issue.code === 'unrecognized_keys'
    ? `unknown field${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.map((k) => k.slice(0, 64)).join(', ')}`
    : `${path ? path + ': ' : ''}${issue.message}`;
  throw new AppError('validation_error', `invalid ${where}: ${message}`, { param: path || null });
}

// Reusable field shapes.
export const zId = z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER);
export const zLimit = z.coerce.number().int().min(1).max(500).default(50);
export const zCursor = z.coerce.number().int().positive().optional();
export const zUsd = z.number().finite().min(0).max(9_000_000);
export const zIsoTime = z.string().max(64).refine((s) => !Number.isNaN(Date.parse(s)), 'must be an ISO 8601 time');
export const zName = z.string().trim().min(1).max(128);
export const zGroupName = z.string().trim().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only');
export const zModelName = z.string().min(1).max(128).regex(/^[^\s*]+\*?$/, 'a model name, optionally ending in "*"');
/** A key's model allowlist entry: a model name, a prefix ending in "*", or "*" alone (every model). */
export const zModelPattern = z.string().min(1).max(128).regex(/^(?:[^\s*]+\*?|\*)$/, 'a model name, optionally ending in "*", or "*"');
