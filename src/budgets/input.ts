// The budget fields as the management API takes them (keys, users, groups): zod shapes at
// the edge, USD → nano-USD, and the rule that a key's budget stays within its group's.
import { z } from 'zod';
import { AppError } from '../http/errors.js';
import { usdNano } from '../billing/money.js';
import { zUsd } from '../http/validate.js';
import { PERIOD_RANK, PERIODS } from './period.js';
import type { Budget } from './service.js';

export const zBudget = z
  .object({ amount: zUsd, period: z.enum(PERIODS) })
  .strict()
  .describe('spend allowed per period (USD); periods start 00:00 UTC, weeks on Monday, months on the 1st');

export const zAlertThresholds = z
  .array(z.number().gt(0).max(1))
  .max(10)
  .describe('shares of the budget whose crossing raises a budget.threshold event; default [0.8, 1]');

/** A budget as the API shows it. */
export const BudgetSchema = z
  .object({ amount: z.number(), period: z.enum(PERIODS) })
  .meta({ title: 'Budget' });

/** The budget's spend now (management reads of one key or user). */
export const BudgetUsageSchema = BudgetSchema.extend({
  spent: z.number().describe('USD spent in the current period'),
  remaining: z.number(),
  resets_at: z.string().describe('ISO 8601: when the current period ends'),
}).meta({ title: 'BudgetUsage' });

/** The API's `budget` → nano-USD (null clears it). */
export function budgetFromInput(b: z.infer<typeof zBudget> | null, param = 'budget'): Budget | null {
  if (b === null) return null;
  return { amountNano: usdNano(b.amount, `${param}.amount`), period: b.period };
}

/** The budget fields a key or a user takes: spread into its body's schema. */
export const zBudgetFields = {
  budget: zBudget.nullable().optional(),
  alert_thresholds: zAlertThresholds.nullable().optional(),
};

/** The budget fields of a body, in domain terms (only those sent). */
export function budgetFieldsOf(b: {
  budget?: z.infer<typeof zBudget> | null;
  alert_thresholds?: number[] | null;
}): { budget?: Budget | null; alertThresholds?: number[] | null } {
  return {
    ...(b.budget !== undefined ? { budget: budgetFromInput(b.budget) } : {}),
    ...(b.alert_thresholds !== undefined ? { alertThresholds: b.alert_thresholds } : {}),
  };
}

/** Thresholds as stored: sorted, without repeats. */
export const thresholdsText = (t: number[] | null) =>
  t === null ? null : JSON.stringify([...new Set(t)].sort((a, b) => a - b));

/**
 * A key's budget may not exceed its group's default: 422 `limit_above_group` when it allows
 * more in a period as long or shorter than the group's (a longer period is also held to the
 * group's own budget, which applies to the key too).
 */
export function checkWithinGroup(key: Budget | null, group: Budget | null, groupName: string): void {
  if (!key || !group) return;
  if (PERIOD_RANK[key.period] <= PERIOD_RANK[group.period] && key.amountNano > group.amountNano)
    throw new AppError(
      'limit_above_group',
      `budget: ${key.amountNano / 1e9} USD ${key.period} is above the group "${groupName}" budget of ` +
        `${group.amountNano / 1e9} USD ${group.period}`,
      { param: 'budget' },
    );
}
