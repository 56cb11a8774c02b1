// undici (the npm package: upstream pools, webhook and channel-test requests), loaded by its
// first use rather than at start: its ~110 files cost a gateway ~0.15 s of CPU to load, which a
// process that never calls an upstream need not pay.
import { createRequire } from 'node:module';

type Undici = typeof import('undici');
let undici: Undici | null = null;

/** undici, required at the first call (synchronous: an Agent is made where it is needed). */
export function loadUndici(): Undici {
  undici ??= createRequire(import.meta.url)('undici') as Undici;
  return undici;
}

/** undici if something loaded it already, else null (then no error of its classes exists). */
export const loadedUndici = (): Undici | null => undici;
