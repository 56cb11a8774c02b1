// The real keys, accounts and local ledger on a fresh SQLite data dir: what the usage writer's
// contributors need (its spec and bench/writer.ts share it). The caller removes `dir`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createAccountsService } from '../../src/accounts/service.js';
import { createLocalLedger } from '../../src/billing/ledger-local.js';
import { openStorage } from '../../src/db/open.js';
import { createKeysService } from '../../src/keys/service.js';
import { InvalidationBus } from '../../src/shared/bus.js';

export const silentLogger = pino({ level: 'silent' });

export async function ledgerWorld(prefix: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const storage = await openStorage({ dataDir: dir });
  const bus = new InvalidationBus();
  const accounts = createAccountsService(
    storage.db,
    bus,
    { sessionTtlSeconds: 60, loginMaxFailures: 5 },
    { onUserDeleted: (trx, userId, now) => keys.deleteAllFor(trx, userId, now) },
  );
  const keys = createKeysService(storage.db, bus, { maxKeysPerUser: 10 }, accounts);
  /** A local ledger on these keys and accounts (another one: a process started afresh). */
  const newLedger = () =>
    createLocalLedger({
      store: {
        usedNano: keys.usedNano,
        addUsed: keys.addUsed,
        balanceNano: accounts.balanceNano,
        subtractSpend: accounts.subtractSpend,
      },
      bus,
      logger: silentLogger,
    });
  return { dir, storage, bus, accounts, keys, ledger: newLedger(), newLedger };
}
