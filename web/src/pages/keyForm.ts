// The create / edit key form without React: its state, a reducer for edits, and the
// validation that turns the fields into the API body (or field errors). KeyFormDialog
// renders it; the rules are unit-tested on their own (keyForm.test.ts).
import type { ApiKey } from '../api';
import { budgetChanged, type BudgetValues, budgetValuesOf, parseBudget } from '../budget';
import { toDateInput } from '../format';
import { parseIpRules, parseLimit, parseList, parseUsd, usdText } from '../validate';

export type KeyFormField =
  | 'name'
  | 'ips'
  | 'origins'
  | 'quota'
  | 'expires'
  | 'rpm'
  | 'tpm'
  | 'concurrency'
  | 'models'
  | 'guard'
  | 'budget';
export type FieldErrors = Partial<Record<KeyFormField, string>>;

export interface KeyFormState {
  name: string;
  /** The owner's user id, as the select's value. */
  owner: string;
  /** A group name, or '' for the owner's group. */
  group: string;
  /** Models picked from the list. */
  models: string[];
  /** Extra patterns, comma-separated ("gpt-4o*"). */
  patterns: string;
  /** Allowed IPs, one per line (commas also accepted). */
  ips: string;
  /** Allowed browser origins, one per line (commas also accepted). */
  origins: string;
  /** USD, as typed. */
  quota: string;
  /** The last day (yyyy-mm-dd, local), or '' for never. */
  expires: string;
  rpm: string;
  /** Tokens per minute, as typed. */
  tpm: string;
  /** Requests at once, as typed. */
  concurrency: string;
  /** Anomaly guard: distinct client IPs per hour, as typed ('' = not watched). */
  guardIps: string;
  /** Anomaly guard: USD per hour, as typed ('' = not watched). */
  guardSpend: string;
  /** What the guard does past a threshold. */
  guardAction: 'alert' | 'disable';
  /** Budget per period, as typed; an empty amount = none of its own. */
  budget: BudgetValues;
  errors: FieldErrors;
}

/** The fields edited as text (every one but the models list, the budget and the errors). */
export type TextField = {
  [K in keyof KeyFormState]: KeyFormState[K] extends string ? K : never;
}[keyof KeyFormState];

export type KeyFormAction =
  | { type: 'set'; field: TextField; value: string }
  | { type: 'models'; models: string[] }
  | { type: 'budget'; field: keyof BudgetValues; value: string }
  /** The result of a validation: replaces every field error. */
  | { type: 'errors'; errors: FieldErrors }
  /** The server refused one field: its message shows there, the others stay. */
  | { type: 'fieldError'; field: KeyFormField; message: string };

export function initialKeyForm(existing: ApiKey | undefined, selfId: number): KeyFormState {
  const models = existing?.models ?? [];
  return {
    name: existing?.name ?? '',
    owner: String(existing?.user_id ?? selfId),
    group: existing?.group ?? '',
    models: models.filter((m) => !m.endsWith('*')),
    patterns: models.filter((m) => m.endsWith('*')).join(', '),
    ips: (existing?.allowed_ips ?? []).join('\n'),
    origins: (existing?.allowed_origins ?? []).join('\n'),
    quota: usdText(existing?.quota),
    expires: existing?.expires_at ? toDateInput(new Date(existing.expires_at)) : '',
    rpm: existing?.rpm != null ? String(existing.rpm) : '',
    tpm: existing?.tpm != null ? String(existing.tpm) : '',
    concurrency: existing?.max_concurrency != null ? String(existing.max_concurrency) : '',
    guardIps: existing?.guard?.max_ips_per_hour != null ? String(existing.guard.max_ips_per_hour) : '',
    guardSpend: existing?.guard?.max_spend_per_hour != null ? String(existing.guard.max_spend_per_hour) : '',
    guardAction: existing?.guard?.action ?? 'alert',
    budget: budgetValuesOf(existing),
    errors: {},
  };
}

