// The admission spec (admission.spec.ts) in process: the domains' own calls, one after another.
import { createLocalLedger } from '../billing/ledger-local.js';
import { createSpendCaps } from '../billing/spend-caps.js';
import { createLocalMeter } from '../budgets/meter.js';
import { InvalidationBus } from '../shared/bus.js';
import { createLimiter } from '../limits/limiter.js';
import { createLocalLimitStore } from '../limits/store-local.js';
import { createLocalAdmission } from './admission-local.js';
import { admissionSpec, silent } from './admission.spec.js';

admissionSpec('local', {
  async make({ now, ledgerStore, capStore, budgetStore, budgets: budgetsOn }) {
    const limiter = createLimiter({
      store: createLocalLimitStore(),
      now,
      leaseMs: 30_000,
      renewEveryMs: null,
    });
    const ledger = createLocalLedger({ store: ledgerStore, bus: new InvalidationBus(), logger: silent, now });
    const spendCaps = createSpendCaps({ store: capStore, logger: silent, now });
    const budgets = budgetsOn(createLocalMeter({ store: budgetStore, logger: silent, now }));
    const admission = createLocalAdmission({ logger: silent, limiter, spendCaps, budgets, ledger });
    return { admission, limiter, ledger, spendCaps, budgets };
  },
});
