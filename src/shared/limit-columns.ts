// The budget and limit columns that users, keys and groups share (db/schema.ts: BudgetColumns,
// LimitColumns), as a change writes them: only the fields given are set, null clears one.
import type { BudgetPeriod } from '../db/schema.js';

/** A change's budget and limit fields, in domain terms. */
export interface BudgetAndLimitFields {
  budget?: { amountNano: number; period: BudgetPeriod } | null;
  rpm?: number | null;
  tpm?: number | null;
  maxConcurrency?: number | null;
}

/** The columns to set for the fields given (an absent field leaves its column as it is). */
export function budgetAndLimitColumns(f: BudgetAndLimitFields) {
  const set: {
    budget_nano?: number | null;
    budget_period?: BudgetPeriod | null;
    rpm_limit?: number | null;
    tpm_limit?: number | null;
    max_concurrency?: number | null;
  } = {};
  if (f.budget !== undefined) {
    set.budget_nano = f.budget?.amountNano ?? null;
    set.budget_period = f.budget?.period ?? null;
  }
  if (f.rpm !== undefined) set.rpm_limit = f.rpm;
  if (f.tpm !== undefined) set.tpm_limit = f.tpm;
  if (f.maxConcurrency !== undefined) set.max_concurrency = f.maxConcurrency;
  return set;
}
