// Users, passwords, console sessions and balances. Owns the users and sessions tables.
import { createHash, randomBytes } from 'node:crypto';
import { sql, type SqlBool } from 'kysely';
import type { Db, Dialect, OnChange } from '../db/index.js';
import { containsPattern } from '../shared/like.js';
import type { UserRow } from '../db/schema.js';
import { AppError, notFound } from '../http/errors.js';
import { MAX_NANO, nanoToUsd } from '../billing/money.js';
import type { InvalidationBus } from '../shared/bus.js';
import { DUMMY_HASH, hashPassword, needsRehash, verifyPassword } from './password.js';
import { type Budget, budgetJson, thresholdsOf } from '../budgets/service.js';
import { thresholdsText } from '../budgets/input.js';
import { readIdPage } from '../shared/page.js';
import { moveCounters, storedCounter } from '../shared/counters.js';
import { budgetAndLimitColumns } from '../shared/limit-columns.js';

export const DEFAULT_GROUP = 'default';

export function toUserJson(u: UserRow) {
  return {
    id: Number(u.id),
    username: u.username,
    role: u.role,
    group: u.group_name,
    balance: nanoToUsd(Number(u.balance_nano)),
    status: u.status,
    budget: budgetJson(u.budget_nano, u.budget_period),
    alert_thresholds: thresholdsOf(u.alert_thresholds),
    /** The account's own limits over all its keys (null = its group's default, if any). */
    rpm: u.rpm_limit === null ? null : Number(u.rpm_limit),
    tpm: u.tpm_limit === null ? null : Number(u.tpm_limit),
    max_concurrency: u.max_concurrency === null ? null : Number(u.max_concurrency),
    created_at: new Date(Number(u.created_at)).toISOString(),
    updated_at: new Date(Number(u.updated_at)).toISOString(),
  };
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** A new account as createUser takes it. */
export interface NewUserFields {
  username: string;
  password: string;
  role: 'admin' | 'user';
  group: string;
  balanceNano: number;
  budget?: Budget | null;
  alertThresholds?: number[] | null;
  rpm?: number | null;
  tpm?: number | null;
  maxConcurrency?: number | null;
}

export interface UserPatch {
  role?: 'admin' | 'user';
  group?: string;
  status?: 'active' | 'disabled';
  password?: string;
  budget?: Budget | null;
  alertThresholds?: number[] | null;
  rpm?: number | null;
  tpm?: number | null;
  maxConcurrency?: number | null;
}

/** What other domains do inside an account change's transaction (wired in services.ts). */
export interface AccountHooks {
  /** The user is being deleted: their keys go with them, in the same transaction. */
  onUserDeleted(trx: Db, userId: number, now: number): Promise<void>;
}

export function createAccountsService(
  db: Db,
  bus: InvalidationBus,
  opts: {
    sessionTtlSeconds: number;
    loginMaxFailures: number;
    loginTableSize?: number;
    /** The batch's balance moves take one statement for all accounts on PostgreSQL. */
    dialect?: Dialect;
  },
  hooks: AccountHooks,
) {
  /** username|ip → failure timestamps in the last window. */
  const failures = new Map<string, number[]>();
  /** ip → failure timestamps in the last window, whatever the username (spraying). */
  const ipFailures = new Map<string, number[]>();
  const FAILURE_WINDOW_MS = 15 * 60 * 1000;
  const TABLE_SIZE = opts.loginTableSize ?? 100_000;
  const IP_MAX_FAILURES = Math.max(100, opts.loginMaxFailures * 20);

  const live = (ts: number[] | undefined, now: number) =>
    (ts ?? []).filter((t) => now - t < FAILURE_WINDOW_MS);

  /** Refuses while the username+IP pair, or the IP across usernames, has failed too often. */
  function checkThrottle(key: string, ip: string, now: number): void {
    const pair = live(failures.get(key), now);
    const byIp = live(ipFailures.get(ip), now);
    const blocked =
      pair.length >= opts.loginMaxFailures ? pair : byIp.length >= IP_MAX_FAILURES ? byIp : null;
    if (blocked) {
      const retry = Math.ceil(
        (blocked[blocked.length - (pair === blocked ? opts.loginMaxFailures : IP_MAX_FAILURES)]! +
          FAILURE_WINDOW_MS -
          now) /
          1000,
      );
      throw new AppError('login_throttled', 'too many failed sign-in attempts; try again later', {
        headers: { 'retry-after': String(Math.max(1, retry)) },
      });
    }
  }

  /**
   * Counts a failure. The tables are bounded, but filling them with new names cannot flush a
   * throttled entry out: expired entries go first, then the oldest ones still under their limit;
   * an entry at its limit stays until its window passes.
   */
  function noteFailure(key: string, ip: string, now: number): void {
    for (const [map, k, limit] of [
      [failures, key, opts.loginMaxFailures],
      [ipFailures, ip, IP_MAX_FAILURES],
    ] as const) {
      const ts = live(map.get(k), now);
      ts.push(now);
      map.delete(k);
      map.set(k, ts);
      if (map.size <= TABLE_SIZE) continue;
      const target = Math.floor(TABLE_SIZE * 0.9);
      for (const [mk, mts] of map) {
        if (map.size <= target) break;
        if (live(mts, now).length === 0) map.delete(mk);
      }
      for (const [mk, mts] of map) {
        if (map.size <= target) break;
        if (mk !== k && live(mts, now).length < limit) map.delete(mk);
      }
    }
  }

  /** The attempt counted at `now` succeeded: it is no failure, for the pair or the address. */
  function forgive(key: string, ip: string, now: number): void {
    failures.delete(key);
    const ts = ipFailures.get(ip);
    const i = ts ? ts.lastIndexOf(now) : -1;
    if (i >= 0) ts!.splice(i, 1);
    if (ts && ts.length === 0) ipFailures.delete(ip);
  }

  /** Live (not deleted) users; inside a transaction, read through its `trx` (SQLite's single connection needs it). */
  const liveUsers = (exec: Db = db) => exec.selectFrom('users').selectAll().where('deleted_at', 'is', null);

  /** A live user (see liveUsers). */
  async function getUser(id: number, exec: Db = db): Promise<UserRow | undefined> {
    return liveUsers(exec).where('id', '=', id).executeTakeFirst();
  }

  async function requireUser(id: number, exec: Db = db): Promise<UserRow> {
    const u = await getUser(id, exec);
    if (!u) throw notFound('user');
    return u;
  }

  return {
    getUser,
    requireUser,

    async createUser(
      input: NewUserFields,
      /** Runs in the creation's transaction (the audit row): when it throws, no user exists. */
      onCreated?: OnChange<UserRow>,
    ): Promise<UserRow> {
      const taken = () => new AppError('conflict', 'username already taken', { param: 'username' });
      const exists = await db
        .selectFrom('users')
        .select('id')
        .where('username', '=', input.username)
        .executeTakeFirst();
      if (exists) throw taken();
      const passwordHash = await hashPassword(input.password);
      const now = Date.now();
      return db
        .transaction()
        .execute(async (trx) => {
          const row = await trx
            .insertInto('users')
            .values({
              username: input.username,
              password_hash: passwordHash,
              role: input.role,
              group_name: input.group,
              balance_nano: input.balanceNano,
              budget_nano: input.budget?.amountNano ?? null,
              budget_period: input.budget?.period ?? null,
              alert_thresholds: thresholdsText(input.alertThresholds ?? null),
              status: 'active',
              created_at: now,
              updated_at: now,
              deleted_at: null,
              rpm_limit: input.rpm ?? null,
              tpm_limit: input.tpm ?? null,
              max_concurrency: input.maxConcurrency ?? null,
            })
            .returningAll()
            .executeTakeFirstOrThrow();
          await onCreated?.(trx, row);
          return row;
        })
        .catch((e: unknown) => {
          // Two concurrent creations of one name: the unique index decides.
          if (/unique|duplicate/i.test(String((e as Error).message))) throw taken();
          throw e;
        });
    },

    async listUsers(q: { limit: number; cursor?: number; q?: string; onlyId?: number }) {
      let query = liveUsers();
      if (q.onlyId !== undefined) query = query.where('id', '=', q.onlyId);
      if (q.q) query = query.where(sql<SqlBool>`lower(username) like ${containsPattern(q.q)} escape '\\'`);
      return readIdPage(query, q, toUserJson);
    },

    /**
     * Applies a patch; returns the old and new rows. `onUpdated` runs in the same transaction
     * (the audit row): when it throws, nothing changes.
     */
    async updateUser(
      id: number,
      patch: UserPatch,
      onUpdated?: OnChange<{ before: UserRow; after: UserRow }>,
    ): Promise<{ before: UserRow; after: UserRow }> {
      await requireUser(id);
      const set: Partial<UserRow> = { updated_at: Date.now(), ...budgetAndLimitColumns(patch) };
      if (patch.role !== undefined) set.role = patch.role;
      if (patch.group !== undefined) set.group_name = patch.group;
      if (patch.status !== undefined) set.status = patch.status;
      if (patch.password !== undefined) set.password_hash = await hashPassword(patch.password);
      if (patch.alertThresholds !== undefined) set.alert_thresholds = thresholdsText(patch.alertThresholds);
      const result = await db.transaction().execute(async (trx) => {
        const before = await requireUser(id, trx);
        const after = await trx
          .updateTable('users')
          .set(set)
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow();
        if (patch.status === 'disabled' || patch.password !== undefined) {
          await trx.deleteFrom('sessions').where('user_id', '=', id).execute();
        }
        await onUpdated?.(trx, { before, after });
        return { before, after };
      });
      bus.publish({ kind: 'user', userId: id });
      return result;
    },

    /**
     * Holds the user's row lock until `trx` ends (PostgreSQL; SQLite takes its write lock):
     * serialises work per owner, such as checking a cap and then inserting under it.
     */
    async lock(trx: Db, id: number): Promise<void> {
      await trx
        .updateTable('users')
        .set((eb) => ({ updated_at: eb.ref('updated_at') }))
        .where('id', '=', id)
        .execute();
    },

    /** Soft delete: logs keep their attribution; the name becomes free again. */
    async deleteUser(id: number, onDeleted?: OnChange<UserRow>): Promise<UserRow> {
      const before = await requireUser(id);
      const now = Date.now();
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable('users')
          .set({
            deleted_at: now,
            updated_at: now,
            status: 'disabled',
            username: `${before.username}#deleted#${id}`,
          })
          .where('id', '=', id)
          .execute();
        await hooks.onUserDeleted(trx, id, now);
        await trx.deleteFrom('sessions').where('user_id', '=', id).execute();
        await onDeleted?.(trx, before);
      });
      bus.publish({ kind: 'user', userId: id });
      return before;
    },

    /**
     * Credits (or, negative, debits) a balance; relative update so batched spend is never
     * overwritten. `onToppedUp` runs in the same transaction (the audit row).
     */
    async topup(id: number, amountNano: number, onToppedUp?: OnChange<UserRow>): Promise<UserRow> {
      const user = await requireUser(id);
      const next = Number(user.balance_nano) + amountNano;
      // A mistyped debit (-100000 for -100) must not leave a debt: refused, not clamped.
      if (amountNano < 0 && next < 0)
        throw new AppError(
          'validation_error',
          `a debit may not take the balance below zero: it is ${nanoToUsd(Number(user.balance_nano))} USD`,
          { param: 'amount' },
        );
      if (next > MAX_NANO)
        throw new AppError('validation_error', 'balance would exceed the largest amount the ledger holds', {
          param: 'amount',
        });
      const after = await db.transaction().execute(async (trx) => {
        await trx
          .updateTable('users')
          .set((eb) => ({ balance_nano: eb('balance_nano', '+', amountNano), updated_at: Date.now() }))
          .where('id', '=', id)
          .execute();
        const row = await requireUser(id, trx);
        await onToppedUp?.(trx, row);
        return row;
      });
      bus.publish({ kind: 'user', userId: id });
      return after;
    },

    balanceNano: (id: number) => storedCounter(db, 'users', 'balance_nano', id),

    /** Batched by the ledger: spend per user as relative updates, inside its transaction. */
    subtractSpend: (trx: Db, spend: Map<number, number>) =>
      moveCounters(trx, 'users', 'balance_nano', '-', spend, opts.dialect),

    /** Checks a password with throttling per username+IP. Returns the user or throws. */
    async login(
      username: string,
      password: string,
      ip: string,
    ): Promise<{ user: UserRow; token: string; csrfToken: string }> {
      const throttleKey = `${username.toLowerCase()}|${ip}`;
      const now = Date.now();
      checkThrottle(throttleKey, ip, now);
      // Count the attempt as a failure before checking it, so concurrent guesses (each awaiting
      // the password hash) all see each other and cannot slip past the limit together.
      noteFailure(throttleKey, ip, now);
      const user = await liveUsers().where('username', '=', username).executeTakeFirst();
      const ok = await verifyPassword(password, user?.password_hash ?? DUMMY_HASH);
      if (!user || !ok || user.status !== 'active') {
        throw new AppError('login_failed', 'wrong username or password, or the account is disabled');
      }
      forgive(throttleKey, ip, now);
      // An imported bcrypt hash works once more, then is replaced by our own scrypt hash.
      if (needsRehash(user.password_hash))
        await db
          .updateTable('users')
          .set({ password_hash: await hashPassword(password) })
          .where('id', '=', user.id)
          .where('password_hash', '=', user.password_hash)
          .execute();
      const token = randomBytes(32).toString('base64url');
      const csrfToken = randomBytes(24).toString('base64url');
      await db
        .insertInto('sessions')
        .values({
          token_hash: sha256(token),
          user_id: Number(user.id),
          csrf_token: csrfToken,
          created_at: now,
          expires_at: now + opts.sessionTtlSeconds * 1000,
        })
        .execute();
      await db.deleteFrom('sessions').where('expires_at', '<', now).execute();
      return { user, token, csrfToken };
    },

    /**
     * The user's current password, checked with the same throttle as sign-in (a stolen
     * session cannot guess it faster than a login could).
     */
    async checkPassword(userId: number, password: string, ip: string): Promise<boolean> {
      const user = await requireUser(userId);
      const throttleKey = `${user.username.toLowerCase()}|${ip}`;
      const now = Date.now();
      checkThrottle(throttleKey, ip, now);
      noteFailure(throttleKey, ip, now);
      if (!(await verifyPassword(password, user.password_hash))) return false;
      forgive(throttleKey, ip, now);
      return true;
    },

    async session(token: string): Promise<{ user: UserRow; csrfToken: string; tokenHash: string } | null> {
      if (!token || token.length > 200) return null;
      const tokenHash = sha256(token);
      const s = await db
        .selectFrom('sessions')
        .selectAll()
        .where('token_hash', '=', tokenHash)
        .executeTakeFirst();
      if (!s || Number(s.expires_at) < Date.now()) return null;
      const user = await getUser(Number(s.user_id));
      if (user?.status !== 'active') return null;
      return { user, csrfToken: s.csrf_token, tokenHash };
    },

    async logout(tokenHash: string): Promise<void> {
      await db.deleteFrom('sessions').where('token_hash', '=', tokenHash).execute();
    },
  };
}

export type AccountsService = ReturnType<typeof createAccountsService>;
