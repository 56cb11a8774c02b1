// What a caller of the management API may do with management tokens, as plain functions of a
// Principal. Tokens are managed from a console session or with the master key only: a token
// can neither mint, list nor revoke tokens (its route declares no scope, and this checks again),
// so a leaked token cannot extend its own life. A user sees and revokes their own tokens; an
// admin sees and revokes everyone's (incident response). Audit rows never hold the secret.
import type { AuditService } from '../audit/service.js';
import { AppError, notFound } from '../http/errors.js';
import {
  actorOf,
  isAdmin,
  type Principal,
  SCOPES,
  type Scope,
  scopedUserId,
  selfId,
  tokenOf,
} from '../http/principal.js';
import { type TokensService, toTokenJson } from './service.js';

/** Live tokens one owner may hold. */
export const MAX_TOKENS_PER_OWNER = 100;

export interface Caller {
  principal: Principal;
  ip: string;
}

function requireNoToken(principal: Principal): void {
  if (tokenOf(principal))
    throw new AppError(
      'insufficient_scope',
      'management tokens cannot manage tokens; sign in to the console or use the master key',
    );
}

/** Unknown scopes are a 400 naming them; duplicates fold. */
function checkScopes(scopes: string[]): Scope[] {
  const known = new Set<string>(SCOPES);
  const unknown = scopes.filter((s) => !known.has(s));
  if (unknown.length)
    throw new AppError(
      'invalid_request',
      `unknown scope${unknown.length > 1 ? 's' : ''}: ${unknown.map((s) => JSON.stringify(s.slice(0, 64))).join(', ')} (known: ${SCOPES.join(', ')})`,
      { param: 'scopes' },
    );
  if (scopes.length === 0)
    throw new AppError('invalid_request', 'scopes: name at least one scope', { param: 'scopes' });
  return SCOPES.filter((s) => scopes.includes(s));
}

export function createTokenActions(deps: { tokens: TokensService; audit: Pick<AuditService, 'record'> }) {
  const { tokens, audit } = deps;

  return {
    async create(
      { principal, ip }: Caller,
      input: { name: string; scopes: string[]; expiresAt: number | null },
    ) {
      requireNoToken(principal);
      const scopes = checkScopes(input.scopes);
      const now = tokens.now();
      if (input.expiresAt !== null && input.expiresAt <= now)
        throw new AppError('validation_error', 'expires_at: must be in the future', { param: 'expires_at' });
      const owner = selfId(principal);
      if ((await tokens.countLive(owner)) >= MAX_TOKENS_PER_OWNER)
        throw new AppError(
          'conflict',
          `at most ${MAX_TOKENS_PER_OWNER} live management tokens; revoke one first`,
        );
      const { row, token } = await tokens.create(
        { userId: owner, name: input.name, scopes, expiresAt: input.expiresAt },
        (trx, r) =>
          audit.record(
            {
              actor: actorOf(principal),
              action: 'token.create',
              userId: owner,
              ip,
              changes: {
                token_id: Number(r.id),
                name: r.name,
                scopes,
                expires_at: input.expiresAt === null ? null : new Date(input.expiresAt).toISOString(),
              },
            },
            trx,
          ),
      );
      return { ...toTokenJson(row, now), token };
    },

    /** A user's own tokens; an admin's: everyone's, or one user's (`userId`). */
    async list(principal: Principal, userId: number | undefined) {
      requireNoToken(principal);
      const owner = scopedUserId(principal, userId);
      const now = tokens.now();
      return { data: (await tokens.list(owner)).map((r) => toTokenJson(r, now)) };
    },

    async revoke({ principal, ip }: Caller, id: number) {
      requireNoToken(principal);
      const before = await tokens.requireLive(id);
      const owner = before.user_id === null ? null : Number(before.user_id);
      if (!isAdmin(principal) && owner !== selfId(principal)) throw notFound('token');
      const row = await tokens.revoke(id, (trx, r) =>
        audit.record(
          {
            actor: actorOf(principal),
            action: 'token.revoke',
            userId: owner,
            ip,
            changes: { token_id: Number(r.id), name: r.name },
          },
          trx,
        ),
      );
      return toTokenJson(row, tokens.now());
    },
  };
}

export type TokenActions = ReturnType<typeof createTokenActions>;