export function keyFormReducer(state: KeyFormState, action: KeyFormAction): KeyFormState {
  switch (action.type) {
    case 'set':
      return { ...state, [action.field]: action.value };
    case 'models':
      return { ...state, models: action.models };
    case 'budget':
      return { ...state, budget: { ...state.budget, [action.field]: action.value } };
    case 'errors':
      return { ...state, errors: action.errors };
    case 'fieldError':
      return { ...state, errors: { ...state.errors, [action.field]: action.message } };
  }
}

/** A browser origin as the server takes it (it normalises and checks it fully). */
const ORIGIN = /^[a-z][a-z0-9+.-]*:\/\/(\*\.)?[^\s/?#@*]+\/?$/i;

/** The end of the chosen local day, as ISO 8601. */
export function dateToIso(date: string): string {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(y ?? 1970, (m ?? 1) - 1, d ?? 1, 23, 59, 59, 0).toISOString();
}

export interface ValidationContext {
  /** The key being edited; absent when creating one. */
  existing?: ApiKey | undefined;
  isAdmin: boolean;
  /** The signed-in user's id. */
  selfId: number;
  /** Epoch milliseconds. */
  now: number;
  /** The key's group's max_key_lifetime_days, when it has one. */
  maxLifetimeDays?: number | null | undefined;
}

/** Kept from a group's lifetime cap: the server checks it a moment later, on its own clock. */
const LIFETIME_MARGIN_MS = 60_000;

/**
 * Checks the fields. With errors: `{ errors, body: null }`. Without: the body for
 * POST /api/keys (unset fields left out, so the server applies its defaults) or for
 * PATCH /api/keys/:id (unset fields sent as null, which clears them).
 */
export function validateKeyForm(
  state: KeyFormState,
  ctx: ValidationContext,
): { errors: FieldErrors; body: Record<string, unknown> | null } {
  const errors: FieldErrors = {};
  const name = state.name.trim();
  if (!name) errors.name = 'Give the key a name, e.g. “web-prod” or “dev-local”.';
  // Characters, as the server counts them (an emoji is one, though two UTF-16 units).
  else if ([...name].length > 128) errors.name = 'Names are at most 128 characters.';
  const ip = parseIpRules(state.ips);
  if (ip.error) errors.ips = ip.error;
  const origins = parseList(state.origins);
  const badOrigin = origins.find((o) => !ORIGIN.test(o));
  if (badOrigin)
    errors.origins = `“${badOrigin}”: write scheme://host[:port], e.g. https://app.example.com or https://*.example.com.`;
  const quota = parseUsd(state.quota);
  if (quota.error) errors.quota = quota.error;
  let expiresAt: string | null = null;
  // The day shown for an existing expiry, left as it was: the expiry is not sent, so it stays to
  // the second (the end of that day would add hours, past a group's lifetime cap perhaps).
  const keepsExpiry =
    ctx.existing !== undefined &&
    state.expires === (ctx.existing.expires_at ? toDateInput(new Date(ctx.existing.expires_at)) : '');
  if (state.expires && !keepsExpiry) {
    expiresAt = dateToIso(state.expires);
    const days = ctx.maxLifetimeDays;
    if (new Date(expiresAt).getTime() <= ctx.now) errors.expires = 'Pick a date in the future.';
    else if (days != null) {
      // A day is taken to its end, which on the cap's own day is past the cap: the key then
      // expires at the cap (the "N days" preset of a group whose keys live N days).
      const cap = ctx.now + days * 86_400_000 - LIFETIME_MARGIN_MS;
      if (new Date(expiresAt).getTime() > cap) {
        if (state.expires === toDateInput(new Date(cap))) expiresAt = new Date(cap).toISOString();
        else
          errors.expires = `Keys of this group expire within ${days} days: pick ${toDateInput(new Date(cap))} or earlier.`;
      }
    }
  } else if (!state.expires && !keepsExpiry && ctx.maxLifetimeDays != null) {
    const cap = ctx.now + ctx.maxLifetimeDays * 86_400_000 - LIFETIME_MARGIN_MS;
    errors.expires = `Keys of this group expire within ${ctx.maxLifetimeDays} days: pick ${toDateInput(new Date(cap))} or earlier.`;
  }
  let rpm: number | null = null;
  if (state.rpm.trim()) {
    const n = Number(state.rpm);
    if (!Number.isInteger(n) || n < 1)
      errors.rpm = 'Enter a whole number of requests per minute (1 or more), or leave it empty.';
    else rpm = n;
  }
  const tpm = parseLimit(state.tpm, 1_000_000_000, 'tokens per minute');
  if (tpm.error) errors.tpm = tpm.error;
  const concurrency = parseLimit(state.concurrency, 10_000, 'requests at once');
  if (concurrency.error) errors.concurrency = concurrency.error;
  let guard: Record<string, unknown> | null = null;
  if (state.guardIps.trim() || state.guardSpend.trim()) {
    guard = { action: state.guardAction };
    if (state.guardIps.trim()) {
      const n = Number(state.guardIps);
      if (!Number.isInteger(n) || n < 1)
        errors.guard = 'Enter a whole number of client IPs per hour (1 or more), or leave it empty.';
      else guard.max_ips_per_hour = n;
    }
    if (state.guardSpend.trim()) {
      const spend = parseUsd(state.guardSpend);
      if (spend.error || !spend.value) errors.guard = spend.error ?? 'Enter an amount above 0 USD.';
      else guard.max_spend_per_hour = spend.value;
    }
  }
  const budget = parseBudget(state.budget);
  if (budget.error) errors.budget = budget.error;
  const patterns = parseList(state.patterns);
  const badPattern = patterns.find((p) => !/^[^\s*]+\*?$/.test(p) && p !== '*');
  if (badPattern) errors.models = `“${badPattern}”: a pattern is a model name, optionally ending in *.`;
  if (Object.keys(errors).length) return { errors, body: null };

  const { existing } = ctx;
  const models = [...state.models, ...patterns];
  const body: Record<string, unknown> = {
    name,
    // Empty fields mean "no restriction" — except on a key that already allows nothing
    // (an empty list from the API): editing its name must not quietly open it up.
    models: models.length ? models : existing?.models?.length === 0 ? [] : null,
    allowed_ips: ip.rules.length ? ip.rules : existing?.allowed_ips?.length === 0 ? [] : null,
    allowed_origins: origins,
    quota: quota.value,
    expires_at: expiresAt,
    group: state.group || null,
    rpm,
    tpm: tpm.value,
    max_concurrency: concurrency.value,
    guard,
  };
  if (budgetChanged(budget.value, existing)) body.budget = budget.value;
  if (keepsExpiry) delete body.expires_at;
  if (!existing) {
    for (const k of Object.keys(body)) if (body[k] === null) delete body[k];
    if (origins.length === 0) delete body.allowed_origins;
    if (ctx.isAdmin && state.owner !== String(ctx.selfId)) body.user_id = Number(state.owner);
  }
  return { errors, body };
}

const FIELD_OF_PARAM: Record<string, KeyFormField> = {
  name: 'name',
  allowed_ips: 'ips',
  allowed_origins: 'origins',
  quota: 'quota',
  expires_at: 'expires',
  rpm: 'rpm',
  tpm: 'tpm',
  max_concurrency: 'concurrency',
  models: 'models',
  guard: 'guard',
  budget: 'budget',
};

/** The form field an API error's `param` names ("allowed_ips[2]" → ips), if any. */
export function fieldOfParam(param: string): KeyFormField | undefined {
  return FIELD_OF_PARAM[param.split(/[.[]/)[0] ?? ''];
}
