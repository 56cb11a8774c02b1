// Periodic budgets (contract §7): which budgets are in force for a request — the key's own,
// its group's default (counted on the key's spend), the account's — holding the worst case
// against all of them (budgets/meter.ts), settling the real cost, and announcing
// `budget.threshold` once per key or account, threshold and period as spend crosses it.
import type { Logger } from 'pino';
import type { Clock } from '../shared/clock.js';
import {
  type BudgetHold,
  type BudgetLine,
  type BudgetMeter,
  type CounterRef,
  countersFor,
  payerOf,
  type Settled,
} from './meter.js';
import { type BudgetPeriod, dayOf, periodEnd } from './period.js';

export interface Budget {
  amountNano: number;
  period: BudgetPeriod;
}

/** Shares of a budget whose crossing raises `budget.threshold` when a key or user sets none. */
export const DEFAULT_THRESHOLDS: readonly number[] = [0.8, 1];

/** What the budgets need to know about the presenting key (keys/verify.ts `VerifiedKey`). */
export interface BudgetedKey {
  id: number;
  userId: number;
  group: string;
  budget: Budget | null;
  alertThresholds: readonly number[] | null;
  accountBudget: Budget | null;
  accountAlertThresholds: readonly number[] | null;
}

/** The event the budgets raise (events/service.ts `EventInput`). */
export interface BudgetEvent {
  type: 'budget.threshold';
  userId: number | null;
  keyId?: number | null;
  dedupeKey?: string;
  data: Record<string, unknown>;
}

export interface BudgetsDeps {
  meter: BudgetMeter;
  /** The group's default budget for its keys (billing/catalog.ts, in memory). */
  groupBudget(group: string): Budget | null;
  /** Stores the event (events/service.ts `emit`). */
  notify(e: BudgetEvent): Promise<void>;
  logger: Logger;
  now: Clock;
}

export type BudgetAdmission =
  | { ok: true; hold: BudgetHold }
  | { ok: false; message: string; line: BudgetLine; resetsAt: number };

const usd = (nano: number) => nano / 1e9;
const iso = (ms: number) => new Date(ms).toISOString();
const WHOSE: Record<BudgetLine['scope'], string> = {
  key: "this API key's",
  group: "this API key's group default",
  account: "the account's",
};

/** The spend (nano-USD) at which a share of a limit is reached: ceil(limit × share), exactly. */
export function markOf(limitNano: number, share: number): number {
  const ppm = BigInt(Math.round(share * 1_000_000));
  return Number((BigInt(limitNano) * ppm + 999_999n) / 1_000_000n);
}

