// Management API authentication: the master key as a Bearer token, or a session cookie.
// Cookie-authenticated writes must echo the session's CSRF token in x-csrf-token.
import type { FastifyInstance } from 'fastify';
import { AppError } from '../http/errors.js';
import type { Principal } from '../http/principal.js';
import { safeEqual } from '../shared/safe-equal.js';
import type { MasterKey } from './master-key.js';
import type { AccountsService } from './service.js';

export const SESSION_COOKIE = 'mole_session';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export function installManagementAuth(
  app: FastifyInstance,
  deps: { masterKey: MasterKey; accounts: AccountsService },
): void {
  app.decorateRequest('principal', null);
  app.addHook('preHandler', async (req) => {
    // Signing in needs no credentials (and a stale cookie must not block it).
    if (req.routeOptions.url === '/api/auth/login') return;
    const auth = req.headers.authorization;
    if (auth) {
      const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
      if (!m || !deps.masterKey.matches(m[1]!.trim()))
        throw new AppError('unauthorized', 'invalid credentials');
      req.principal = { kind: 'master' };
      return;
    }
    const token = req.cookies[SESSION_COOKIE];
    if (!token) return;
    const s = await deps.accounts.session(token);
    if (!s) return;
    if (!SAFE_METHODS.has(req.method)) {
      const sent = req.headers['x-csrf-token'];
      if (typeof sent !== 'string' || !safeEqual(sent, s.csrfToken))
        throw new AppError('csrf_failed', 'missing or wrong x-csrf-token header');
    }
    req.principal = { kind: 'session', user: s.user, csrfToken: s.csrfToken, tokenHash: s.tokenHash };
  });
}
