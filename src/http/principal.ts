// Who is calling the management API: the master key, or a console session of a user/admin.
import type { UserRow } from '../db/schema.js';

export type Principal =
  | { kind: 'master' }
  | { kind: 'session'; user: UserRow; csrfToken: string; tokenHash: string };

export const isAdmin = (p: Principal) => p.kind === 'master' || p.user.role === 'admin';
export const actorOf = (p: Principal) => (p.kind === 'master' ? 'master' : `${p.user.role}:${p.user.id}`);
/** The user id a principal acts as, or null for the master key. */
export const selfId = (p: Principal) => (p.kind === 'master' ? null : p.user.id);
