// The anomaly guard (contract §8): distinct client IPs and spend per key and clock hour.
// `disable` switches the key off and locks it at once (the request that brings a new IP past
// the limit is refused as key_disabled), audited `key.auto_disabled` with the reason;
// `alert` only raises the event, once per key, hour and threshold. Client IPs are the ones
// the trusted-proxy setting believes: a forged X-Forwarded-For counts for nothing.
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { pricedServerForSuite } from '../helpers/priced-model.js';
import { backends, type TestServer } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import { expectOwnerCannotEnable } from '../helpers/locked-key.js';
import { createKey, createUser, expectApiError, expectRelayError, relay } from '../foundation/util.js';

const from = (ip: string) => ({ headers: { 'x-forwarded-for': ip } });

async function autoDisabledEvents(s: TestServer, keyId: number) {
  return (await s.services.events.list({ limit: 50, keyId, type: 'key.auto_disabled' })).data;
}

describe.each(backends())('anomaly guard behind a trusted proxy [%s]', (backend) => {
  let s: TestServer;
  // Expensive on purpose: one chat costs a few cents.
  const price = { input: 1000, output: 1000 };
  pricedServerForSuite({ backend, env: { MOLE_TRUSTED_PROXIES: '127.0.0.1/32,::1' } }, price, (started) => {
    s = started;
  });
  // The guard counts IPs and spend per clock hour: an hour starting between two requests of a
  // test would count afresh. Each test runs on a stopped clock (the returned thaw runs after it).
  beforeEach(() => s.clock.freeze());

  it('validates the guard and shows it on the key', async () => {
    const { user } = await createUser(s);
    for (const guard of [
      { action: 'alert' },
      { max_ips_per_hour: 0, action: 'alert' },
      { max_ips_per_hour: 2, action: 'block' },
      { max_spend_per_hour: -1, action: 'disable' },
      { max_spend_per_hour: 0.0000000001, action: 'disable' },
      { max_ips_per_hour: 2, action: 'alert', extra: 1 },
    ])
      expectApiError(
        await s.api('POST', '/api/keys', { name: 'g', user_id: user.id, guard }),
        422,
        'validation_error',
      );
    const k = await createKey(s, user.id, {
      guard: { max_ips_per_hour: 3, max_spend_per_hour: 1.5, action: 'alert' },
    });
    expect(k.key.guard).toEqual({ max_ips_per_hour: 3, max_spend_per_hour: 1.5, action: 'alert' });
    const cleared = await s.api('PATCH', `/api/keys/${k.id}`, { guard: null });
    expect(cleared.body.guard).toBeNull();
    const audit = await s.api('GET', `/api/audit?key_id=${k.id}&action=key.update`);
    expect(audit.body.data[0].changes.guard).toEqual({
      from: { max_ips_per_hour: 3, max_spend_per_hour: 1.5, action: 'alert' },
      to: null,
    });
  });

  it('disable: the request from the IP past the limit is refused, the key is off and locked', async () => {
    const { user, username, password } = await createUser(s);
    const k = await createKey(s, user.id, { guard: { max_ips_per_hour: 2, action: 'disable' } });
    expect((await relay(s, k.secret, from('203.0.113.1'))).status).toBe(200);
    expect((await relay(s, k.secret, from('203.0.113.2'))).status).toBe(200);
    // Known IPs keep working.
    expect((await relay(s, k.secret, from('203.0.113.1'))).status).toBe(200);
    const third = await relay(s, k.secret, from('203.0.113.3'));
    expectRelayError(third, 401, 'key_disabled');
    expect(third.headers.get('x-should-retry')).toBe('false');
    // From now on every IP is refused, and the key shows as locked.
    expectRelayError(await relay(s, k.secret, from('203.0.113.1')), 401, 'key_disabled');
    expect((await s.api('GET', `/api/keys/${k.id}`)).body).toMatchObject({
      status: 'disabled',
      locked: true,
    });
    const audit = await s.api('GET', `/api/audit?key_id=${k.id}&action=key.auto_disabled`);
    expect(audit.body.data).toHaveLength(1);
    expect(audit.body.data[0]).toMatchObject({
      actor: 'system:guard',
      changes: { metric: 'ips', limit: 2, value: 3, status: { from: 'active', to: 'disabled' } },
    });
    expect(audit.body.data[0].changes.reason).toMatch(/more than 2 client IPs/);
    const events = await autoDisabledEvents(s, k.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      user_id: user.id,
      data: { action: 'disable', disabled: true, metric: 'ips' },
    });
    // Its owner cannot switch it back on.
    await expectOwnerCannotEnable(s, { username, password }, k.id);
  });

  it('each lock raises its event: after an alert of the same hour, and again after an enable', async () => {
    const { user } = await createUser(s);
    const group = `g${Date.now().toString(36)}`;
    await s.api('PUT', `/api/groups/${group}`, {
      multiplier: 1,
      guard: { max_ips_per_hour: 2, action: 'disable' },
    });
    // The key alerts past one IP; its group disables past two.
    const k = await createKey(s, user.id, { group, guard: { max_ips_per_hour: 1, action: 'alert' } });
    expect((await relay(s, k.secret, from('203.0.113.21'))).status).toBe(200);
    expect((await relay(s, k.secret, from('203.0.113.22'))).status).toBe(200);
    expectRelayError(await relay(s, k.secret, from('203.0.113.23')), 401, 'key_disabled');
    const actions = async () => (await autoDisabledEvents(s, k.id)).map((e) => e.data.action).sort();
    expect(await actions()).toEqual(['alert', 'disable']);
    // Enabled by an admin, then off again within the hour: a second disable, a second event.
    await s.api('PATCH', `/api/keys/${k.id}`, { status: 'active' });
    expectRelayError(await relay(s, k.secret, from('203.0.113.24')), 401, 'key_disabled');
    expect(await actions()).toEqual(['alert', 'disable', 'disable']);
    expect((await s.api('GET', `/api/audit?key_id=${k.id}&action=key.auto_disabled`)).body.data).toHaveLength(
      2,
    );
  });

  it('alert: the key keeps working; one event per key, hour and threshold', async () => {
    const { user } = await createUser(s);
    const k = await createKey(s, user.id, { guard: { max_ips_per_hour: 1, action: 'alert' } });
    for (const ip of ['203.0.113.10', '203.0.113.11', '203.0.113.12', '203.0.113.11'])
      expect((await relay(s, k.secret, from(ip))).status).toBe(200);
    const events = await autoDisabledEvents(s, k.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      data: { action: 'alert', disabled: false, metric: 'ips', limit: 1, value: 2 },
    });
    expect((await s.api('GET', `/api/keys/${k.id}`)).body).toMatchObject({ status: 'active', locked: false });
    expect((await s.api('GET', `/api/audit?key_id=${k.id}&action=key.auto_disabled`)).body.data).toHaveLength(
      0,
    );
    // The next hour starts afresh: a second crossing raises a second event.
    s.clock.advance(3_600_000);
    for (const ip of ['203.0.113.10', '203.0.113.13'])
      expect((await relay(s, k.secret, from(ip))).status).toBe(200);
    expect(await autoDisabledEvents(s, k.id)).toHaveLength(2);
  });

  it('counts per clock hour: IPs of the previous hour do not add up', async () => {
    const { user } = await createUser(s);
    const k = await createKey(s, user.id, { guard: { max_ips_per_hour: 1, action: 'disable' } });
    expect((await relay(s, k.secret, from('198.18.0.1'))).status).toBe(200);
    s.clock.advance(3_600_000);
    expect((await relay(s, k.secret, from('198.18.0.2'))).status).toBe(200);
    s.clock.advance(3_600_000);
    expect((await relay(s, k.secret, from('198.18.0.3'))).status).toBe(200);
    expectRelayError(await relay(s, k.secret, from('198.18.0.4')), 401, 'key_disabled');
  });

  it('spend per hour: disable switches the key off once it spent past the limit', async () => {
    const { user } = await createUser(s, { balance: 100 });
    const chatWith = (secret: string) =>
      relay(s, secret, {
        method: 'POST',
        path: '/v1/chat/completions',
        body: { model: 'mole-mini', messages: [{ role: 'user', content: 'dig' }], max_tokens: 12 },
      });
    const chat = () => chatWith(k.secret);
    // Learn what one call costs, then allow a bit more than one per hour.
    const probe = await createKey(s, user.id);
    expect((await chatWith(probe.secret)).status).toBe(200);
    await s.services.flush();
    const cost = (await s.api('GET', `/api/keys/${probe.id}`)).body.used as number;
    expect(cost).toBeGreaterThan(0);
    const k = await createKey(s, user.id, { guard: { max_spend_per_hour: cost * 1.5, action: 'disable' } });
    expect((await chat()).status).toBe(200);
    expect((await s.api('GET', `/api/keys/${k.id}`)).body.status).toBe('active');
    expect((await chat()).status).toBe(200); // this one passes the limit: the key goes off after it
    await vi.waitFor(async () =>
      expect((await s.api('GET', `/api/keys/${k.id}`)).body.status).toBe('disabled'),
    );
    expectRelayError(await chat(), 401, 'key_disabled');
    const audit = await s.api('GET', `/api/audit?key_id=${k.id}&action=key.auto_disabled`);
    expect(audit.body.data[0].changes).toMatchObject({ metric: 'spend', limit: cost * 1.5 });
    expect(audit.body.data[0].changes.reason).toMatch(/spent more than/);
  });

  it('spend per hour: alert raises one event and the key keeps working; a new hour resets', async () => {
    const { user } = await createUser(s, { balance: 100 });
    const k = await createKey(s, user.id, { guard: { max_spend_per_hour: 0.000001, action: 'alert' } });
    const chat = () =>
      relay(s, k.secret, {
        method: 'POST',
        path: '/v1/chat/completions',
        body: { model: 'mole-mini', messages: [{ role: 'user', content: 'dig' }], max_tokens: 12 },
      });
    for (let i = 0; i < 3; i++) expect((await chat()).status).toBe(200);
    await vi.waitFor(async () => expect(await autoDisabledEvents(s, k.id)).toHaveLength(1));
    expect((await autoDisabledEvents(s, k.id))[0]).toMatchObject({
      data: { action: 'alert', metric: 'spend' },
    });
    s.clock.advance(3_600_000);
    expect((await chat()).status).toBe(200);
    await vi.waitFor(async () => expect(await autoDisabledEvents(s, k.id)).toHaveLength(2));
    expect((await s.api('GET', `/api/keys/${k.id}`)).body.status).toBe('active');
  });

  it("a group's guard applies to its keys beside their own (an owner cannot loosen it)", async () => {
    const g = await s.api('PUT', '/api/groups/guarded', {
      multiplier: 1,
      guard: { max_ips_per_hour: 1, action: 'disable' },
    });
    expect(g.status, JSON.stringify(g.body)).toBe(200);
    expect(g.body.guard).toEqual({ max_ips_per_hour: 1, action: 'disable' });
    expect(
      (await s.api('GET', '/api/groups')).body.data.find((x: { name: string }) => x.name === 'guarded').guard,
    ).toEqual({ max_ips_per_hour: 1, action: 'disable' });
    // Changing only the multiplier keeps the guard.
    expect((await s.api('PUT', '/api/groups/guarded', { multiplier: 2 })).body.guard).toEqual({
      max_ips_per_hour: 1,
      action: 'disable',
    });
    const { user } = await createUser(s, { group: 'guarded' });
    const plain = await createKey(s, user.id);
    // A laxer guard of the key's own does not escape the group's.
    const lax = await createKey(s, user.id, { guard: { max_ips_per_hour: 5, action: 'alert' } });
    // Where both are passed, the disabling one acts.
    const strict = await createKey(s, user.id, { guard: { max_ips_per_hour: 1, action: 'alert' } });
    for (const k of [plain, lax, strict])
      expect((await relay(s, k.secret, from('192.0.2.1'))).status).toBe(200);
    for (const k of [plain, lax, strict])
      expectRelayError(await relay(s, k.secret, from('192.0.2.2')), 401, 'key_disabled');
    const audit = await s.api('GET', `/api/audit?key_id=${lax.id}&action=key.auto_disabled`);
    expect(audit.body.data[0].changes).toMatchObject({ metric: 'ips', limit: 1 });
    expect((await s.api('PUT', '/api/groups/guarded', { multiplier: 1, guard: null })).body.guard).toBeNull();
  });
});

describe('anomaly guard without a trusted proxy', () => {
  const s = suiteServer({});

  it('a forged X-Forwarded-For counts for nothing: every request is the socket address', async () => {
    const { user } = await createUser(s);
    const k = await createKey(s, user.id, { guard: { max_ips_per_hour: 1, action: 'disable' } });
    for (let i = 1; i <= 10; i++) {
      const r = await relay(s, k.secret, from(`203.0.113.${i}`));
      expect(r.status).toBe(200);
    }
    expect((await s.api('GET', `/api/keys/${k.id}`)).body).toMatchObject({
      status: 'active',
      last_used_ip: '127.0.0.1',
    });
    expect(await autoDisabledEvents(s, k.id)).toHaveLength(0);
  });
});
