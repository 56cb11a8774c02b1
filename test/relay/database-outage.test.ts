// PostgreSQL going away under a running gateway (a restart, a failover, a network cut), as a
// TCP proxy in front of it shows: the process must not die of its idle connections' errors;
// a request that needs the database answers 503 service_unavailable with retry-after (not a
// 500); a cached key keeps being served, and every answer given meanwhile is logged and
// charged once the database is back. A server that stops answering without closing the
// connection (stalled, or a link that drops packets) costs at most MOLE_DB_TIMEOUT_MS.
import { describe, expect, it } from 'vitest';
import { pgRows } from '../helpers/pg-once.js';
import { waitFor } from '../helpers/process.js';
import { tcpProxy } from '../helpers/tcp-proxy.js';
import { pgUrl, startTestServer, userWithKey } from '../helpers/server.js';
import { addPricedChannel, rawRelay, uniq } from './relay-helpers.js';

/**
 * A gateway on PostgreSQL through a proxy (`env` added), a priced model, and two funded keys:
 * `cached` already used once (its key in the verifier's cache), `uncached` never.
 */
async function scenario(env: Record<string, string> = {}) {
  const proxy = await tcpProxy(new URL(pgUrl()!));
  const s = await startTestServer({ backend: 'postgres', env: { DATABASE_URL: proxy.url(), ...env } });
  const model = uniq('pg-outage');
  await addPricedChannel(s, { type: 'mock' }, { [model]: { input: 1, output: 2 } });
  const cached = await userWithKey(s, { balance: 10 });
  const uncached = await userWithKey(s, { balance: 10 });
  const ask = (secret: string) =>
    rawRelay(s, '/chat/completions', {
      key: secret,
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }),
      // A hang fails here, through the abort, rather than through the test's own timeout.
      signal: AbortSignal.timeout(10_000),
    });
  expect((await ask(cached.secret)).status).toBe(200);
  return {
    proxy,
    s,
    cached,
    uncached,
    ask,
    /** Once the uncached key is served again: the cached key's log rows. */
    async servedAgain() {
      await waitFor(async () => (await ask(uncached.secret)).status === 200, 15_000, 'served again');
      await s.services.flush();
      const rows = await s.api('GET', `/api/logs?key_id=${cached.key.id}&limit=50`);
      return (rows.body as { data: { status: number; cost: number }[] }).data;
    },
    async close() {
      await s.close();
      await proxy.stop();
    },
  };
}

/** PostgreSQL's clock, to tell the queries that come after this instant. */
const pgNow = async (): Promise<string> =>
  (await pgRows<{ now: string }>(pgUrl()!, 'select now()::text as now'))[0]!.now;

/**
 * Whether PostgreSQL has received a key lookup since `since` from one of `ports` (the proxy's
 * connections): its text stays in pg_stat_activity after it ran, answer dropped or not.
 */
const keyLookupSent = async (ports: number[], since: string): Promise<boolean> =>
  (
    await pgRows(
      pgUrl()!,
      `select 1 from pg_stat_activity where client_port = any($1::int[]) and query_start > $2::timestamptz
         and query like '%"api_keys"%' and query like '%"key_hash"%'`,
      [ports, since],
    )
  ).length > 0;

describe.skipIf(!pgUrl())('relay while PostgreSQL is away', () => {
  it('answers 503 where the database is needed, serves cached keys, and loses no row', async () => {
    const { proxy, s, cached, uncached, ask, servedAgain, close } = await scenario();
    try {
      // The database stops answering while a lookup is on its way (a connection checked out
      // of the pool, its query sent), then the link is cut under it.
      const since = await pgNow();
      proxy.dropReplies();
      const cutMidQuery = ask(uncached.secret);
      await waitFor(() => keyLookupSent(proxy.upstreamPorts(), since), 5_000, 'the key lookup in PostgreSQL');
      await proxy.stop();
      expect((await cutMidQuery).status).toBe(503);
      for (let i = 0; i < 3; i++) expect((await ask(cached.secret)).status).toBe(200);
      const refused = await ask(uncached.secret);
      expect(refused.status, refused.text).toBe(503);
      expect(refused.json.error.code).toBe('service_unavailable');
      expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(JSON.stringify(refused.json)).not.toContain('127.0.0.1');
      const logs = await s.api('GET', '/api/logs?limit=5');
      expect(logs.status).toBe(503);
      expect((logs.body as { error: { code: string } }).error.code).toBe('service_unavailable');
      // Idle and busy pooled connections saw the cut; the process is still here to say so.
      expect((await fetch(`${s.url}/healthz`)).status).toBe(200);

      await proxy.start();
      const rows = await servedAgain();
      expect(rows.filter((r) => r.status === 200)).toHaveLength(4);
      expect(rows.every((r) => r.cost > 0)).toBe(true);
    } finally {
      await close();
    }
  });
  it('a stalled server: 503 after MOLE_DB_TIMEOUT_MS where the database is needed, then served again', async () => {
    const { proxy, s, cached, uncached, ask, servedAgain, close } = await scenario({
      MOLE_DB_TIMEOUT_MS: '500',
    });
    try {
      proxy.dropReplies();
      const stalled = await ask(uncached.secret);
      expect(stalled.status, stalled.text).toBe(503);
      expect(stalled.json.error.code).toBe('service_unavailable');
      expect(stalled.headers.get('retry-after')).toMatch(/^\d+$/);
      const logs = await s.api('GET', '/api/logs?limit=5');
      expect(logs.status).toBe(503);
      expect((await ask(cached.secret)).status).toBe(200);

      // The stalled connections are cut; the pool connects anew.
      await proxy.stop();
      await proxy.start();
      expect((await servedAgain()).filter((r) => r.status === 200)).toHaveLength(2);
    } finally {
      await close();
    }
  });
});
