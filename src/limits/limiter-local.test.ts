// The shared limits spec (limiter.spec.ts) against the in-memory store. Limiters made with the
// same space share one store (what two instances sharing Redis look like, in one process).
import { createLocalLimitStore } from './store-local.js';
import { limiterSpec } from './limiter.spec.js';
import type { LimitStore } from './store.js';

const stores = new Map<string, LimitStore>();
limiterSpec('in-memory', {
  shared: false,
  async make(space) {
    const s = stores.get(space) ?? createLocalLimitStore();
    stores.set(space, s);
    return s;
  },
});
