// Who is calling: the master key, or a console session of a user/admin (the management API);
// or a relay key acting on itself (the relay's key routes: the kill switch, minting ephemeral
// keys). A key principal is never an admin and acts only as its owner.
import type { UserRow } from '../db/schema.js';

export type Principal =
  | { kind: 'master' }
  | { kind: 'session'; user: UserRow; csrfToken: string; tokenHash: string }
  /** A relay key presenting itself; `ephemeralId` when it is an ephemeral key (`keyId` is its parent). */
  | { kind: 'key'; keyId: number; userId: number; ephemeralId: number | null };

export const isAdmin = (p: Principal) =>
  p.kind === 'master' || (p.kind === 'session' && p.user.role === 'admin');
export const actorOf = (p: Principal) =>
  p.kind === 'master'
    ? 'master'
    : p.kind === 'key'
      ? p.ephemeralId !== null
        ? `ephemeral:${p.ephemeralId}`
        : `key:${p.keyId}`
      : `${p.user.role}:${p.user.id}`;
/** The user id a principal acts as, or null for the master key. */
export const selfId = (p: Principal) =>
  p.kind === 'master' ? null : p.kind === 'key' ? p.userId : p.user.id;