export function createBudgets(deps: BudgetsDeps) {
  const { meter } = deps;

  function linesFor(k: BudgetedKey): BudgetLine[] {
    const lines: BudgetLine[] = [];
    if (k.budget)
      lines.push({
        scope: 'key',
        subject: 'k',
        id: k.id,
        period: k.budget.period,
        limitNano: k.budget.amountNano,
      });
    const g = deps.groupBudget(k.group);
    if (g) lines.push({ scope: 'group', subject: 'k', id: k.id, period: g.period, limitNano: g.amountNano });
    if (k.accountBudget)
      lines.push({
        scope: 'account',
        subject: 'u',
        id: k.userId,
        period: k.accountBudget.period,
        limitNano: k.accountBudget.amountNano,
      });
    return lines;
  }

  /** Dedupe keys announced by this instance lately: a refusal storm stores nothing twice. */
  const announced = new Set<string>();

  /** Stores one threshold event (in the background; failures are logged). */
  function emit(k: BudgetedKey, c: CounterRef, share: number, spent: number, refused: boolean): void {
    const account = c.subject === 'u';
    const who = account ? `user:${k.userId}` : `key:${k.id}`;
    const dedupeKey = `budget.threshold:${who}:${c.period}:${dayOf(c.start)}:${share}`;
    if (announced.has(dedupeKey)) return;
    if (announced.size >= 10_000) announced.clear();
    announced.add(dedupeKey);
    const event: BudgetEvent = {
      type: 'budget.threshold',
      userId: k.userId,
      keyId: account ? null : k.id,
      dedupeKey,
      data: {
        scope: c.line.scope,
        key_id: account ? null : k.id,
        user_id: k.userId,
        period: c.period,
        period_start: iso(c.start),
        resets_at: iso(c.end),
        threshold: share,
        limit: usd(c.limitNano),
        spent: usd(spent),
        ...(refused ? { refused: true } : {}),
      },
    };
    deps.notify(event).catch((err: unknown) => {
      announced.delete(dedupeKey);
      deps.logger.error({ err: String(err), dedupe_key: dedupeKey }, 'budgets: event not stored');
    });
  }

  const sharesOf = (k: BudgetedKey, c: CounterRef) =>
    (c.subject === 'u' ? k.accountAlertThresholds : k.alertThresholds) ?? DEFAULT_THRESHOLDS;

  /** Announces each threshold a settlement crossed. */
  function announce(k: BudgetedKey, settled: Settled[]): void {
    for (const { counter, before, after } of settled)
      for (const share of sharesOf(k, counter)) {
        const mark = markOf(counter.limitNano, share);
        if (before < mark && after >= mark) emit(k, counter, share, after, false);
      }
  }

  /**
   * A hold of `amount` the meter refused at `at`, as the relay answers it. `final`: the request is
   * refused (not a hold that needed more room than `amount`, tried again on the exact count).
   */
  function refused(
    k: BudgetedKey,
    r: { line: BudgetLine; spentNano: number; resetsAt: number },
    amount: number,
    at: number,
    final = true,
  ): BudgetAdmission & { ok: false } {
    const left = Math.max(0, r.line.limitNano - r.spentNano);
    // Spend rarely lands on the budget exactly (requests hold their worst case): a refusal
    // means it is used up, so the 100% threshold is announced now if it was not yet.
    const counter = countersFor([r.line], at)[0]!;
    if (final && sharesOf(k, counter).includes(1) && r.spentNano < r.line.limitNano)
      emit(k, counter, 1, r.spentNano, true);
    return {
      ok: false,
      line: r.line,
      resetsAt: r.resetsAt,
      message:
        `The request could cost up to ${usd(amount)} USD, more than ${WHOSE[r.line.scope]} ` +
        `${r.line.period} budget of ${usd(r.line.limitNano)} USD has left (${usd(left)} USD); ` +
        `it resets at ${iso(r.resetsAt)}.`,
    };
  }

  return {
    linesFor,

    /**
     * Holds `amount` against every budget in force if each has `need` (≥ amount; default:
     * amount) left, or says which one cannot cover it.
     */
    async reserve(k: BudgetedKey, amount: number, need = amount): Promise<BudgetAdmission> {
      const lines = linesFor(k);
      const payer = payerOf(k);
      // No budget in force (the usual case): a hold on no counter.
      if (lines.length === 0) return { ok: true, hold: { counters: [], amount, done: false, payer } };
      const at = deps.now();
      const r = await meter.reserve(lines, amount, at, need);
      if (r.ok) r.hold.payer = payer;
      return r.ok ? r : refused(k, r, amount, at, need === amount);
    },

    refused,
    announce,

    capFor: async (hold: BudgetHold, cost: number) =>
      hold.counters.length === 0 ? cost : meter.capFor(hold, cost),

    /** Charges what the ledger charged, at `at` (the log row's time), and announces crossings. */
    async settle(k: BudgetedKey, hold: BudgetHold, charge: number, at: number): Promise<void> {
      if (hold.counters.length === 0) {
        hold.done = true;
        meter.charged(hold, charge, at);
      } else announce(k, await meter.settle(hold, charge, at));
    },

    release(hold: BudgetHold): void {
      if (hold.counters.length === 0) hold.done = true;
      else meter.release(hold);
    },

    /** Each budget in force with its spend now: limit, spent, remaining, resets_at (nano-USD, ms). */
    async status(k: BudgetedKey, at = deps.now()) {
      return Promise.all(
        linesFor(k).map(async (line) => {
          const spent = await meter.spent(line, at);
          return {
            scope: line.scope,
            period: line.period,
            limitNano: line.limitNano,
            spentNano: spent,
            resetsAt: periodEnd(line.period, at),
          };
        }),
      );
    },

    /** One budget's spend now, for management reads (a key's or an account's own budget). */
    async usage(subject: BudgetLine['subject'], id: number, budget: Budget, at = deps.now()) {
      const line: BudgetLine = {
        scope: subject === 'k' ? 'key' : 'account',
        subject,
        id,
        period: budget.period,
        limitNano: budget.amountNano,
      };
      const spent = await meter.spent(line, at);
      return {
        amount: usd(budget.amountNano),
        period: budget.period,
        spent: usd(spent),
        remaining: usd(Math.max(0, budget.amountNano - spent)),
        resets_at: iso(periodEnd(budget.period, at)),
      };
    },

    flushInto: meter.flushInto,
    close: () => meter.close(),
  };
}

export type Budgets = ReturnType<typeof createBudgets>;

/** JSON for a stored budget: `{amount, period}` (USD) or null. */
export function budgetJson(nano: number | null, period: BudgetPeriod | null) {
  return nano === null || period === null ? null : { amount: usd(Number(nano)), period };
}

/** A stored budget as the budgets read it. */
export function budgetOf(nano: number | null, period: BudgetPeriod | null): Budget | null {
  return nano == null || period == null ? null : { amountNano: Number(nano), period };
}

/** Stored thresholds (JSON text) as a list; null = the default. */
export function thresholdsOf(text: string | null): number[] | null {
  if (text == null) return null;
  try {
    const v = JSON.parse(text) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === 'number') ? v : null;
  } catch {
    return null;
  }
}
