// A leak report reaching one gateway switches the key off on every gateway sharing its
// PostgreSQL and Redis within a second (contract §8), although both held the key in their
// caches; and the anomaly guard counts client IPs across both.
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { clusterReady, freezePair, pairForSuite } from './helpers.js';
import { type TestServer, userWithKey } from '../helpers/server.js';
import { expectRelayError, relay } from '../foundation/util.js';
import { type FakeGithub, fakeGithub, match } from '../security/helpers.js';

const enabled = clusterReady('leak revocation suite');

describe.skipIf(!enabled)('leak response on two instances sharing PostgreSQL + Redis', () => {
  let gh: FakeGithub;
  afterAll(() => gh?.cleanup());
  const { a, b } = pairForSuite(() => {
    gh = fakeGithub();
    return {
      env: { MOLE_SECRET_SCANNING_KEYS: gh.file, MOLE_TRUSTED_PROXIES: '127.0.0.1' },
      prices: { 'mole-mini': { input: 1000, output: 1000 } },
    };
  });
  // The guard counts IPs and spend per clock hour: an hour starting between two calls of a test
  // would count afresh.
  beforeEach(() => freezePair(a, b));

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

  /** A key under an IP `guard`, and a call with it to instance `s` from client `ip`. */
  async function guardedKey(guard: Record<string, unknown>) {
    const { key, secret } = await userWithKey(a, { key: { guard } });
    return {
      key,
      call: (s: TestServer, ip: string) => relay(s, secret, { headers: { 'x-forwarded-for': ip } }),
    };
  }

  it('the IP guard counts client IPs seen by either instance', async () => {
    const { key, call } = await guardedKey({ max_ips_per_hour: 2, action: 'disable' });
    expect((await call(a, '198.51.100.1')).status).toBe(200);
    expect((await call(b, '198.51.100.2')).status).toBe(200);
    expect((await call(a, '198.51.100.2')).status).toBe(200);
    expectRelayError(await call(b, '198.51.100.3'), 401, 'key_disabled');
    // b switched the key off; a hears of it over Redis (a message that may trail b's answer).
    await vi.waitFor(async () => expectRelayError(await call(a, '198.51.100.1'), 401, 'key_disabled'));
    const audit = await a.api('GET', `/api/audit?key_id=${key.id}&action=key.auto_disabled`);
    expect(audit.body.data).toHaveLength(1);
  });

  it('an IP alert raised on both instances is one event', async () => {
    const { key, call } = await guardedKey({ max_ips_per_hour: 1, action: 'alert' });
    expect((await call(a, '192.0.2.10')).status).toBe(200);
    expect((await call(b, '192.0.2.11')).status).toBe(200);
    expect((await call(a, '192.0.2.12')).status).toBe(200);
    const events = await a.services.events.list({ limit: 10, keyId: key.id, type: 'key.auto_disabled' });
    expect(events.data).toHaveLength(1);
    expect(events.data[0]?.data).toMatchObject({ action: 'alert', metric: 'ips' });
  });

  it('spend per hour adds up what both instances settled', async () => {
    const { key, secret } = await userWithKey(a, { balance: 100 });
    const chat = (s: TestServer) =>
      relay(s, secret, {
        method: 'POST',
        path: '/v1/chat/completions',
        body: { model: 'mole-mini', messages: [{ role: 'user', content: 'dig' }], max_tokens: 12 },
      });
    // A refusal names its code: the first call was once refused 403 under a full suite's load.
    const answered = async (s: TestServer) => {
      const r = await chat(s);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
    };
    await answered(a);
    await a.services.flush();
    const cost = (await a.api('GET', `/api/keys/${key.id}`)).body.used as number;
    expect(cost).toBeGreaterThan(0);
    // From now on (the call above was before any guard, so it does not count): 1.5 calls' worth.
    const set = await a.api('PATCH', `/api/keys/${key.id}`, {
      guard: { max_spend_per_hour: cost * 1.5, action: 'disable' },
    });
    expect(set.status).toBe(200);
    // b has heard of the new guard (its cached key was dropped over Redis).
    await vi.waitFor(async () => {
      const v = await b.services.verifier.verify(secret, '127.0.0.1');
      expect(v.ok && v.key.guard).toBeTruthy();
    });
    await answered(b);
    expect((await a.api('GET', `/api/keys/${key.id}`)).body.status).toBe('active');
    await answered(a); // the second guarded call passes 1.5 calls' worth
    await vi.waitFor(async () => expectRelayError(await relay(b, secret), 401, 'key_disabled'));
    const audit = await a.api('GET', `/api/audit?key_id=${key.id}&action=key.auto_disabled`);
    expect(audit.body.data).toHaveLength(1);
    expect(audit.body.data[0].changes).toMatchObject({ metric: 'spend' });
  });
});
