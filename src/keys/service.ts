// The key lifecycle: create (secret shown once), list, update, enable/disable, rotate with a
// grace period, delete (row kept so logs keep their attribution). Owns the api_keys table.
import { sql, type SqlBool } from 'kysely';
import type { AccountsService } from '../accounts/service.js';
import type { Db, Dialect, OnChange } from '../db/index.js';
import type { ApiKeyRow, ApiKeyUpdate, NewApiKey } from '../db/schema.js';
import { AppError, notFound } from '../http/errors.js';
import { nanoToUsd } from '../billing/money.js';
import { type Guard, guardToJson, readGuard, storeGuard } from '../billing/guard.js';
import type { InvalidationBus } from '../shared/bus.js';
import { displayKey, generateKey, hashKey } from './format.js';
import { revokeChildren } from './ephemeral.js';
import { type Clock, systemClock } from '../shared/clock.js';
import { containsPattern } from '../shared/like.js';
import { type Budget, budgetJson, thresholdsOf } from '../budgets/service.js';
import { thresholdsText } from '../budgets/input.js';
import { readIdPage } from '../shared/page.js';
import { moveCounters, storedCounter } from '../shared/counters.js';
import { budgetAndLimitColumns } from '../shared/limit-columns.js';

export type KeyStatus = 'active' | 'disabled' | 'expired' | 'exhausted';

export function derivedStatus(
  row: Pick<ApiKeyRow, 'status' | 'expires_at' | 'quota_nano' | 'used_nano'>,
  now = Date.now(),
): KeyStatus {
  if (row.status !== 'active') return 'disabled';
  if (row.expires_at !== null && Number(row.expires_at) <= now) return 'expired';
  if (row.quota_nano !== null && Number(row.used_nano) >= Number(row.quota_nano)) return 'exhausted';
  return 'active';
}

const keyGuard = (row: Pick<ApiKeyRow, 'guard'>) => {
  const g = readGuard(row.guard);
  return g === null ? null : guardToJson(g);
};

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

export function toKeyJson(row: ApiKeyRow, now = Date.now()) {
  const quota = row.quota_nano === null ? null : Number(row.quota_nano);
  const used = Number(row.used_nano);
  return {
    id: Number(row.id),
    name: row.name,
    user_id: Number(row.user_id),
    status: derivedStatus(row, now),
    display: row.display,
    models: row.models === null ? null : (JSON.parse(row.models) as string[]),
    allowed_ips: row.allowed_ips === null ? null : (JSON.parse(row.allowed_ips) as string[]),
    /** Browser origins whose requests this key serves (empty: none). */
    allowed_origins: row.allowed_origins == null ? [] : (JSON.parse(row.allowed_origins) as string[]),
    quota: quota === null ? null : nanoToUsd(quota),
    used: nanoToUsd(used),
    remaining: quota === null ? null : nanoToUsd(Math.max(0, quota - used)),
    group: row.group_name,
    rpm: row.rpm_limit === null ? null : Number(row.rpm_limit),
    /** The key's own anomaly guard (its group's applies as well); null = none. */
    guard: keyGuard(row),
    budget: budgetJson(row.budget_nano, row.budget_period),
    alert_thresholds: thresholdsOf(row.alert_thresholds),
    tpm: row.tpm_limit === null ? null : Number(row.tpm_limit),
    max_concurrency: row.max_concurrency === null ? null : Number(row.max_concurrency),
    /** Disabled by an admin: only an admin can enable it. */
    locked: Number(row.admin_locked) === 1,
    expires_at: iso(row.expires_at),
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
    last_used_at: iso(row.last_used_at),
    last_used_ip: row.last_used_ip,
    /** When the secret was last rotated; null = never. */
    rotated_at: iso(row.rotated_at ?? null),
  };
}
export type KeyJson = ReturnType<typeof toKeyJson>;

