// Budget periods: each starts at 00:00 UTC — a day, a week on Monday, a month on the 1st —
// and ends where the next one starts. Pure functions of epoch milliseconds.
import type { BudgetPeriod } from '../db/schema.js';

export type { BudgetPeriod };
export const PERIODS = ['daily', 'weekly', 'monthly'] as const satisfies readonly BudgetPeriod[];

const DAY_MS = 86_400_000;

/** Start of the period holding `at`. */
export function periodStart(period: BudgetPeriod, at: number): number {
  const d = new Date(at);
  const day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  if (period === 'daily') return day;
  if (period === 'weekly') return day - ((d.getUTCDay() + 6) % 7) * DAY_MS; // Monday = 0
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** Start of the next period: when the one holding `at` resets. */
export function periodEnd(period: BudgetPeriod, at: number): number {
  const start = periodStart(period, at);
  if (period === 'daily') return start + DAY_MS;
  if (period === 'weekly') return start + 7 * DAY_MS;
  const d = new Date(start);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** The UTC day (YYYY-MM-DD) of a time, as usage_daily spells it. */
export const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** How long a period lasts at most, for comparing budgets of different periods. */
export const PERIOD_RANK: Record<BudgetPeriod, number> = { daily: 1, weekly: 2, monthly: 3 };
