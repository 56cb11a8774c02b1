// What a caller of the management API may do with keys (contract §3), as plain functions of
// a Principal: owner resolution (users act on their own keys only; another user's key is
// "not found"), the group rule, the admin lock, and the audit row, written in the same
// transaction as the change. The routes only validate input and call these.
import type { AccountsService } from '../accounts/service.js';
import type { AuditService } from '../audit/service.js';
import { AppError } from '../http/errors.js';
import { actorOf, isAdmin, type Principal, scopedUserId, selfId, userOf } from '../http/principal.js';
import { type Budget, budgetOf } from '../budgets/service.js';
import { checkWithinGroup as checkBudgetWithinGroup } from '../budgets/input.js';
import type { ApiKeyRow } from '../db/schema.js';
import { checkKeyLifetime, checkWithinGroup, type GroupPolicy } from '../limits/policy.js';
import { type KeyFields, type KeyListQuery, type KeysService, keyChanges, toKeyJson } from './service.js';
import { type EphemeralKeys, toEphemeralJson } from './ephemeral.js';
import { compileModelList } from './models.js';
import { compileOrigins, normaliseOrigins } from './origins.js';

/** What `POST /v1/keys/ephemeral` asks for (validated at the edge; amounts in nano-USD). */
export interface EphemeralRequest {
  ttlSeconds: number;
  models?: string[] | undefined;
  maxCostNano?: number | undefined;
  allowedOrigins?: string[] | undefined;
}

/** Whether a model pattern (a name, or a prefix ending in "*") asks for nothing beyond `list` (null = anything). */
function modelPatternCovered(list: string[] | null, entry: string): boolean {
  if (list === null) return true;
  if (!entry.endsWith('*')) return compileModelList(list)!.allows(entry);
  const prefix = entry.slice(0, -1);
  return list.some((p) => p.endsWith('*') && prefix.startsWith(p.slice(0, -1)));
}

/** The relay key a principal is (the kill switch and minting are the key's own acts). */
function keyPrincipal(p: Principal): Extract<Principal, { kind: 'key' }> {
  if (p.kind !== 'key') throw new AppError('forbidden', 'only a relay key can do this, for itself');
  return p;
}

/** Where the request came from, for the audit trail. */
export interface Caller {
  principal: Principal;
  ip: string;
}

export type KeyPatch = KeyFields & { status?: 'active' | 'disabled' };

/** A user may not move a key into another group (that would change its prices and models). */
function checkGroupAllowed(principal: Principal, group: string | null | undefined) {
  if (group == null || isAdmin(principal)) return;
  if (group !== userOf(principal)?.group_name)
    throw new AppError('forbidden', 'only an admin can put a key in another group', { param: 'group' });
}

/** The owner a principal is limited to: null for admins and the master key (every key). */
const ownerScope = (p: Principal) => (isAdmin(p) ? null : selfId(p));