export interface KeyFields {
  name?: string;
  models?: string[] | null;
  allowedIps?: string[] | null;
  /** Normalised (keys/origins.ts); empty = no browser origin. */
  allowedOrigins?: string[];
  quotaNano?: number | null;
  expiresAt?: number | null;
  group?: string | null;
  /** Who sets `group`: an admin's group is a grant; an owner's can only be their own group and follows them. */
  groupByAdmin?: boolean;
  rpm?: number | null;
  guard?: Guard | null;
  budget?: Budget | null;
  alertThresholds?: number[] | null;
  tpm?: number | null;
  maxConcurrency?: number | null;
}

/** A key's row as created: active, nothing spent, none of the optional settings yet. */
export function newKeyRow(
  key: { userId: number; name: string; keyHash: string; display: string },
  now: number,
): NewApiKey {
  return {
    user_id: key.userId,
    name: key.name,
    key_hash: key.keyHash,
    display: key.display,
    status: 'active',
    used_nano: 0,
    models: null,
    allowed_ips: null,
    quota_nano: null,
    group_name: null,
    rpm_limit: null,
    expires_at: null,
    prev_key_hash: null,
    prev_key_expires_at: null,
    created_at: now,
    updated_at: now,
    last_used_at: null,
    last_used_ip: null,
    deleted_at: null,
  };
}

function fieldsToColumns(f: KeyFields): ApiKeyUpdate {
  const set: ApiKeyUpdate = {};
  if (f.name !== undefined) set.name = f.name;
  if (f.models !== undefined) set.models = f.models === null ? null : JSON.stringify(f.models);
  if (f.allowedIps !== undefined)
    set.allowed_ips = f.allowedIps === null ? null : JSON.stringify(f.allowedIps);
  if (f.allowedOrigins !== undefined)
    set.allowed_origins = f.allowedOrigins.length === 0 ? null : JSON.stringify(f.allowedOrigins);
  if (f.quotaNano !== undefined) set.quota_nano = f.quotaNano;
  if (f.expiresAt !== undefined) set.expires_at = f.expiresAt;
  if (f.group !== undefined) {
    set.group_name = f.group;
    set.group_by_admin = f.group !== null && f.groupByAdmin ? 1 : 0;
  }
  if (f.guard !== undefined) set.guard = storeGuard(f.guard);
  if (f.alertThresholds !== undefined) set.alert_thresholds = thresholdsText(f.alertThresholds);
  return { ...set, ...budgetAndLimitColumns(f) };
}

/** Field-level diff for the audit trail, in API terms (never the hash or secret). */
export function keyChanges(
  before: ApiKeyRow,
  after: ApiKeyRow,
): Record<string, { from: unknown; to: unknown }> {
  const a = toKeyJson(before);
  const b = toKeyJson(after);
  const out: Record<string, { from: unknown; to: unknown }> = {};
  for (const f of [
    'name',
    'models',
    'allowed_ips',
    'allowed_origins',
    'quota',
    'group',
    'rpm',
    'guard',
    'budget',
    'alert_thresholds',
    'tpm',
    'max_concurrency',
    'expires_at',
  ] as const) {
    if (JSON.stringify(a[f]) !== JSON.stringify(b[f])) out[f] = { from: a[f], to: b[f] };
  }
  if (before.status !== after.status) out.status = { from: before.status, to: after.status };
  return out;
}

export interface KeyListQuery {
  userId?: number;
  status?: KeyStatus;
  q?: string;
  group?: string;
  limit: number;
  cursor?: number;
}

/** A key before and after one change. */
export interface KeyChange {
  before: ApiKeyRow;
  after: ApiKeyRow;
}

