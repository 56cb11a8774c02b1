// Liveness and readiness (contract §9) against the real server: /healthz answers while the
// process serves; /readyz answers 200 only while the database (and Redis, when configured)
// answer, and 503 naming what failed when one stops: a closed SQLite handle, a dropped or
// locked PostgreSQL schema, a Redis that went away.
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { backends, pgUrl, redisUrl, startTestServer, type TestServer } from '../helpers/server.js';
import { pgOnce } from '../helpers/pg-once.js';
import type { CheckResult } from '../../src/ops/health.js';
import { waitFor } from '../helpers/process.js';
import { tcpProxy } from '../helpers/tcp-proxy.js';

/** /readyz's answer (src/ops/routes.ts); /healthz answers `{ status: 'ok' }`. */
interface ReadyBody {
  status: 'ok' | 'unavailable';
  failed: string[];
  checks: { database: CheckResult; redis?: CheckResult };
}

const get = async (s: TestServer, p: string, headers: Record<string, string> = {}) => {
  const res = await fetch(s.url + p, { headers });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return {
    status: res.status,
    body: body as ReadyBody,
    type: res.headers.get('content-type') ?? '',
    headers: res.headers,
  };
};

describe.each(backends())('health and readiness (%s)', (backend) => {
  let s: TestServer | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  it('answers /healthz and /readyz with 200 and JSON while serving', async () => {
    s = await startTestServer({ backend });
    const h = await get(s, '/healthz');
    expect(h.status).toBe(200);
    expect(h.type).toMatch(/application\/json/);
    expect(h.body).toEqual({ status: 'ok' });
    expect(h.headers.get('cache-control')).toBe('no-store');
    expect((await fetch(s.url + '/healthz', { method: 'HEAD' })).status).toBe(200);

    const r = await get(s, '/readyz');
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('ok');
    expect(r.body.failed).toEqual([]);
    expect(r.body.checks.database.ok).toBe(true);
    expect(r.body.checks.redis).toBeUndefined(); // not configured
  });

  it('answers /readyz 503 naming the database when it stops answering; /healthz stays 200', async () => {
    s = await startTestServer({ backend });
    if (backend === 'sqlite') {
      await s.services.storage.close(); // the handle is gone: every query fails
    } else {
      await pgOnce(pgUrl()!, `DROP SCHEMA "${s.pgSchema}" CASCADE`);
    }
    const r = await get(s, '/readyz');
    expect(r.status).toBe(503);
    expect(r.body.status).toBe('unavailable');
    expect(r.body.failed).toEqual(['database']);
    expect(r.body.checks.database).toMatchObject({ ok: false, error: 'error' });
    expect(JSON.stringify(r.body)).not.toMatch(/postgres:\/\/|password/i);
    expect((await get(s, '/healthz')).status).toBe(200);
    expect(s.logs()).toContain('readiness: check fails');
  });

  it.runIf(backend === 'postgres')('answers /readyz 503 "timeout" when the database hangs', async () => {
    s = await startTestServer({ backend });
    const c = new pg.Client({ connectionString: pgUrl(), options: `-c search_path=${s.pgSchema}` });
    await c.connect();
    await c.query('BEGIN');
    await c.query('LOCK TABLE meta IN ACCESS EXCLUSIVE MODE'); // every read of meta now waits
    try {
      const started = Date.now();
      const r = await get(s, '/readyz');
      expect(r.status).toBe(503);
      expect(r.body.checks.database).toMatchObject({ ok: false, error: 'timeout' });
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await c.query('ROLLBACK');
      await c.end();
    }
    await waitFor(async () => (await get(s!, '/readyz')).status === 200, 10_000, 'ready again');
  });
});

describe.skipIf(!redisUrl())('readiness with Redis', () => {
  it('checks Redis: 200 while it answers, 503 naming redis when it goes away, 200 once back', async () => {
    const proxy = await tcpProxy(new URL(redisUrl()!));
    const s = await startTestServer({ env: { REDIS_URL: proxy.url() } });
    try {
      const ok = await get(s, '/readyz');
      expect(ok.status).toBe(200);
      expect(ok.body.checks.redis?.ok).toBe(true);

      await proxy.stop();
      const down = await get(s, '/readyz');
      expect(down.status).toBe(503);
      expect(down.body.failed).toEqual(['redis']);
      expect(down.body.checks.redis?.ok).toBe(false);
      expect(down.body.checks.database.ok).toBe(true);
      expect((await get(s, '/healthz')).status).toBe(200);

      await proxy.start();
      await waitFor(async () => (await get(s, '/readyz')).status === 200, 15_000, 'redis back');
    } finally {
      await s.close();
      await proxy.stop();
    }
  });
});

describe('readiness while shutting down', () => {
  it('answers 503 "shutdown" once closing has begun', async () => {
    const s = await startTestServer();
    try {
      s.services.readiness.drain();
      const r = await get(s, '/readyz');
      expect(r.status).toBe(503);
      expect(r.body.failed).toEqual(['shutdown']);
    } finally {
      await s.close();
    }
  });
});
