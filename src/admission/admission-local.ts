// Admission in process (no REDIS_URL): the domains' own calls, one after another. Each step's
// check and hold is atomic in this process (no await between them), and a later refusal gives
// the earlier holds back. See admission.ts.
import type { Logger } from 'pino';
import type { Ledger } from '../billing/ledger.js';
import type { SpendCaps } from '../billing/spend-caps.js';
import type { Budgets } from '../budgets/service.js';
import type { AppError } from '../http/errors.js';
import type { VerifiedKey } from '../keys/verify.js';
import type { Limiter } from '../limits/limiter.js';
import { type Admission, type Hold, limitsError, moneyError, roomNeeded } from './admission.js';

export interface AdmissionDeps {
  logger: Logger;
  limiter: Limiter;
  spendCaps: SpendCaps;
  budgets: Budgets;
  ledger: Ledger;
}

export function createLocalAdmission(deps: AdmissionDeps): Admission {
  const { limiter, spendCaps, budgets, ledger } = deps;

  /**
   * Holds `amount` against the cap, every budget in force, then the key quota and the balance,
   * if each has `need` left: all or none.
   */
  async function hold(
    key: VerifiedKey,
    amount: number,
    need: number,
  ): Promise<{ ok: true; hold: Hold } | { ok: false; error: AppError }> {
    // An ephemeral key's max_cost first (it bills to its parent: the rest is the parent's).
    const capNano = key.ephemeral?.maxCostNano ?? null;
    const cap = capNano === null ? null : await spendCaps.hold(key.ephemeral!.id, capNano, amount, need);
    if (capNano !== null && !cap) return { ok: false, error: moneyError.cap(amount) };
    const dropCap = () => cap && void spendCaps.release(cap);
    const b = await budgets.reserve(key, amount, need);
    if (!b.ok) {
      dropCap();
      return { ok: false, error: moneyError.budget(b.message) };
    }
    let l: Awaited<ReturnType<Ledger['reserve']>>;
    try {
      l = await ledger.reserve(key.id, key.userId, key.quotaNano, amount, need);
    } catch (err) {
      budgets.release(b.hold);
      dropCap();
      throw err;
    }
    if (!l.ok) {
      budgets.release(b.hold);
      dropCap();
      return { ok: false, error: moneyError.ledger(amount, l.reason) };
    }
    return { ok: true, hold: { key, ledger: l.reservation, budget: b.hold, cap } };
  }

  return {
    async admit(req) {
      const a = await limiter.admit(req.subject, req.tokens);
      if (!a.ok) return { ok: false, error: limitsError(a.refusal), snapshot: a.snapshot, ticket: null };
      let res: Awaited<ReturnType<typeof hold>>;
      try {
        const amount = req.amount();
        res = await hold(req.key, amount, roomNeeded(amount, req.bounded?.() ?? false));
        // A prompt is held on a cheap upper bound while every limit has room to spare; near a
        // limit, or refused, it is tokenized and the request judged on its exact count.
        if (!res.ok) await req.countAhead?.();
        const exact = res.ok ? null : (req.exact?.() ?? null);
        if (exact !== null) res = await hold(req.key, exact, exact);
      } catch (err) {
        a.ticket.done();
        throw err;
      }
      if (!res.ok) return { ok: false, error: res.error, snapshot: a.snapshot, ticket: a.ticket };
      return { ok: true, ticket: a.ticket, snapshot: a.snapshot, hold: res.hold };
    },

    // The charge stops at what the budgets still cover (as the ledger's stops at the quota and
    // balance), and the budgets count exactly what the ledger charged.
    async settle(h, ticket, tokens, cost, at) {
      ticket.settleTokens(tokens);
      // In process the slot is free once this returns (no I/O), like the correction.
      void ticket.done();
      let charge: number;
      try {
        const budgetCapped = await budgets.capFor(h.budget, cost).catch(() => cost);
        // An ephemeral key's max_cost may charge less still; what its parent was charged counts.
        const capped = h.cap ? await spendCaps.settle(h.cap, budgetCapped) : budgetCapped;
        charge = await ledger.settle(h.ledger, capped);
        if (h.cap && charge < capped) await spendCaps.refund(h.cap, capped - charge);
      } catch (err) {
        budgets.release(h.budget);
        throw err;
      }
      try {
        await budgets.settle(h.key, h.budget, charge, at);
      } catch (err) {
        deps.logger.error(
          { err: String(err), charge },
          'admission: the budgets could not count a settled charge',
        );
      }
      return charge;
    },

    async release(h) {
      ledger.release(h.ledger);
      budgets.release(h.budget);
      if (h.cap) await spendCaps.release(h.cap);
    },
  };
}
