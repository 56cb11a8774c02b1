// Small helpers every codec uses to read untrusted JSON bodies.
import { AppError } from '../../http/errors.js';

export type Json = Record<string, unknown>;

/** A plain JSON object (not null, not an array). */
export const isObject = (v: unknown): v is Json => !!v && typeof v === 'object' && !Array.isArray(v);

/** A client mistake in the request body: 400 invalid_request naming the field. */
export const bad = (message: string, param: string | null = null) =>
  new AppError('invalid_request', message, { param });
