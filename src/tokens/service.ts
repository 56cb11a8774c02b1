// Management tokens (mg-…): create (secret shown once, only its SHA-256 kept), list, revoke,
// and authenticate a Bearer token into the Principal it acts as. Owns the management_tokens
// table. A token acts as its owner narrowed to its scopes; the owner's row is read on every
// use, so a disabled, deleted or demoted owner takes their tokens' power with them.
import type { Db, OnChange } from '../db/index.js';
import type { ManagementTokenRow, UserRow } from '../db/schema.js';
import { AppError, notFound } from '../http/errors.js';
import { type Principal, SCOPES, type Scope } from '../http/principal.js';
import { type Clock, systemClock } from '../shared/clock.js';
import { displayToken, generateToken, hashToken, isWellFormedToken } from './format.js';

export type TokenStatus = 'active' | 'expired' | 'revoked';

/** How often a token's `last_used_at` is written at most (management calls are not the hot path). */
const TOUCH_EVERY_MS = 60_000;

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

export function tokenStatus(row: ManagementTokenRow, now: number): TokenStatus {
  if (row.revoked_at !== null) return 'revoked';
  if (row.expires_at !== null && Number(row.expires_at) <= now) return 'expired';
  return 'active';
}

export function parseScopes(text: string): Scope[] {
  const known = new Set<string>(SCOPES);
  return (JSON.parse(text) as string[]).filter((s): s is Scope => known.has(s));
}

export function toTokenJson(row: ManagementTokenRow, now: number) {
  return {
    id: Number(row.id),
    name: row.name,
    user_id: row.user_id === null ? null : Number(row.user_id),
    display: row.display,
    scopes: parseScopes(row.scopes),
    status: tokenStatus(row, now),
    expires_at: iso(row.expires_at),
    created_at: iso(row.created_at)!,
    last_used_at: iso(row.last_used_at),
  };
}

export function createTokensService(
  db: Db,
  deps: { getUser(id: number): Promise<UserRow | undefined>; now?: Clock },
) {
  const now = deps.now ?? systemClock;
  const refused = (why: string) => new AppError('unauthorized', why);
  /** Tokens not revoked. */
  const liveTokens = () => db.selectFrom('management_tokens').selectAll().where('revoked_at', 'is', null);

  return {
    now,

    /** Stores a new token; `onCreated` (the audit row) runs in the same transaction. */
    async create(
      input: { userId: number | null; name: string; scopes: Scope[]; expiresAt: number | null },
      onCreated?: OnChange<ManagementTokenRow>,
    ): Promise<{ row: ManagementTokenRow; token: string }> {
      const token = generateToken();
      const row = await db.transaction().execute(async (trx) => {
        const r = await trx
          .insertInto('management_tokens')
          .values({
            user_id: input.userId,
            name: input.name,
            token_hash: hashToken(token),
            display: displayToken(token),
            scopes: JSON.stringify(input.scopes),
            created_at: now(),
            expires_at: input.expiresAt,
            last_used_at: null,
            revoked_at: null,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        await onCreated?.(trx, r);
        return r;
      });
      return { row, token };
    },

    /** Live (not revoked) tokens a caller owns: `userId` null = the master key's. */
    async countLive(userId: number | null): Promise<number> {
      let q = db
        .selectFrom('management_tokens')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('revoked_at', 'is', null);
      q = userId === null ? q.where('user_id', 'is', null) : q.where('user_id', '=', userId);
      return Number((await q.executeTakeFirstOrThrow()).n);
    },

    /** Not revoked, newest first; `owner` undefined = everyone's, null = the master key's. */
    async list(owner: number | null | undefined): Promise<ManagementTokenRow[]> {
      let q = liveTokens().orderBy('id', 'desc').limit(1000);
      if (owner === null) q = q.where('user_id', 'is', null);
      else if (owner !== undefined) q = q.where('user_id', '=', owner);
      return q.execute();
    },

    /** A live (not revoked) token by id, or 404. */
    async requireLive(id: number): Promise<ManagementTokenRow> {
      const row = await liveTokens().where('id', '=', id).executeTakeFirst();
      if (!row) throw notFound('token');
      return row;
    },

    /** Revokes at once (the next request with it is refused); `onRevoked` runs in the same transaction. */
    async revoke(id: number, onRevoked?: OnChange<ManagementTokenRow>): Promise<ManagementTokenRow> {
      return db.transaction().execute(async (trx) => {
        const row = await trx
          .updateTable('management_tokens')
          .set({ revoked_at: now() })
          .where('id', '=', id)
          .where('revoked_at', 'is', null)
          .returningAll()
          .executeTakeFirst();
        if (!row) throw notFound('token');
        await onRevoked?.(trx, row);
        return row;
      });
    },

    /** Tokens holding any of these hashes, revoked ones too (a leak report's tokens). */
    async findByHashes(hashes: string[]): Promise<ManagementTokenRow[]> {
      if (hashes.length === 0) return [];
      return db.selectFrom('management_tokens').selectAll().where('token_hash', 'in', hashes).execute();
    },

    /** A deleted user's tokens go with them (inside the deletion's transaction). */
    async revokeAllFor(trx: Db, userId: number, at: number): Promise<void> {
      await trx
        .updateTable('management_tokens')
        .set({ revoked_at: at })
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .execute();
    },

    /**
     * The Principal a presented `mg-…` token acts as, or a 401. The checksum is checked before
     * any lookup; the owner must still exist and be active.
     */
    async authenticate(presented: string): Promise<Principal> {
      if (!isWellFormedToken(presented)) throw refused('invalid management token');
      const row = await db
        .selectFrom('management_tokens')
        .selectAll()
        .where('token_hash', '=', hashToken(presented))
        .executeTakeFirst();
      if (!row) throw refused('invalid management token');
      const at = now();
      const status = tokenStatus(row, at);
      if (status === 'revoked') throw refused('this management token has been revoked');
      if (status === 'expired') throw refused('this management token has expired');
      const grant = { id: Number(row.id), scopes: parseScopes(row.scopes) };
      let principal: Principal;
      if (row.user_id === null) principal = { kind: 'master', token: grant };
      else {
        const user = await deps.getUser(Number(row.user_id));
        if (user?.status !== 'active')
          throw refused('the account that owns this management token is disabled or deleted');
        principal = { kind: 'token', user, token: grant };
      }
      if (row.last_used_at === null || Number(row.last_used_at) <= at - TOUCH_EVERY_MS)
        await db
          .updateTable('management_tokens')
          .set({ last_used_at: at })
          .where('id', '=', row.id)
          .execute();
      return principal;
    },
  };
}

export type TokensService = ReturnType<typeof createTokensService>;
