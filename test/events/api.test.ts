// GET /api/events: a user sees the events of their own account and keys only; admins and the
// master key see all, filtered by type, key and user; newest first, cursor-paged.
import { beforeAll, describe, expect, it } from 'vitest';
import { backends, login, userWithKey } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';

describe.each(backends())('GET /api/events (%s)', (backend) => {
  let a: Awaited<ReturnType<typeof userWithKey>>;
  let b: Awaited<ReturnType<typeof userWithKey>>;
  let cookieA: string;

  const s = suiteServer({ backend });
  beforeAll(async () => {
    a = await userWithKey(s);
    b = await userWithKey(s);
    const ev = s.services.events;
    await ev.emit({ type: 'key.expiring', userId: a.user.id, keyId: a.key.id, data: { who: 'a1' } });
    await ev.emit({ type: 'budget.threshold', userId: a.user.id, data: { who: 'a2' } });
    await ev.emit({ type: 'key.leaked', userId: b.user.id, keyId: b.key.id, data: { who: 'b1' } });
    await ev.emit({ type: 'channel.disabled', userId: null, data: { who: 'admin' } });
    cookieA = (await login(s, a.username, a.password)).cookie;
  });

  const who = (body: { data: { data: { who: string } }[] }) => body.data.map((e) => e.data.who);

  it("a user sees only their own account's events, whatever they filter by", async () => {
    const mine = await s.api('GET', '/api/events', undefined, { cookie: cookieA });
    expect(mine.status).toBe(200);
    expect(who(mine.body)).toEqual(['a2', 'a1']);
    expect(mine.body.data[1]).toMatchObject({
      type: 'key.expiring',
      user_id: a.user.id,
      key_id: a.key.id,
    });
    // The webhook's delivery state is for admins only.
    expect(mine.body.data.every((e: object) => !('delivery' in e))).toBe(true);
    // A filter on another account finds nothing (as one on another's key does).
    const asB = await s.api('GET', `/api/events?user_id=${b.user.id}`, undefined, { cookie: cookieA });
    expect(asB.body.data).toEqual([]);
    const asA = await s.api('GET', `/api/events?user_id=${a.user.id}`, undefined, { cookie: cookieA });
    expect(who(asA.body)).toEqual(['a2', 'a1']);
    const bKey = await s.api('GET', `/api/events?key_id=${b.key.id}`, undefined, { cookie: cookieA });
    expect(bKey.body.data).toEqual([]);
    const leaked = await s.api('GET', '/api/events?type=key.leaked', undefined, { cookie: cookieA });
    expect(leaked.body.data).toEqual([]);
  });

  it('the master key sees every event, admin-only ones too, and filters', async () => {
    const all = await s.api('GET', '/api/events');
    expect(who(all.body)).toEqual(['admin', 'b1', 'a2', 'a1']);
    // No webhook configured: nothing was queued.
    expect(all.body.data.map((e: { delivery: unknown }) => e.delivery)).toEqual([null, null, null, null]);
    expect(who((await s.api('GET', `/api/events?user_id=${b.user.id}`)).body)).toEqual(['b1']);
    expect(who((await s.api('GET', `/api/events?key_id=${a.key.id}`)).body)).toEqual(['a1']);
    expect(who((await s.api('GET', '/api/events?type=channel.disabled')).body)).toEqual(['admin']);
  });

  it('pages newest first with a cursor', async () => {
    const first = await s.api('GET', '/api/events?limit=3');
    expect(who(first.body)).toEqual(['admin', 'b1', 'a2']);
    expect(first.body.next_cursor).toEqual(expect.any(String));
    const second = await s.api('GET', `/api/events?limit=3&cursor=${first.body.next_cursor}`);
    expect(who(second.body)).toEqual(['a1']);
    expect(second.body.next_cursor).toBeNull();
  });

  it('refuses strangers and unknown filters', async () => {
    const anon = await fetch(`${s.url}/api/events`);
    expect(anon.status).toBe(401);
    expect((await s.api('GET', '/api/events?type=nope')).status).toBe(422);
    expect((await s.api('GET', '/api/events?colour=red')).status).toBe(422);
  });
});
