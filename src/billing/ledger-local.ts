// The ledger of a single instance: holds, spend and balances in memory. Once an account's
// counters are loaded, a reservation is synchronous, so the check and the hold are atomic.
import type { Logger } from 'pino';
import type { InvalidationBus } from '../shared/bus.js';
import type { Clock } from '../shared/clock.js';
import {
  chargeFor,
  keyRoom,
  type Ledger,
  type LedgerStore,
  type Reservation,
  type ReserveResult,
  refusal,
  userRoom,
} from './ledger.js';
import { countedMembers, createCounters } from './ledger-counters.js';

export interface LocalLedgerDeps {
  store: LedgerStore;
  bus: InvalidationBus;
  logger: Logger;
  now?: Clock;
}

export function createLocalLedger(deps: LocalLedgerDeps): Ledger {
  const counters = createCounters(deps);

  async function settle(r: Reservation, cost: number): Promise<number> {
    if (r.done) return 0;
    r.done = true;
    const k = counters.keys.get(r.keyId)!;
    const u = counters.users.get(r.userId)!;
    k.reserved -= r.amount;
    u.reserved -= r.amount;
    const room = Math.min(
      userRoom(u.base - u.pending, u.reserved),
      keyRoom(r.quotaNano, k.base + k.pending, k.reserved),
    );
    const charge = chargeFor(cost, r.amount, room);
    k.pending += charge;
    u.pending += charge;
    return charge;
  }

  return {
    async reserve(keyId, userId, quotaNano, amount, need = amount): Promise<ReserveResult> {
      const { k, u } = await counters.load(keyId, userId);
      // From here to the increments there is no await: the check and the hold are atomic.
      const refused = refusal(need, {
        key: keyRoom(quotaNano, k.base + k.pending, k.reserved),
        user: userRoom(u.base - u.pending, u.reserved),
      });
      if (refused) return { ok: false, reason: refused };
      k.reserved += amount;
      u.reserved += amount;
      k.lastUsed = u.lastUsed = counters.now();
      return { ok: true, reservation: { keyId, userId, quotaNano, amount, done: false } };
    },
    ...countedMembers(counters, settle, deps.logger),
    // Counters re-read the balance on the user's invalidation message.
    credit: async () => {},
    close: async () => {},
  };
}
