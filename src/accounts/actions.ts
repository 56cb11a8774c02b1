// What a caller of the management API may do with accounts (contract §3), as plain functions
// of a Principal: sign-in and sessions, user administration, passwords and top-ups. Owner
// resolution (a user sees and changes only themself; anyone else is "not found"), the admin
// checks, and the audit row, written in the same transaction as the change. The routes only
// validate input and call these.
import type { AuditService } from '../audit/service.js';
import type { UserRow } from '../db/schema.js';
import { AppError, notFound } from '../http/errors.js';
import { actorOf, isAdmin, type Principal, selfId } from '../http/principal.js';
import { checkWithinGroup, type GroupPolicy } from '../limits/policy.js';
import { type AccountsService, type NewUserFields, toUserJson, type UserPatch } from './service.js';
import { type Budget, budgetOf } from '../budgets/service.js';

/** Who asks, and from where (for the audit trail and the password throttle). */
export interface Caller {
  principal: Principal;
  ip: string;
}

export interface NewUser extends NewUserFields {
  /** The balance as the caller wrote it (USD), for the audit trail. */
  balanceUsd: number;
}

export type UserUpdate = UserPatch & { currentPassword?: string };

export function createAccountActions(deps: {
  accounts: AccountsService;
  audit: Pick<AuditService, 'record'>;
  /** The shared ledger counter follows a top-up (ledger.credit). */
  ledger: { credit(userId: number, amountNano: number): Promise<void> };
  /** Keys whose group the owner pinned follow the owner to a new group. */
  keys: { releaseOwnerPins(userId: number): Promise<void> };
  /** Persists pending usage, so reads show the latest balance. */
  flush: () => Promise<void>;
  /** The account's budget against its spend this period (budgets/). */
  budgetUsage?: (userId: number, budget: Budget) => Promise<unknown>;
  /** A group's ceilings for its accounts' limits (null = a group without a policy). */
  groups: { group(name: string): GroupPolicy | null };
}) {
  const { accounts, audit } = deps;

  /** What a user row says about limits, in audit terms. */
  const limitChanges = (before: UserRow | null, after: UserRow) => {
    const out: Record<string, unknown> = {};
    for (const [col, name] of [
      ['rpm_limit', 'rpm'],
      ['tpm_limit', 'tpm'],
      ['max_concurrency', 'max_concurrency'],
    ] as const) {
      const a = before === null ? null : before[col];
      if (before === null ? after[col] !== null : a !== after[col]) out[name] = { from: a, to: after[col] };
    }
    return out;
  };

  /** A user may act on themself only; anyone else does not exist for them. */
  function requireSelfOrAdmin(principal: Principal, id: number) {
    if (!isAdmin(principal) && id !== selfId(principal)) throw notFound('user');
  }

  return {
    login: (username: string, password: string, ip: string) => accounts.login(username, password, ip),

    async session(principal: Principal) {
      if (principal.kind !== 'session') return { user: null, csrf_token: null, master: true };
      await deps.flush();
      return { user: toUserJson(principal.user), csrf_token: principal.csrfToken };
    },

    async logout(principal: Principal) {
      if (principal.kind === 'session') await accounts.logout(principal.tokenHash);
      return { ok: true };
    },

    async create({ principal, ip }: Caller, input: NewUser) {
      const { balanceUsd, ...fields } = input;
      checkWithinGroup('account', fields, fields.group, deps.groups.group(fields.group));
      const user = await accounts.createUser(fields, (trx, row) =>
        audit.record(
          {
            actor: actorOf(principal),
            action: 'user.create',
            userId: Number(row.id),
            ip,
            changes: {
              username: row.username,
              role: row.role,
              group: row.group_name,
              balance: balanceUsd,
              ...(row.budget_nano !== null ? { budget: toUserJson(row).budget } : {}),
              ...limitChanges(null, row),
            },
          },
          trx,
        ),
      );
      return toUserJson(user);
    },

    async list(principal: Principal, query: { limit: number; cursor?: number; q?: string }) {
      await deps.flush();
      return accounts.listUsers({ ...query, ...(isAdmin(principal) ? {} : { onlyId: selfId(principal)! }) });
    },

    async get(principal: Principal, id: number) {
      requireSelfOrAdmin(principal, id);
      await deps.flush();
      const row = await accounts.requireUser(id);
      const budget = budgetOf(row.budget_nano, row.budget_period);
      const usage = budget && deps.budgetUsage ? await deps.budgetUsage(id, budget) : null;
      return { ...toUserJson(row), ...(usage ? { budget_usage: usage } : {}) };
    },

    /**
     * Role, group and status are an admin's; a password is anyone's own (signed in, they give
     * the current one: a borrowed session cannot change it).
     */
    async update({ principal, ip }: Caller, id: number, update: UserUpdate) {
      const { currentPassword, ...patch } = update;
      // A token acting for its owner is held to the same rule as the owner's session.
      if (patch.password !== undefined && principal.kind !== 'master' && id === selfId(principal)) {
        if (currentPassword === undefined)
          throw new AppError('validation_error', 'current_password: required to change your own password', {
            param: 'current_password',
          });
        if (!(await accounts.checkPassword(id, currentPassword, ip)))
          throw new AppError('forbidden', 'the current password is wrong', { param: 'current_password' });
      }
      if (!isAdmin(principal)) {
        if (id !== selfId(principal)) throw notFound('user');
        if (
          patch.role !== undefined ||
          patch.group !== undefined ||
          patch.status !== undefined ||
          patch.budget !== undefined ||
          patch.rpm !== undefined ||
          patch.tpm !== undefined ||
          patch.maxConcurrency !== undefined
        )
          throw new AppError('forbidden', 'only an admin can change role, group, status, limits or budget');
      }
      if (
        patch.group !== undefined ||
        patch.rpm !== undefined ||
        patch.tpm !== undefined ||
        patch.maxConcurrency !== undefined
      ) {
        // The account keeps within its group's ceilings: what this change sets, and all of it
        // when it moves to another group.
        const current = await accounts.requireUser(id);
        const group = patch.group ?? current.group_name;
        const moved = group !== current.group_name;
        const pick = (v: number | null | undefined, stored: number | null) => {
          const was = stored === null ? null : Number(stored);
          if (moved) return v !== undefined ? v : was;
          return v !== undefined && v !== was ? v : undefined;
        };
        checkWithinGroup(
          'account',
          {
            rpm: pick(patch.rpm, current.rpm_limit),
            tpm: pick(patch.tpm, current.tpm_limit),
            maxConcurrency: pick(patch.maxConcurrency, current.max_concurrency),
          },
          group,
          deps.groups.group(group),
        );
      }
      const { before, after } = await accounts.updateUser(id, patch, (trx, { before, after }) => {
        const changes: Record<string, unknown> = {};
        if (before.role !== after.role) changes.role = { from: before.role, to: after.role };
        if (before.group_name !== after.group_name)
          changes.group = { from: before.group_name, to: after.group_name };
        if (before.status !== after.status) changes.status = { from: before.status, to: after.status };
        for (const f of ['budget', 'alert_thresholds'] as const) {
          const [a, b] = [toUserJson(before)[f], toUserJson(after)[f]];
          if (JSON.stringify(a) !== JSON.stringify(b)) changes[f] = { from: a, to: b };
        }
        Object.assign(changes, limitChanges(before, after));
        if (patch.password !== undefined) changes.password = 'changed';
        return audit.record(
          { actor: actorOf(principal), action: 'user.update', userId: id, ip, changes },
          trx,
        );
      });
      if (before.group_name !== after.group_name) await deps.keys.releaseOwnerPins(id);
      return toUserJson(after);
    },

    async remove({ principal, ip }: Caller, id: number) {
      if (selfId(principal) === id) throw new AppError('forbidden', 'you cannot delete yourself');
      const before = await accounts.deleteUser(id, (trx, row) =>
        audit.record(
          {
            actor: actorOf(principal),
            action: 'user.delete',
            userId: id,
            ip,
            changes: { username: row.username },
          },
          trx,
        ),
      );
      return { ...toUserJson(before), deleted: true };
    },

    /** `amountUsd` is the amount as the caller wrote it, for the audit trail. */
    async topup({ principal, ip }: Caller, id: number, amountNano: number, amountUsd: number) {
      const after = await accounts.topup(id, amountNano, (trx, row) =>
        audit.record(
          {
            actor: actorOf(principal),
            action: 'user.topup',
            userId: id,
            ip,
            changes: { amount: amountUsd, balance: toUserJson(row).balance },
          },
          trx,
        ),
      );
      await deps.ledger.credit(id, amountNano);
      return toUserJson(after);
    },
  };
}

export type AccountActions = ReturnType<typeof createAccountActions>;
