// Who is calling: the master key, a console session of a user/admin, or a management token
// (`mg-…`), which acts as its owner narrowed to its scopes (the management API); or a relay
// key acting on itself (the relay's key routes: the kill switch, minting ephemeral keys). A
// token the master key minted acts as the master key (kind 'master' with a `token`); a user's
// token is kind 'token' and carries its owner's current row, so `isAdmin` follows the owner's
// role. A key principal is never an admin and acts only as its owner.
import type { UserRow } from '../db/schema.js';

/** What a management token may do (contract §8); each /api route declares the one it needs. */
export const SCOPES = [
  'keys:read',
  'keys:write',
  'logs:read',
  'usage:read',
  'users:read',
  'users:write',
  'channels:read',
  'channels:write',
  'audit:read',
] as const;
export type Scope = (typeof SCOPES)[number];

/** The management token a request came with: its id and scopes. */
export interface TokenGrant {
  id: number;
  scopes: readonly Scope[];
}

export type Principal =
  | { kind: 'master'; token?: TokenGrant }
  | { kind: 'session'; user: UserRow; csrfToken: string; tokenHash: string }
  | { kind: 'token'; user: UserRow; token: TokenGrant }
  /**
   * A relay key presenting itself; `ephemeralId` when it is an ephemeral key (`keyId` is its
   * parent); `graceUntil` when the secret presented was rotated out and works until then.
   */
  | { kind: 'key'; keyId: number; userId: number; ephemeralId: number | null; graceUntil: number | null };

export const isAdmin = (p: Principal) =>
  p.kind === 'master' || ((p.kind === 'session' || p.kind === 'token') && p.user.role === 'admin');
/** The token behind a principal, or null for the master key itself, sessions and relay keys. */
export const tokenOf = (p: Principal): TokenGrant | null =>
  p.kind === 'master' || p.kind === 'token' ? (p.token ?? null) : null;
/** The user row a principal acts as: null for the master key (and its tokens) and relay keys. */
export const userOf = (p: Principal): UserRow | null =>
  p.kind === 'session' || p.kind === 'token' ? p.user : null;
/** Who did it, for the audit trail: `master`, `admin:3`, `user:7`, `key:4`, `ephemeral:9`, and
 * `…/token:5` through a token. */
export const actorOf = (p: Principal) => {
  const who =
    p.kind === 'master'
      ? 'master'
      : p.kind === 'key'
        ? p.ephemeralId !== null
          ? `ephemeral:${p.ephemeralId}`
          : `key:${p.keyId}`
        : `${p.user.role}:${p.user.id}`;
  const token = tokenOf(p);
  return token ? `${who}/token:${token.id}` : who;
};
/** The user id a principal acts as, or null for the master key. */
export const selfId = (p: Principal) =>
  p.kind === 'master' ? null : p.kind === 'key' ? p.userId : p.user.id;
/** An account id no account has (ids start at 1): a filter that matches nothing. */
export const NO_ACCOUNT = 0;
/**
 * The account a read is scoped to: for an admin, the one asked for (undefined = every account);
 * for anyone else, their own, and a filter on another account narrows that to nothing (as a
 * filter on another's key does), never to someone else's rows.
 */
export const scopedUserId = (p: Principal, asked: number | undefined): number | undefined => {
  if (isAdmin(p)) return asked;
  const self = selfId(p)!;
  return asked === undefined || asked === self ? self : NO_ACCOUNT;
};
