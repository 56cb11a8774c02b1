// Management API authentication: the master key or a management token (mg-…) as a Bearer
// token, or a session cookie. Cookie-authenticated writes must echo the session's CSRF token
// in x-csrf-token (a Bearer token is never sent by a browser on its own, so CSRF does not
// apply to it). A relay API key (sk-…) is refused here with a message that says so.
import type { FastifyInstance } from 'fastify';
import { AppError } from '../http/errors.js';
import type { Principal } from '../http/principal.js';
import { safeEqual } from '../shared/safe-equal.js';
import { TOKEN_PREFIX } from '../tokens/format.js';
import type { MasterKey } from './master-key.js';
import type { AccountsService } from './service.js';

export const SESSION_COOKIE = 'mole_session';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Where relay clients put their API key; none of them authenticates the management API. */
const RELAY_KEY_HEADERS = ['x-api-key', 'api-key', 'x-goog-api-key'] as const;

const relayKeyRefused = () =>
  new AppError(
    'unauthorized',
    'this is a relay API key (sk-…), which works on /v1 only; the management API takes a management token (mg-…), the master key or a console session',
  );

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export function installManagementAuth(
  app: FastifyInstance,
  deps: {
    masterKey: MasterKey;
    accounts: AccountsService;
    /** Management tokens: the Principal a presented `mg-…` token acts as, or a 401. */
    tokens: { authenticate(presented: string): Promise<Principal> };
  },
): void {
  app.decorateRequest('principal', null);
  app.addHook('preHandler', async (req) => {
    // Signing in needs no credentials (and a stale cookie must not block it).
    if (req.routeOptions.url === '/api/auth/login') return;
    const auth = req.headers.authorization;
    if (auth) {
      const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
      const presented = m ? m[1]!.trim() : '';
      if (m && deps.masterKey.matches(presented)) {
        req.principal = { kind: 'master' };
        return;
      }
      if (presented.startsWith(TOKEN_PREFIX)) {
        req.principal = await deps.tokens.authenticate(presented);
        return;
      }
      if (/^sk-/.test(presented)) throw relayKeyRefused();
      throw new AppError('unauthorized', 'invalid credentials');
    }
    if (RELAY_KEY_HEADERS.some((h) => req.headers[h] !== undefined)) throw relayKeyRefused();
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
