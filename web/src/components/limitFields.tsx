// The limit and budget fields that the key, user and group forms share: requests and
// tokens per minute, requests at once, and a budget with its period.
import type { ReactNode } from 'react';
import type { BudgetValues } from '../budget';
import { SelectField, type Option } from './controls';
import { NumberField } from './forms';

export const BUDGET_PERIODS: Option[] = [
  { value: 'daily', label: 'per day' },
  { value: 'weekly', label: 'per week' },
  { value: 'monthly', label: 'per month' },
];

export interface LimitValues {
  rpm: string;
  tpm: string;
  concurrency: string;
}

const text = (v: number | null | undefined) => (v == null ? '' : String(v));

/** The limit fields' text for a saved user, group or key (empty: no limit of its own). */
export function limitValuesOf(saved?: {
  rpm?: number | null;
  tpm?: number | null;
  max_concurrency?: number | null;
}): LimitValues {
  return { rpm: text(saved?.rpm), tpm: text(saved?.tpm), concurrency: text(saved?.max_concurrency) };
}

/** Requests per minute, tokens per minute and max concurrent requests. */
export function LimitFields({
  values,
  onChange,
  placeholder,
  hints,
  errors,
  counts = 'whole',
}: {
  values: LimitValues;
  onChange: (field: keyof LimitValues, value: string) => void;
  placeholder: string;
  hints?: Partial<Record<keyof LimitValues, ReactNode>>;
  errors?: Partial<Record<keyof LimitValues, string | undefined>>;
  /** How requests-per-minute and concurrency are typed (tokens are always a whole number). */
  counts?: 'count' | 'whole';
}) {
  const field = (name: keyof LimitValues, label: string, kind: 'count' | 'whole') => (
    <NumberField
      kind={kind}
      label={label}
      hint={hints?.[name]}
      error={errors?.[name]}
      value={values[name]}
      onChange={(v) => onChange(name, v)}
      placeholder={placeholder}
    />
  );
  return (
    <>
      {field('rpm', 'Requests per minute', counts)}
      {field('tpm', 'Tokens per minute', 'whole')}
      {field('concurrency', 'Max concurrent requests', counts)}
    </>
  );
}

/** A budget in USD and its period (daily, weekly, monthly). */
export function BudgetFields({
  label = 'Budget (USD)',
  hint,
  error,
  values,
  onChange,
}: {
  label?: string;
  hint?: ReactNode;
  error?: string | null;
  values: BudgetValues;
  onChange: (field: keyof BudgetValues, value: string) => void;
}) {
  return (
    <>
      <NumberField
        kind="usd"
        label={label}
        hint={hint}
        error={error}
        value={values.amount}
        onChange={(v) => onChange('amount', v)}
        placeholder="No budget"
      />
      <SelectField
        label="Budget period"
        value={values.period}
        options={BUDGET_PERIODS}
        onChange={(v) => onChange('period', v)}
      />
    </>
  );
}