export function createKeyActions(deps: {
  keys: KeysService;
  accounts: Pick<AccountsService, 'requireUser'>;
  audit: Pick<AuditService, 'record'>;
  ephemeral: EphemeralKeys;
  /** A group's limits and key lifetime (null = a group without a policy). */
  groups: { group(name: string): GroupPolicy | null };
  /** Persists pending usage, so reads show the latest spend and last use. */
  flush: () => Promise<void>;
  /** A group's default budget (billing's catalog). */
  groupBudget?: (group: string) => Budget | null;
  /** The key's own budget against its spend this period (budgets/). */
  budgetUsage?: (keyId: number, budget: Budget) => Promise<unknown>;
}) {
  const { keys, audit, ephemeral } = deps;

  /**
   * 422 limit_above_group when the key's budget (as it will be) is above its group's default.
   * `row` is the key before the change (absent on create).
   */
  async function checkBudget(userId: number, fields: KeyFields, row?: ApiKeyRow): Promise<void> {
    if (!deps.groupBudget || (fields.budget === undefined && fields.group === undefined)) return;
    const budget =
      fields.budget !== undefined ? fields.budget : row ? budgetOf(row.budget_nano, row.budget_period) : null;
    if (!budget) return;
    const group =
      (fields.group !== undefined ? fields.group : (row?.group_name ?? null)) ??
      (await deps.accounts.requireUser(userId)).group_name;
    checkBudgetWithinGroup(budget, deps.groupBudget(group), group);
  }

  /** Whose key a new one is: the caller's, or (admins only) the one named. */
  async function ownerForNewKey(principal: Principal, userId: number | undefined): Promise<number> {
    if (isAdmin(principal)) {
      if (userId !== undefined) return Number((await deps.accounts.requireUser(userId)).id);
      if (principal.kind !== 'session')
        throw new AppError('validation_error', 'user_id: required with the master key', { param: 'user_id' });
      return principal.user.id;
    }
    if (userId !== undefined && userId !== selfId(principal))
      throw new AppError('not_found', 'user not found', { param: 'user_id' });
    return selfId(principal)!;
  }

  /**
   * Whether a change is an admin's on someone else's key: their disable locks the key, and
   * only an admin unlocks it. An admin acting on a key of their own is its owner here.
   */
  async function actsAsAdmin(principal: Principal, id: number): Promise<boolean> {
    if (!isAdmin(principal)) return false;
    const user = userOf(principal);
    if (!user) return true;
    return Number((await keys.requireKey(id)).user_id) !== Number(user.id);
  }

  /**
   * A key must keep within its group's ceilings (rpm, tpm, max_concurrency) and key lifetime:
   * 422 `limit_above_group`. Judged on what a change sets, and on everything when the key
   * moves to another group.
   */
  async function checkGroupCeilings(
    userId: number,
    fields: KeyFields,
    before: { group: string; groupByAdmin: boolean; row: KeyFields } | null,
  ) {
    const ownerGroup = (await deps.accounts.requireUser(userId)).group_name;
    const was = before ? (before.groupByAdmin && before.group ? before.group : ownerGroup) : null;
    const group = fields.group !== undefined ? (fields.group ?? ownerGroup) : (was ?? ownerGroup);
    const policy = deps.groups.group(group);
    if (!policy) return;
    const moved = was !== group;
    // What the change sets (a value sent unchanged is no change), or everything when the key moves.
    const pick = <K extends 'rpm' | 'tpm' | 'maxConcurrency' | 'expiresAt'>(k: K) =>
      moved
        ? fields[k] !== undefined
          ? fields[k]
          : before?.row[k]
        : fields[k] !== undefined && (!before || fields[k] !== before.row[k])
          ? fields[k]
          : undefined;
    checkWithinGroup(
      'key',
      { rpm: pick('rpm'), tpm: pick('tpm'), maxConcurrency: pick('maxConcurrency') },
      group,
      policy,
    );
    const expiresAt = pick('expiresAt');
    if (expiresAt !== undefined || !before) checkKeyLifetime(expiresAt ?? null, keys.now(), group, policy);
  }

  return {
    async create(
      { principal, ip }: Caller,
      input: { userId?: number; fields: KeyFields & { name: string } },
    ) {
      const userId = await ownerForNewKey(principal, input.userId);
      checkGroupAllowed(principal, input.fields.group);
      await checkGroupCeilings(userId, input.fields, null);
      const fields = { ...input.fields, groupByAdmin: isAdmin(principal) };
      await checkBudget(userId, fields);
      const { row, secret } = await keys.create(userId, fields, async (trx, created) => {
        const json = toKeyJson(created, keys.now());
        await audit.record(
          {
            actor: actorOf(principal),
            action: 'key.create',
            keyId: json.id,
            userId,
            ip,
            changes: {
              name: json.name,
              display: json.display,
              models: json.models,
              allowed_ips: json.allowed_ips,
              allowed_origins: json.allowed_origins,
              quota: json.quota,
              group: json.group,
              rpm: json.rpm,
              guard: json.guard,
              budget: json.budget,
              alert_thresholds: json.alert_thresholds,
              tpm: json.tpm,
              max_concurrency: json.max_concurrency,
              expires_at: json.expires_at,
            },
          },
          trx,
        );
      });
      return { ...toKeyJson(row, keys.now()), key: secret };
    },

    async list(principal: Principal, query: Omit<KeyListQuery, 'userId'> & { userId?: number | undefined }) {
      await deps.flush();
      const { userId, ...rest } = query;
      const owner = scopedUserId(principal, userId);
      return keys.list({ ...rest, ...(owner !== undefined ? { userId: owner } : {}) });
    },

    async get(principal: Principal, id: number) {
      await deps.flush();
      const row = await keys.requireKey(id, ownerScope(principal));
      const json = toKeyJson(row, keys.now());
      const budget = budgetOf(row.budget_nano, row.budget_period);
      const usage = budget && deps.budgetUsage ? await deps.budgetUsage(json.id, budget) : null;
      return { ...json, ...(usage ? { budget_usage: usage } : {}) };
    },

    async update({ principal, ip }: Caller, id: number, patch: KeyPatch) {
      checkGroupAllowed(principal, patch.group);
      // A group an admin granted is the admin's to change: its owner can neither swap nor clear it.
      if (
        patch.group !== undefined &&
        !isAdmin(principal) &&
        Number((await keys.requireKey(id, ownerScope(principal))).group_by_admin) === 1
      )
        throw new AppError('forbidden', 'only an admin can change a group an admin gave this key', {
          param: 'group',
        });
      const current = await keys.requireKey(id, ownerScope(principal));
      await checkGroupCeilings(Number(current.user_id), patch, {
        group: current.group_name ?? '',
        groupByAdmin: Number(current.group_by_admin) === 1,
        row: {
          rpm: current.rpm_limit === null ? null : Number(current.rpm_limit),
          tpm: current.tpm_limit === null ? null : Number(current.tpm_limit),
          maxConcurrency: current.max_concurrency === null ? null : Number(current.max_concurrency),
          expiresAt: current.expires_at === null ? null : Number(current.expires_at),
        },
      });
      const byAdmin = await actsAsAdmin(principal, id);
      const fields = { ...patch, groupByAdmin: isAdmin(principal) };
      if (patch.budget !== undefined || patch.group !== undefined) {
        const row = await keys.requireKey(id, ownerScope(principal));
        await checkBudget(Number(row.user_id), fields, row);
      }
      await keys.update(id, ownerScope(principal), fields, byAdmin, async (trx, { before, after }) => {
        const { status, ...fieldChanges } = keyChanges(before, after);
        const entry = { actor: actorOf(principal), keyId: id, userId: Number(after.user_id), ip };
        if (status) {
          const action = after.status === 'active' ? 'key.enable' : 'key.disable';
          await audit.record({ ...entry, action, changes: { status } }, trx);
        }
        // A patch that changed nothing (a second disable) leaves no row saying nothing.
        if (Object.keys(fieldChanges).length > 0)
          await audit.record({ ...entry, action: 'key.update', changes: fieldChanges }, trx);
      });
      await deps.flush();
      return toKeyJson(await keys.requireKey(id), keys.now());
    },

    async rotate({ principal, ip }: Caller, id: number, graceSeconds: number) {
      const { secret } = await keys.rotate(
        id,
        ownerScope(principal),
        graceSeconds,
        async (trx, { before, after: row }) => {
          await audit.record(
            {
              actor: actorOf(principal),
              action: 'key.rotate',
              keyId: id,
              userId: Number(row.user_id),
              ip,
              changes: { display: { from: before.display, to: row.display }, grace_seconds: graceSeconds },
            },
            trx,
          );
        },
      );
      await deps.flush();
      return { ...toKeyJson(await keys.requireKey(id), keys.now()), key: secret };
    },

    /**
     * `POST /v1/keys/ephemeral`: a key mints a short-lived key that can do no more than it
     * (models and origins within its own, expiry within its own) and bills to it.
     */
    async mintEphemeral({ principal }: Caller, input: EphemeralRequest) {
      const p = keyPrincipal(principal);
      if (p.ephemeralId !== null)
        throw new AppError('forbidden', 'an ephemeral key cannot mint keys; mint with its parent key');
      const parent = await keys.requireKey(p.keyId);
      const now = keys.now();
      const expiresAt = now + input.ttlSeconds * 1000;
      // Nor may it outlive the secret that minted it: one rotated out works only until its grace ends.
      const ends = [
        ...(parent.expires_at !== null ? [{ at: Number(parent.expires_at), what: 'this key expires' }] : []),
        ...(p.graceUntil !== null
          ? [{ at: p.graceUntil, what: 'this rotated-out secret stops working' }]
          : []),
      ];
      for (const end of ends)
        if (expiresAt > end.at)
          throw new AppError(
            'invalid_request',
            `ttl_seconds: ${end.what} at ${new Date(end.at).toISOString()}; an ephemeral key cannot outlive it (at most ${Math.max(0, Math.floor((end.at - now) / 1000))} seconds)`,
            { param: 'ttl_seconds' },
          );
      const parentModels = parent.models === null ? null : (JSON.parse(parent.models) as string[]);
      let models: string[] | null = null;
      if (input.models !== undefined) {
        models = [...new Set(input.models)];
        const outside = models.findIndex((m) => !modelPatternCovered(parentModels, m));
        if (outside >= 0)
          throw new AppError('model_not_allowed', `models: entry ${outside} is outside this key's models`, {
            param: 'models',
          });
      }
      let origins: string[] | null = null;
      if (input.allowedOrigins !== undefined) {
        const r = normaliseOrigins(input.allowedOrigins);
        if (!r.ok)
          throw new AppError('invalid_request', `allowed_origins: ${r.error}`, { param: 'allowed_origins' });
        origins = r.value;
        const parentOrigins = compileOrigins(
          parent.allowed_origins == null ? [] : (JSON.parse(parent.allowed_origins) as string[]),
        );
        // A parent that lists origins bounds its children; one that lists none leaves them their own.
        const outside =
          parentOrigins.entries.length === 0 ? -1 : origins.findIndex((o) => !parentOrigins.covers(o));
        if (outside >= 0)
          throw new AppError(
            'browser_origin_not_allowed',
            `allowed_origins: entry ${outside} is outside this key's allowed origins`,
            { param: 'allowed_origins' },
          );
      }
      const { row, secret } = await ephemeral.mint(
        { id: Number(parent.id), userId: Number(parent.user_id), keyHash: parent.key_hash },
        {
          models,
          allowedOrigins: origins,
          maxCostNano: input.maxCostNano ?? null,
          createdAt: now,
          expiresAt,
        },
      );
      return { ...toEphemeralJson(row, now), key: secret };
    },

    /**
     * `POST /v1/key/revoke`, the kill switch: the presenting key switches itself off and locks
     * (only an admin can enable it again); an ephemeral key revokes just itself. Audited as
     * `key.revoke`.
     */
    async revokeSelf({ principal, ip }: Caller) {
      const p = keyPrincipal(principal);
      const entry = { actor: actorOf(p), action: 'key.revoke', keyId: p.keyId, userId: p.userId, ip };
      if (p.ephemeralId !== null) {
        const row = await ephemeral.revoke(p.ephemeralId, async (trx, revoked) => {
          await audit.record(
            { ...entry, changes: { ephemeral_id: Number(revoked.id), display: revoked.display } },
            trx,
          );
        });
        return toEphemeralJson(row, keys.now());
      }
      // Disabled as an admin would: locked, so its owner cannot switch it back on.
      await keys.update(p.keyId, p.userId, { status: 'disabled' }, true, async (trx, { before, after }) => {
        await audit.record(
          { ...entry, changes: { status: { from: before.status, to: after.status }, locked: true } },
          trx,
        );
      });
      await deps.flush();
      return toKeyJson(await keys.requireKey(p.keyId), keys.now());
    },

    async remove({ principal, ip }: Caller, id: number) {
      await deps.flush();
      const before = await keys.remove(id, ownerScope(principal), async (trx, { before: removed }) => {
        await audit.record(
          {
            actor: actorOf(principal),
            action: 'key.delete',
            keyId: id,
            userId: Number(removed.user_id),
            ip,
            changes: { name: removed.name, display: removed.display },
          },
          trx,
        );
      });
      return { ...toKeyJson(before, keys.now()), deleted: true };
    },
  };
}

export type KeyActions = ReturnType<typeof createKeyActions>;
