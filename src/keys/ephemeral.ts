// Ephemeral keys (contract §8): short-lived keys a key (the parent) mints for a browser or an
// app, so the parent's secret never leaves the server. One has the usual key format, is shown
// once and stored as a hash; it can never do more than its parent (models and origins are
// subsets, the parent's IP rules, limits, quota and balance apply: it bills and counts as the
// parent), cannot mint keys, and dies with its parent: the parent's disable, rotation and
// deletion revoke its children in the same transaction (`revokeChildren`), and the verifier
// also refuses a child whose parent no longer holds the secret it was minted under. Expired
// rows are purged a while after they expire. Owns the ephemeral_keys table.
import type { Db, Dialect, OnChange } from '../db/index.js';
import type { EphemeralKeyRow } from '../db/schema.js';
import { AppError, notFound } from '../http/errors.js';
import { nanoToUsd } from '../billing/money.js';
import type { InvalidationBus } from '../shared/bus.js';
import { type Clock, systemClock } from '../shared/clock.js';
import { moveCounters, storedCounter } from '../shared/counters.js';
import { displayKey, generateKey, hashKey } from './format.js';

/** How long an expired (or revoked) row is kept, so its holder still hears "expired". */
const KEEP_AFTER_EXPIRY_MS = 60 * 60_000;
/** Purges run at most this often per instance (on the next mint). */
const PURGE_EVERY_MS = 60_000;
/** Most live ephemeral keys one parent may have at a time (MOLE_MAX_EPHEMERAL_KEYS_PER_KEY). */
export const DEFAULT_MAX_LIVE_PER_KEY = 1000;

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

export function toEphemeralJson(row: EphemeralKeyRow, now: number) {
  const expiresAt = Number(row.expires_at);
  return {
    object: 'ephemeral_key' as const,
    id: Number(row.id),
    parent_id: Number(row.parent_id),
    display: row.display,
    status:
      row.status !== 'active'
        ? ('disabled' as const)
        : expiresAt <= now
          ? ('expired' as const)
          : ('active' as const),
    /** null = the parent's models. */
    models: row.models === null ? null : (JSON.parse(row.models) as string[]),
    /** The browser origins it serves (its own list, else its parent's). */
    allowed_origins: row.allowed_origins === null ? null : (JSON.parse(row.allowed_origins) as string[]),
    max_cost: row.max_cost_nano === null ? null : nanoToUsd(Number(row.max_cost_nano)),
    expires_at: iso(expiresAt)!,
    created_at: iso(Number(row.created_at))!,
  };
}
export type EphemeralKeyJson = ReturnType<typeof toEphemeralJson>;

/**
 * Revokes the live children of the parents `parentIds`, inside the parent's change's
 * transaction. The parent's own announcement drops them from every verifier's cache (they are
 * cached under their parent's id).
 */
export async function revokeChildren(trx: Db, parentIds: number[], now: number): Promise<void> {
  if (parentIds.length === 0) return;
  await trx
    .updateTable('ephemeral_keys')
    .set({ status: 'revoked', revoked_at: now })
    .where('parent_id', 'in', parentIds)
    .where('status', '=', 'active')
    .where('expires_at', '>', now)
    .execute();
}

export interface MintFields {
  models: string[] | null;
  allowedOrigins: string[] | null;
  maxCostNano: number | null;
  /** When it is minted: the caller's clock read, from which it also counted `expiresAt`. */
  createdAt: number;
  expiresAt: number;
}

export function createEphemeralKeys(
  db: Db,
  bus: InvalidationBus,
  opts: { now?: Clock; maxLivePerKey?: number; dialect?: Dialect } = {},
) {
  const clock = opts.now ?? systemClock;
  const maxLive = opts.maxLivePerKey ?? DEFAULT_MAX_LIVE_PER_KEY;
  let lastPurge = 0;

  /** Deletes rows that expired more than KEEP_AFTER_EXPIRY_MS ago. */
  async function purgeExpired(now = clock()): Promise<number> {
    const r = await db
      .deleteFrom('ephemeral_keys')
      .where('expires_at', '<', now - KEEP_AFTER_EXPIRY_MS)
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  return {
    now: clock,

    /** A new ephemeral key of `parent` (its key_hash is the secret it is minted under). */
    async mint(
      parent: { id: number; userId: number; keyHash: string },
      f: MintFields,
    ): Promise<{ row: EphemeralKeyRow; secret: string }> {
      const now = f.createdAt;
      if (now - lastPurge >= PURGE_EVERY_MS) {
        lastPurge = now;
        await purgeExpired(now);
      }
      // The cap is checked, not locked: mints racing on several instances may pass it by a few.
      const live = await db
        .selectFrom('ephemeral_keys')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('parent_id', '=', parent.id)
        .where('status', '=', 'active')
        .where('expires_at', '>', now)
        .executeTakeFirstOrThrow();
      if (Number(live.n) >= maxLive)
        throw new AppError(
          'key_limit_reached',
          `this key already has ${maxLive} live ephemeral keys, the most allowed; let some expire or revoke them first`,
        );
      const secret = generateKey();
      const row = await db
        .insertInto('ephemeral_keys')
        .values({
          parent_id: parent.id,
          user_id: parent.userId,
          key_hash: hashKey(secret),
          parent_key_hash: parent.keyHash,
          display: displayKey(secret),
          models: f.models === null ? null : JSON.stringify(f.models),
          allowed_origins: f.allowedOrigins === null ? null : JSON.stringify(f.allowedOrigins),
          max_cost_nano: f.maxCostNano,
          status: 'active',
          expires_at: f.expiresAt,
          created_at: now,
          revoked_at: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return { row, secret };
    },

    async get(id: number): Promise<EphemeralKeyRow> {
      const row = await db.selectFrom('ephemeral_keys').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw notFound('ephemeral key');
      return row;
    },

    /**
     * Revokes one ephemeral key (its kill switch), running `within` in the same transaction;
     * every instance drops it from its cache.
     */
    async revoke(id: number, within?: OnChange<EphemeralKeyRow>): Promise<EphemeralKeyRow> {
      const row = await db.transaction().execute(async (trx) => {
        const after = await trx
          .updateTable('ephemeral_keys')
          .set({ status: 'revoked', revoked_at: clock() })
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirst();
        if (!after) throw notFound('ephemeral key');
        await within?.(trx, after);
        return after;
      });
      bus.publish({ kind: 'key', keyId: Number(row.parent_id), hashes: [row.key_hash] });
      return row;
    },

    purgeExpired,

    /** Ephemeral keys holding any of these hashes (a leak report's tokens). */
    async findByHashes(hashes: string[]): Promise<EphemeralKeyRow[]> {
      if (hashes.length === 0) return [];
      return db.selectFrom('ephemeral_keys').selectAll().where('key_hash', 'in', hashes).execute();
    },

    /** For the spend caps (billing): an ephemeral key's spend as stored. */
    usedNano: (id: number) => storedCounter(db, 'ephemeral_keys', 'used_nano', id),

    /** Batched by the usage writer: spend per ephemeral key as relative updates. */
    addUsed: (trx: Db, deltas: Map<number, number>) =>
      moveCounters(trx, 'ephemeral_keys', 'used_nano', '+', deltas, opts.dialect),
  };
}

export type EphemeralKeys = ReturnType<typeof createEphemeralKeys>;
