// The shared ledger spec (ledger.spec.ts) against the in-process ledger.
import { createLocalLedger } from './ledger-local.js';
import { ledgerSpec, silent } from './ledger.spec.js';

ledgerSpec('local', {
  shared: false,
  async make({ store, bus }) {
    const ledger = createLocalLedger({ store, bus, logger: silent });
    return { ledger, crash: async () => {}, close: () => ledger.close() };
  },
});
