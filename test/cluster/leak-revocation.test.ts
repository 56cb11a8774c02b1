// A leak report reaching one gateway switches the key off on every gateway sharing its
// PostgreSQL and Redis within a second (contract §8), although both held the key in their
// caches; and the anomaly guard counts client IPs across both.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgUrl, redisUrl, startTestServer, type TestServer, userWithKey } from '../helpers/server.js';
import { expectRelayError, relay } from '../foundation/util.js';
import { type FakeGithub, fakeGithub, match } from '../security/helpers.js';

const enabled = !!pgUrl() && !!redisUrl();
if (!enabled) console.warn('[moleapi tests] SKIPPING leak revocation suite: needs PostgreSQL and Redis');

describe.skipIf(!enabled)('leak response on two instances sharing PostgreSQL + Redis', () => {
  let a: TestServer;
  let b: TestServer;
  let gh: FakeGithub;
  beforeAll(async () => {
    gh = fakeGithub();
    const env = { MOLE_SECRET_SCANNING_KEYS: gh.file, MOLE_TRUSTED_PROXIES: '127.0.0.1' };
    a = await startTestServer({ backend: 'postgres', redis: true, env });
    b = await startTestServer({ shareWith: a, redis: true, env });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    gh?.cleanup();
  });

  it('a signed report to one instance revokes the key on both in under 1 s', async () => {
    const { key, secret } = await userWithKey(a);
    // Both instances hold the key in their caches.
    for (const s of [a, b]) {
      expect((await relay(s, secret)).status).toBe(200);
      expect((await relay(s, secret)).status).toBe(200);
    }
    const t0 = performance.now();
    const r = await gh.report(a, [match(secret)]);
    expect(r.status).toBe(200);
    expect(r.body[0].label).toBe('true_positive');
    // Poll the other instance until it refuses the key.
    let elapsed = Number.POSITIVE_INFINITY;
    while (performance.now() - t0 < 3000) {
      const res = await relay(b, secret);
      if (res.status === 401) {
        elapsed = performance.now() - t0;
        expectRelayError(res, 401, 'key_disabled');
        break;
      }
    }
    console.log(
      `[leak revocation] report answered in ${r.ms.toFixed(0)} ms; the other instance refused the key ${elapsed.toFixed(0)} ms after the report was sent`,
    );
    expect(elapsed).toBeLessThan(1000);
    expectRelayError(await relay(a, secret), 401, 'key_disabled');
    expect((await b.api('GET', `/api/keys/${key.id}`)).body).toMatchObject({
      status: 'disabled',
      locked: true,
    });
  });

  it('the IP guard counts client IPs seen by either instance', async () => {
    const { key, secret } = await userWithKey(a, {
      key: { guard: { max_ips_per_hour: 2, action: 'disable' } },
    });
    const from = (ip: string) => ({ headers: { 'x-forwarded-for': ip } });
    expect((await relay(a, secret, from('198.51.100.1'))).status).toBe(200);
    expect((await relay(b, secret, from('198.51.100.2'))).status).toBe(200);
    expect((await relay(a, secret, from('198.51.100.2'))).status).toBe(200);
    expectRelayError(await relay(b, secret, from('198.51.100.3')), 401, 'key_disabled');
    expectRelayError(await relay(a, secret, from('198.51.100.1')), 401, 'key_disabled');
    const audit = await a.api('GET', `/api/audit?key_id=${key.id}&action=key.auto_disabled`);
    expect(audit.body.data).toHaveLength(1);
  });
});
