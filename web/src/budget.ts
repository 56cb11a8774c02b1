// A budget as its form fields hold it, for the key, user and group forms alike: read from a
// saved record, and turned back into the API's {amount, period} (or null for none).
import type { Budget } from './api';
import { parseUsd, usdText } from './validate';

/** USD as typed ('' = no budget of its own) and the period's value (daily, weekly, monthly). */
export interface BudgetValues {
  amount: string;
  period: string;
}

/** A budget as the forms send it. */
type BudgetBody = { amount: number; period: string };

/** The budget fields' text for a saved user, group or key; a new one starts monthly. */
export function budgetValuesOf(saved?: { budget?: Budget | null }): BudgetValues {
  return {
    amount: saved?.budget ? usdText(saved.budget.amount) : '',
    period: saved?.budget?.period ?? 'monthly',
  };
}

/** The budget the fields describe (null: none), or why the amount is not one. */
export function parseBudget(values: BudgetValues): { value: BudgetBody | null; error: string | null } {
  const amount = parseUsd(values.amount);
  return {
    value: amount.value === null ? null : { amount: amount.value, period: values.period },
    error: amount.error,
  };
}

/**
 * Whether a parsed budget differs from the saved record's. Forms send the budget only then:
 * an unchanged one is not checked against its group again.
 */
export function budgetChanged(next: BudgetBody | null, saved?: { budget?: Budget | null }): boolean {
  return JSON.stringify(next) !== JSON.stringify(saved?.budget ?? null);
}
