// Operations endpoints (contract §9), outside /api and /v1, registered before the console so
// they never fall through to it:
//   GET /healthz  200 while the process serves (liveness)
//   GET /readyz   200 when the database (and Redis, when configured) answer; else 503 naming
//                 what failed (readiness; also 503 while shutting down)
//   GET /metrics  Prometheus text. Without MOLE_METRICS_TOKEN: loopback clients only (a request
//                 relayed by an untrusted proxy on the same host does not count as loopback).
//                 With it: `Authorization: Bearer <token>` from anywhere, nothing else.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { safeEqual } from '../shared/safe-equal.js';
import { AppError } from '../http/errors.js';
import { normalizeIp } from '../http/client-ip.js';
import { CidrSet } from '../keys/cidr.js';
import type { ReadinessProbe } from './health.js';
import type { Metrics } from './metrics.js';

export interface OpsDeps {
  readiness: ReadinessProbe;
  metrics: Metrics;
  metricsToken: string | undefined;
  trustedProxies: string[];
}

const parse = (rules: string[]) => {
  const r = CidrSet.parse(rules);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const LOOPBACK = parse(['127.0.0.0/8', '::1/128']);

export function registerOps(app: FastifyInstance, deps: OpsDeps): void {
  const trusted = parse(deps.trustedProxies);

  /** The client is on this host: its resolved IP is loopback, and no untrusted hop forwarded it. */
  function isLocal(req: FastifyRequest): boolean {
    if (!LOOPBACK.contains(req.clientIp)) return false;
    const forwarded = req.headers['x-forwarded-for'] ?? req.headers.forwarded ?? req.headers['x-real-ip'];
    if (forwarded === undefined) return true;
    // A local reverse proxy that is not a trusted proxy: the real client is unknown.
    return trusted.contains(normalizeIp(req.socket.remoteAddress ?? ''));
  }

  function authorizeMetrics(req: FastifyRequest): void {
    if (deps.metricsToken) {
      const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization?.trim() ?? '');
      if (!m || !safeEqual(m[1]!.trim(), deps.metricsToken))
        throw new AppError('unauthorized', 'send MOLE_METRICS_TOKEN as "Authorization: Bearer <token>"', {
          headers: { 'www-authenticate': 'Bearer realm="metrics"' },
        });
      return;
    }
    if (!isLocal(req))
      throw new AppError(
        'forbidden',
        'metrics are served to loopback clients only; set MOLE_METRICS_TOKEN to scrape from elsewhere',
      );
  }

  app.addHook('preClose', async () => deps.readiness.drain());

  app.get('/healthz', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    return { status: 'ok' };
  });

  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    const r = await deps.readiness.check();
    reply.header('cache-control', 'no-store').code(r.ok ? 200 : 503);
    return { status: r.ok ? 'ok' : 'unavailable', failed: r.failed, checks: r.checks };
  });

  app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
    authorizeMetrics(req);
    const text = await deps.metrics.text();
    return reply.header('cache-control', 'no-store').type(deps.metrics.contentType).send(text);
  });
}
