// undici (the npm package: upstream pools, webhook and channel-test requests), loaded by its
// first use rather than at start: its ~110 files cost a gateway ~0.15 s of CPU to load, which a
// process that never calls an upstream need not pay.
import { lazyModule } from './lazy-module.js';

const undici = lazyModule<typeof import('undici')>('undici');

/** undici, required at the first call (synchronous: an Agent is made where it is needed). */
export const loadUndici = undici.load;

/** undici if something loaded it already, else null (then no error of its classes exists). */
export const loadedUndici = undici.loaded;
