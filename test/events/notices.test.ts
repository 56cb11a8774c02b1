// The events the gateway raises itself: `key.expiring` 7 days and 1 day before a key expires
// (once each, however often the scan runs; the clock is moved, never waited for) and
// `channel.disabled` when an admin or the health check switches a channel off (admins only).
import { describe, expect, it } from 'vitest';
import { backends, login, userWithKey } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';

const DAY = 24 * 3600_000;

describe.each(backends())('key.expiring and channel.disabled (%s)', (backend) => {
  const s = suiteServer({ backend });

  const eventsOf = async (type: string, headers?: Record<string, string>) =>
    (await s.api('GET', `/api/events?type=${type}`, undefined, headers)).body.data as {
      user_id: number | null;
      key_id: number | null;
      data: Record<string, unknown>;
    }[];

  it('fires once 7 days and once 1 day before a key expires', async () => {
    const expiresAt = new Date(s.clock.now() + 8 * DAY).toISOString();
    const u = await userWithKey(s, { key: { expires_at: expiresAt } });
    const later = await s.api('POST', '/api/keys', {
      name: 'far',
      user_id: u.user.id,
      expires_at: new Date(s.clock.now() + 30 * DAY).toISOString(),
    });
    const off = await s.api('POST', '/api/keys', { name: 'off', user_id: u.user.id, expires_at: expiresAt });
    expect((await s.api('PATCH', `/api/keys/${off.body.id}`, { status: 'disabled' })).status).toBe(200);
    const mine = (await login(s, u.username, u.password)).cookie;
    const expiring = () => eventsOf('key.expiring', { cookie: mine });

    await s.services.expiryScanner.scan();
    expect(await expiring()).toEqual([]);

    s.clock.advance(DAY + 60_000); // 6 d 23 h 59 min left
    await s.services.expiryScanner.scan();
    await s.services.expiryScanner.scan();
    expect(await expiring()).toEqual([
      {
        id: expect.any(String),
        type: 'key.expiring',
        created_at: expect.any(String),
        user_id: u.user.id,
        key_id: u.key.id,
        data: { key_name: 'test-key', key_display: u.key.display, expires_at: expiresAt, days_before: 7 },
      },
    ]);

    s.clock.advance(3 * DAY);
    await s.services.expiryScanner.scan();
    expect(await expiring()).toHaveLength(1);

    s.clock.advance(3 * DAY); // 23 h 59 min left
    await s.services.expiryScanner.scan();
    await s.services.expiryScanner.scan();
    const both = await expiring();
    expect(both.map((e) => e.data.days_before)).toEqual([1, 7]);
    expect(both.every((e) => e.key_id === u.key.id)).toBe(true);

    s.clock.advance(DAY); // expired: nothing more
    await s.services.expiryScanner.scan();
    expect(await expiring()).toHaveLength(2);
    expect(later.status).toBe(201);
    expect(JSON.stringify(await eventsOf('key.expiring'))).not.toContain(u.secret);
  });

  it('tells at once about a key created within a day of its expiry (1-day notice only)', async () => {
    const u = await userWithKey(s, {
      key: { expires_at: new Date(s.clock.now() + 20 * 3600_000).toISOString() },
    });
    const mine = async () => (await eventsOf('key.expiring')).filter((e) => e.key_id === u.key.id);
    // No scan is called here: the key's creation triggers one.
    await expect.poll(async () => (await mine()).length, { timeout: 5_000, interval: 20 }).toBe(1);
    expect((await mine())[0]!.data.days_before).toBe(1);
  });

  it('reports a channel an admin disables, once, to admins only', async () => {
    const ch = await s.api('POST', '/api/channels', { name: 'by-hand', type: 'mock', models: ['m-1'] });
    expect(ch.status).toBe(201);
    expect((await s.api('PATCH', `/api/channels/${ch.body.id}`, { status: 'disabled' })).status).toBe(200);
    expect((await s.api('PATCH', `/api/channels/${ch.body.id}`, { status: 'disabled' })).status).toBe(200);
    expect((await s.api('PATCH', `/api/channels/${ch.body.id}`, { priority: 3 })).status).toBe(200);
    const mine = (await eventsOf('channel.disabled')).filter((e) => e.data.channel_id === ch.body.id);
    expect(mine).toEqual([
      expect.objectContaining({
        user_id: null,
        key_id: null,
        data: { channel_id: ch.body.id, channel_name: 'by-hand', reason: null, by: 'master' },
      }),
    ]);
    const u = await userWithKey(s);
    const cookie = (await login(s, u.username, u.password)).cookie;
    expect(await eventsOf('channel.disabled', { cookie })).toEqual([]);
  });

  it('reports a channel the health check switches off (upstream 401), once', async () => {
    const ch = await s.api('POST', '/api/channels', {
      name: 'bad-credential',
      type: 'mock',
      models: ['m-2'],
      api_key: 'sk-upstream-secret-credential',
    });
    const live = s.services.channels.get(ch.body.id)!;
    s.services.channels.reportFailure(live, 'upstream answered 401', true);
    s.services.channels.reportFailure(live, 'upstream answered 401', true);
    const mine = async () =>
      (await eventsOf('channel.disabled')).filter((e) => e.data.channel_id === ch.body.id);
    await expect.poll(async () => (await mine()).length, { timeout: 5_000, interval: 20 }).toBe(1);
    expect((await mine())[0]!.data).toEqual({
      channel_id: ch.body.id,
      channel_name: 'bad-credential',
      reason: 'upstream answered 401',
      by: 'health',
    });
    expect(JSON.stringify(await mine())).not.toContain('sk-upstream-secret-credential');
  });
});