export function createKeysService(
  db: Db,
  bus: InvalidationBus,
  opts: {
    maxKeysPerUser: number;
    now?: Clock;
    /** The batch updates (spend, last use) take one statement for all keys on PostgreSQL. */
    dialect?: Dialect;
  },
  owners: Pick<AccountsService, 'lock'>,
) {
  const clock = opts.now ?? systemClock;
  const announce = (row: ApiKeyRow, extraHashes: string[] = []) =>
    bus.publish({
      kind: 'key',
      keyId: Number(row.id),
      hashes: [row.key_hash, ...(row.prev_key_hash ? [row.prev_key_hash] : []), ...extraHashes],
    });

  /** A live (not deleted) key, optionally scoped to one owner: another owner's key is "not found". */
  async function requireKey(id: number, ownerId?: number | null, exec: Db = db): Promise<ApiKeyRow> {
    let q = exec.selectFrom('api_keys').selectAll().where('id', '=', id).where('status', '!=', 'deleted');
    if (ownerId != null) q = q.where('user_id', '=', ownerId);
    const row = await q.executeTakeFirst();
    if (!row) throw notFound('key');
    return row;
  }

  /**
   * One change to a live key (scoped to `ownerId` like requireKey) in a transaction: read
   * it, write what `set` returns, run `within` before the commit. Announcing is the
   * caller's, after the commit.
   */
  async function changeKey(
    id: number,
    ownerId: number | null,
    set: (before: ApiKeyRow, now: number) => ApiKeyUpdate,
    within: OnChange<KeyChange> | undefined,
  ): Promise<KeyChange> {
    return db.transaction().execute(async (trx) => {
      const before = await requireKey(id, ownerId, trx);
      const after = await trx
        .updateTable('api_keys')
        .set(set(before, clock()))
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      await within?.(trx, { before, after });
      return { before, after };
    });
  }

  return {
    /** The service's clock (the system's, or a test's). */
    now: clock,

    requireKey,

    async create(
      userId: number,
      fields: KeyFields & { name: string },
      within?: OnChange<ApiKeyRow>,
    ): Promise<{ row: ApiKeyRow; secret: string }> {
      const secret = generateKey();
      const now = clock();
      const row = await db.transaction().execute(async (trx) => {
        // Serialise creations per owner so the cap check and the insert cannot interleave.
        await owners.lock(trx, userId);
        const count = await trx
          .selectFrom('api_keys')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('user_id', '=', userId)
          .where('status', '!=', 'deleted')
          .executeTakeFirstOrThrow();
        if (Number(count.n) >= opts.maxKeysPerUser)
          throw new AppError(
            'key_limit_reached',
            `this account already holds ${opts.maxKeysPerUser} keys, the most allowed`,
          );
        const inserted = await trx
          .insertInto('api_keys')
          .values({
            ...newKeyRow(
              { userId, name: fields.name, keyHash: hashKey(secret), display: displayKey(secret) },
              now,
            ),
            ...fieldsToColumns(fields),
            name: fields.name,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        await within?.(trx, inserted);
        return inserted;
      });
      announce(row);
      return { row, secret };
    },

    /** Enabled keys expiring after `from` and no later than `to` (the key.expiring scan). */
    async expiringBetween(from: number, to: number) {
      const rows = await db
        .selectFrom('api_keys')
        .select(['id', 'user_id', 'name', 'display', 'expires_at'])
        .where('status', '=', 'active')
        .where('expires_at', '>', from)
        .where('expires_at', '<=', to)
        .orderBy('id')
        .execute();
      return rows.map((r) => ({
        id: Number(r.id),
        userId: Number(r.user_id),
        name: r.name,
        display: r.display,
        expiresAt: Number(r.expires_at),
      }));
    },

    async list(q: KeyListQuery, now = clock()) {
      let query = db.selectFrom('api_keys').selectAll().where('status', '!=', 'deleted');
      if (q.userId !== undefined) query = query.where('user_id', '=', q.userId);
      if (q.group !== undefined) query = query.where('group_name', '=', q.group);
      if (q.q) {
        const like = containsPattern(q.q);
        query = query.where((eb) =>
          eb.or([
            sql<SqlBool>`lower(${eb.ref('name')}) like ${like} escape '\\'`,
            sql<SqlBool>`lower(${eb.ref('display')}) like ${like} escape '\\'`,
          ]),
        );
      }
      switch (q.status) {
        case 'disabled':
          query = query.where('status', '=', 'disabled');
          break;
        case 'expired':
          query = query.where('status', '=', 'active').where('expires_at', '<=', now);
          break;
        case 'exhausted':
          query = query
            .where('status', '=', 'active')
            .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
            .where('quota_nano', 'is not', null)
            .whereRef('used_nano', '>=', 'quota_nano');
          break;
        case 'active':
          query = query
            .where('status', '=', 'active')
            .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
            .where((eb) => eb.or([eb('quota_nano', 'is', null), eb('used_nano', '<', eb.ref('quota_nano'))]));
          break;
      }
      return readIdPage(query, q, (r) => toKeyJson(r, now));
    },

    /**
     * `byAdmin`: an admin acting on someone else's key. Their disable locks the key (a leaked
     * key stays off even if its owner tries to switch it back on); only an admin unlocks it.
     */
    async update(
      id: number,
      ownerId: number | null,
      fields: KeyFields & { status?: 'active' | 'disabled' },
      byAdmin = ownerId === null,
      within?: OnChange<KeyChange>,
    ): Promise<KeyChange> {
      const change = await changeKey(
        id,
        ownerId,
        (before, now) => {
          const set = { ...fieldsToColumns(fields), updated_at: now } as ApiKeyUpdate;
          if (fields.status !== undefined) {
            if (fields.status === 'active' && Number(before.admin_locked) === 1 && !byAdmin) {
              throw new AppError(
                'forbidden',
                'this key is locked (an admin, a leak report or the anomaly guard switched it off); only an admin can enable it again',
                {
                  param: 'status',
                },
              );
            }
            set.status = fields.status;
            if (byAdmin) set.admin_locked = fields.status === 'disabled' ? 1 : 0;
          }
          return set;
        },
        async (trx, change) => {
          // A disabled key's ephemeral keys die with it (enabling it again does not revive them);
          // so do an expired key's, which a later expiry must not bring back.
          const now = clock();
          const expired = change.before.expires_at !== null && Number(change.before.expires_at) <= now;
          if ((change.after.status === 'disabled' && change.before.status !== 'disabled') || expired)
            await revokeChildren(trx, [id], now);
          await within?.(trx, change);
        },
      );
      announce(change.after);
      return change;
    },

    /**
     * Switches a key off and locks it, as an admin's disable does (only an admin can enable it
     * again), for the gateway's own reasons: a leak report, the anomaly guard. `within` runs
     * only when this call changed the key (a key already off and locked is left as it is), so
     * a repeated report or a race between instances writes one audit row.
     */
    async lockDown(id: number, within?: OnChange<KeyChange>): Promise<KeyChange & { changed: boolean }> {
      let changed = false;
      const change = await changeKey(
        id,
        null,
        (before, now) => {
          changed = before.status !== 'disabled' || Number(before.admin_locked) !== 1;
          // Unchanged: write back what is there (an update must set something).
          return changed
            ? { status: 'disabled', admin_locked: 1, updated_at: now }
            : { updated_at: before.updated_at };
        },
        async (trx, c) => {
          if (!changed) return;
          // Its ephemeral keys die with it, for good (as with any disable).
          await revokeChildren(trx, [id], clock());
          await within?.(trx, c);
        },
      );
      if (changed) announce(change.after);
      return { ...change, changed };
    },

    /**
     * Keys (deleted ones included) holding any of these hashes as their current or
     * grace-period secret: whether a reported token is, or was, one of ours.
     */
    async findByHashes(hashes: string[]): Promise<ApiKeyRow[]> {
      if (hashes.length === 0) return [];
      return db
        .selectFrom('api_keys')
        .selectAll()
        .where((eb) => eb.or([eb('key_hash', 'in', hashes), eb('prev_key_hash', 'in', hashes)]))
        .execute();
    },

    /** New secret now; the old one keeps working for graceSeconds (0 = stops at once). */
    async rotate(
      id: number,
      ownerId: number | null,
      graceSeconds: number,
      within?: OnChange<KeyChange>,
    ): Promise<KeyChange & { secret: string }> {
      const secret = generateKey();
      const change = await changeKey(
        id,
        ownerId,
        (before, now) => ({
          key_hash: hashKey(secret),
          display: displayKey(secret),
          prev_key_hash: graceSeconds > 0 ? before.key_hash : null,
          prev_key_expires_at: graceSeconds > 0 ? now + graceSeconds * 1000 : null,
          updated_at: now,
          rotated_at: now,
        }),
        async (trx, change) => {
          // Ephemeral keys minted under the old secret die with it, at once (no grace).
          await revokeChildren(trx, [id], clock());
          await within?.(trx, change);
        },
      );
      // Drop every cached form of this key, including a still-older secret from a previous rotation.
      const { before, after } = change;
      announce(after, [before.key_hash, ...(before.prev_key_hash ? [before.prev_key_hash] : [])]);
      return { ...change, secret };
    },

    /**
     * Deletes every key of `userId` inside the caller's transaction (the owner is being
     * deleted; the owner's invalidation drops them from the verifier's cache).
     */
    async deleteAllFor(trx: Db, userId: number, now: number): Promise<void> {
      const gone = await trx
        .updateTable('api_keys')
        .set({ status: 'deleted', deleted_at: now, updated_at: now, prev_key_hash: null })
        .where('user_id', '=', userId)
        .where('status', '!=', 'deleted')
        .returning('id')
        .execute();
      await revokeChildren(
        trx,
        gone.map((r) => Number(r.id)),
        now,
      );
    },

    /**
     * Names and masked forms of the keys with these ids (deleted ones included), for
     * reports: two keys may share a name, never a masked form.
     */
    async namesOf(ids: number[]): Promise<Map<number, { name: string; display: string }>> {
      if (ids.length === 0) return new Map();
      // The ids as one parameter (an array, or JSON on SQLite): one statement for any number of
      // them, where `IN (…)` takes a parameter an id, up to the database's limit (32,766 on
      // SQLite), and chunks of it cost PostgreSQL a round trip each (10k ids: 70–78 → 11–27 ms).
      const rows = await db
        .selectFrom('api_keys')
        .select(['id', 'name', 'display'])
        .where(
          'id',
          opts.dialect === 'postgres' ? '=' : 'in',
          opts.dialect === 'postgres'
            ? sql<number>`any(${ids}::int8[])`
            : sql<number>`(select value from json_each(${JSON.stringify(ids)}))`,
        )
        .execute();
      return new Map(rows.map((k) => [Number(k.id), { name: k.name, display: k.display }]));
    },

    async remove(id: number, ownerId: number | null, within?: OnChange<KeyChange>): Promise<ApiKeyRow> {
      const { before, after } = await changeKey(
        id,
        ownerId,
        (_before, now) => ({
          status: 'deleted',
          deleted_at: now,
          updated_at: now,
          prev_key_hash: null,
          prev_key_expires_at: null,
        }),
        async (trx, change) => {
          await revokeChildren(trx, [id], clock());
          await within?.(trx, change);
        },
      );
      announce(after, before.prev_key_hash ? [before.prev_key_hash] : []);
      return before;
    },

    /**
     * For the verifier, in one round trip: the key row holding this hash as its current or
     * grace-period secret, with its owner; or, when the hash is an ephemeral key's, its parent
     * key and owner with the ephemeral key's columns (`e_*`, null for a key's own hash).
     */
    async findByHash(hash: string) {
      return db
        .selectFrom('api_keys')
        .innerJoin('users', 'users.id', 'api_keys.user_id')
        .leftJoin('ephemeral_keys as e', (j) =>
          j.onRef('e.parent_id', '=', 'api_keys.id').on('e.key_hash', '=', hash),
        )
        .selectAll('api_keys')
        .select([
          'users.status as user_status',
          'users.group_name as user_group',
          'users.deleted_at as user_deleted_at',
          'e.id as e_id',
          'e.status as e_status',
          'e.parent_key_hash as e_parent_key_hash',
          'e.models as e_models',
          'e.allowed_origins as e_allowed_origins',
          'e.max_cost_nano as e_max_cost_nano',
          'e.expires_at as e_expires_at',
          'users.budget_nano as user_budget_nano',
          'users.budget_period as user_budget_period',
          'users.alert_thresholds as user_alert_thresholds',
          'users.rpm_limit as user_rpm',
          'users.tpm_limit as user_tpm',
          'users.max_concurrency as user_max_concurrency',
        ])
        .where((eb) =>
          eb.or([
            eb('api_keys.key_hash', '=', hash),
            eb('api_keys.prev_key_hash', '=', hash),
            eb(
              'api_keys.id',
              '=',
              eb.selectFrom('ephemeral_keys').select('parent_id').where('key_hash', '=', hash),
            ),
          ]),
        )
        .executeTakeFirst();
    },

    /**
     * The owner moved to another group: keys whose group the owner pinned (necessarily their
     * old group) follow them; groups an admin granted stay.
     */
    async releaseOwnerPins(userId: number): Promise<void> {
      const rows = await db
        .updateTable('api_keys')
        .set({ group_name: null, updated_at: Date.now() })
        .where('user_id', '=', userId)
        .where('group_by_admin', '=', 0)
        .where('group_name', 'is not', null)
        .where('status', '!=', 'deleted')
        .returningAll()
        .execute();
      for (const row of rows) announce(row);
    },

    /**
     * Hashes of the live imported keys (current and grace-period secrets): the only secrets
     * without our checksum that the verifier may look up (verify.ts).
     */
    async importedHashes(): Promise<string[]> {
      const rows = await db
        .selectFrom('api_keys')
        .select(['key_hash', 'prev_key_hash'])
        .where('imported', '=', 1)
        .where('status', '!=', 'deleted')
        .execute();
      return rows.flatMap((r) => (r.prev_key_hash ? [r.key_hash, r.prev_key_hash] : [r.key_hash]));
    },

    /** Batched by the usage writer: last use per key, newest wins. */
    async recordLastUse(trx: Db, uses: Map<number, { at: number; ip: string }>): Promise<void> {
      if (uses.size === 0) return;
      // Raw SQL, not the query builder: its compile cost more than the update. PostgreSQL:
      // one statement for every key (a statement per key is a round trip per key); in id
      // order, as moveCounters, so concurrent batches lock shared rows alike.
      if (opts.dialect === 'postgres') {
        const ids = [...uses.keys()].sort((a, b) => a - b);
        const at = ids.map((id) => uses.get(id)!.at);
        const ip = ids.map((id) => uses.get(id)!.ip);
        await sql`update "api_keys" as t set "last_used_at" = d.at, "last_used_ip" = d.ip
          from unnest(${ids}::int8[], ${at}::int8[], ${ip}::text[]) as d(id, at, ip) where t."id" = d.id`.execute(
          trx,
        );
        return;
      }
      for (const [keyId, u] of uses)
        await sql`update "api_keys" set "last_used_at" = ${u.at}, "last_used_ip" = ${u.ip} where "id" = ${keyId}`.execute(
          trx,
        );
    },

    /** Batched by the ledger: spend per key as relative updates. */
    addUsed: (trx: Db, deltas: Map<number, number>) =>
      moveCounters(trx, 'api_keys', 'used_nano', '+', deltas, opts.dialect),

    usedNano: (keyId: number) => storedCounter(db, 'api_keys', 'used_nano', keyId),
  };
}

export type KeysService = ReturnType<typeof createKeysService>;
