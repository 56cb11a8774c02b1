// What limits a key, an account or a group carries, and the ceilings a group puts on the keys
// and accounts in it (contract §7). Plain values and checks: no storage, no I/O.
import { AppError } from '../http/errors.js';
import type { ModelMatcher } from '../shared/models.js';

/** rpm / tpm / max_concurrency; null = none of its own. */
export interface LimitValues {
  rpm: number | null;
  tpm: number | null;
  maxConcurrency: number | null;
}

export const NO_LIMITS: LimitValues = { rpm: null, tpm: null, maxConcurrency: null };

/** A group's policy: defaults and ceilings for its keys and accounts, what it may use at all. */
export interface GroupPolicy extends LimitValues {
  /** Models (names or prefixes ending in "*") the group may use at all; null = every model. */
  models: ModelMatcher | null;
  /** Keys of the group must expire within this many days of their creation or change; null = no rule. */
  maxKeyLifetimeDays: number | null;
}

/** Largest values the API accepts (a limit above these is no limit at all). */
export const LIMIT_MAX = {
  rpm: 1_000_000,
  tpm: 1_000_000_000,
  maxConcurrency: 10_000,
  maxKeyLifetimeDays: 3650,
} as const;

const FIELD = { rpm: 'rpm', tpm: 'tpm', maxConcurrency: 'max_concurrency' } as const;

/**
 * Refuses (422 `limit_above_group`) values above the group's ceilings. Only the fields in
 * `changed` are judged (a key made before the group was tightened may still be renamed).
 */
export function checkWithinGroup(
  what: 'key' | 'account',
  values: Partial<LimitValues>,
  groupName: string,
  group: GroupPolicy | null,
): void {
  if (!group) return;
  for (const f of ['rpm', 'tpm', 'maxConcurrency'] as const) {
    const v = values[f];
    const ceiling = group[f];
    if (v == null || ceiling === null) continue;
    if (v > ceiling)
      throw new AppError(
        'limit_above_group',
        `${FIELD[f]}: ${v} is above the ceiling of ${ceiling} that group "${groupName}" sets for each ${what}`,
        { param: FIELD[f] },
      );
  }
}

/** Refuses (422 `limit_above_group`) a key expiry missing or beyond the group's key lifetime. */
export function checkKeyLifetime(
  expiresAt: number | null,
  now: number,
  groupName: string,
  group: GroupPolicy | null,
): void {
  const days = group?.maxKeyLifetimeDays ?? null;
  if (days === null) return;
  const latest = now + days * 86_400_000;
  if (expiresAt === null)
    throw new AppError(
      'limit_above_group',
      `expires_at: keys of group "${groupName}" must expire within ${days} days; set an expiry no later than ${new Date(latest).toISOString()}`,
      { param: 'expires_at' },
    );
  if (expiresAt > latest)
    throw new AppError(
      'limit_above_group',
      `expires_at: keys of group "${groupName}" must expire within ${days} days, by ${new Date(latest).toISOString()} at the latest`,
      { param: 'expires_at' },
    );
}

/** The limit that applies in one scope: its own value, else the group's; never above the group's. */
export function effective(
  own: number | null,
  group: number | null,
): { value: number; fromGroup: boolean } | null {
  if (own === null && group === null) return null;
  if (own === null) return { value: group!, fromGroup: true };
  if (group === null || own <= group) return { value: own, fromGroup: false };
  return { value: group, fromGroup: true };
}
