// Who is calling the management API: the master key, a console session of a user/admin, or a
// management token (`mg-…`), which acts as its owner narrowed to its scopes. A token the
// master key minted acts as the master key (kind 'master' with a `token`); a user's token is
// kind 'token' and carries its owner's current row, so `isAdmin` follows the owner's role.
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
  | { kind: 'token'; user: UserRow; token: TokenGrant };

export const isAdmin = (p: Principal) => p.kind === 'master' || p.user.role === 'admin';
/** The token behind a principal, or null for the master key itself and sessions. */
export const tokenOf = (p: Principal): TokenGrant | null => (p.kind === 'session' ? null : (p.token ?? null));
/** The user a principal acts as, or null for the master key (and its tokens). */
export const userOf = (p: Principal): UserRow | null => (p.kind === 'master' ? null : p.user);
/** Who did it, for the audit trail: `master`, `admin:3`, `user:7`, and `…/token:5` through a token. */
export const actorOf = (p: Principal) => {
  const who = p.kind === 'master' ? 'master' : `${p.user.role}:${p.user.id}`;
  const token = tokenOf(p);
  return token ? `${who}/token:${token.id}` : who;
};
/** The user id a principal acts as, or null for the master key. */
export const selfId = (p: Principal) => (p.kind === 'master' ? null : p.user.id);
