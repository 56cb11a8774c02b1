// The limit fields as the management API takes them (keys, users, groups): positive integers
// up to sensible maxima, or null for "none of its own".
import { z } from 'zod';
import { LIMIT_MAX } from './policy.js';

const positive = (max: number, what: string) =>
  z
    .number()
    .int('must be a whole number')
    .min(1, `must be at least 1 (null for no ${what} limit)`)
    .max(max, `must be at most ${max}`);

export const zLimitFields = {
  rpm: positive(LIMIT_MAX.rpm, 'requests-per-minute').nullable().optional(),
  tpm: positive(LIMIT_MAX.tpm, 'tokens-per-minute').nullable().optional(),
  max_concurrency: positive(LIMIT_MAX.maxConcurrency, 'concurrency').nullable().optional(),
};

export const zLifetimeDays = positive(LIMIT_MAX.maxKeyLifetimeDays, 'lifetime');

/** The limit fields of a body, in domain terms (only those sent). */
export function limitFieldsOf(b: {
  rpm?: number | null;
  tpm?: number | null;
  max_concurrency?: number | null;
}) {
  return {
    ...(b.rpm !== undefined ? { rpm: b.rpm } : {}),
    ...(b.tpm !== undefined ? { tpm: b.tpm } : {}),
    ...(b.max_concurrency !== undefined ? { maxConcurrency: b.max_concurrency } : {}),
  };
}
