// `GET /v1/key` (contract §4): the presenting key's own object — status, models, limits in
// force, spend, its account's balance and its tightest budget. Never the secret. An
// ephemeral key sees itself only (never its parent's name, secret form or spend).
import { nanoToUsd } from '../billing/money.js';
import { AppError } from '../http/errors.js';
import { toEphemeralJson } from '../keys/ephemeral.js';
import { toKeyJson } from '../keys/service.js';
import type { VerifiedKey } from '../keys/verify.js';
import { limitsJson } from '../limits/headers.js';
import type { LimitSnapshot } from '../limits/limiter.js';
import type { Services } from '../services.js';

type KeySelfDeps = Pick<
  Services,
  'ephemeralKeys' | 'spendCaps' | 'keys' | 'ledger' | 'accounts' | 'limiter' | 'budgets'
> & {
  /** The limits in force for the key, as its rate-limit headers report them. */
  limitsOf(key: VerifiedKey): Promise<LimitSnapshot>;
};

export async function keySelf(s: KeySelfDeps, key: VerifiedKey): Promise<Record<string, unknown>> {
  if (key.ephemeral) {
    const e = await s.ephemeralKeys.get(key.ephemeral.id);
    const used = await s.spendCaps.usedNano(key.ephemeral.id);
    const cap = key.ephemeral.maxCostNano;
    return {
      ...toEphemeralJson(e, s.ephemeralKeys.now()),
      used: nanoToUsd(used),
      remaining: cap === null ? null : nanoToUsd(Math.max(0, cap - used)),
    };
  }
  // A key deleted while this request was in flight answers like any unknown key.
  const row = await s.keys.requireKey(key.id).catch((err: unknown) => {
    if (err instanceof AppError && err.code === 'not_found')
      throw new AppError('invalid_api_key', 'Invalid API key: this key was deleted.');
    throw err;
  });
  const used = await s.ledger.usedNano(key.id, async () =>
    Number((await s.keys.requireKey(key.id)).used_nano),
  );
  const json = toKeyJson({ ...row, used_nano: used });
  const balance = await s.ledger.balanceNano(key.userId, () => s.accounts.balanceNano(key.userId));
  const limits: Record<string, unknown> = limitsJson(await s.limitsOf(key), s.limiter.now());
  // Each limit in force; of the budgets (the key's, its group's default, the account's), the
  // one with the least left.
  const budgets = await s.budgets.status(key);
  const tightest = budgets.sort(
    (a, b) => a.limitNano - a.spentNano - (b.limitNano - b.spentNano) || a.resetsAt - b.resetsAt,
  )[0];
  if (tightest)
    limits.budget = {
      limit: nanoToUsd(tightest.limitNano),
      remaining: nanoToUsd(Math.max(0, tightest.limitNano - tightest.spentNano)),
      resets_at: new Date(tightest.resetsAt).toISOString(),
      period: tightest.period,
      scope: tightest.scope,
      spent: nanoToUsd(tightest.spentNano),
    };
  return { object: 'api_key', ...json, account_balance: nanoToUsd(balance), limits };
}
