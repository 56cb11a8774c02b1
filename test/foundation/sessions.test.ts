// Console sessions and tenancy (contract §3): login/logout, cookie flags, CSRF, throttling,
// users seeing and changing only their own keys, logs, usage and audit; admin-only routes.
import { beforeAll, describe, expect, it } from 'vitest';
import { backends, login, type TestServer } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import { createKey, createUser, expectApiError, raw, relay, session } from './util.js';

const postJson = (s: TestServer, p: string, body: unknown, headers: Record<string, string> = {}) =>
  raw(s, 'POST', p, {
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

describe.each(backends())('sessions [%s]', (backend) => {
  const s = suiteServer({ backend });

  it('login sets an HttpOnly, SameSite session cookie and answers {user, csrf_token}', async () => {
    const { user, username, password } = await createUser(s);
    const r = await postJson(s, '/api/auth/login', { username, password });
    expect(r.status).toBe(200);
    expect(r.body.user).toMatchObject({ id: user.id, username, role: 'user' });
    expect(typeof r.body.csrf_token).toBe('string');
    expect(r.body.csrf_token.length).toBeGreaterThanOrEqual(16);
    expect(JSON.stringify(r.body)).not.toMatch(/password|scrypt/);
    const cookie = r.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^mole_session=[^;]{20,}/);
    expect(cookie).toMatch(/;\s*HttpOnly/i);
    expect(cookie).toMatch(/;\s*SameSite=(Strict|Lax)/i);
    expect(cookie).toMatch(/;\s*Path=\//i);
    const sess = await raw(s, 'GET', '/api/auth/session', { headers: { cookie: cookie.split(';')[0]! } });
    expect(sess.status).toBe(200);
    expect(sess.body).toMatchObject({ user: { id: user.id }, csrf_token: r.body.csrf_token });
    expect((await s.api('GET', '/api/auth/session')).body).toMatchObject({ master: true });
  });

  it('wrong password and unknown user answer the same 401 login_failed', async () => {
    const { username } = await createUser(s);
    const a = await postJson(s, '/api/auth/login', { username, password: 'wrong-password' });
    const b = await postJson(s, '/api/auth/login', {
      username: 'nobody-by-this-name',
      password: 'wrong-password',
    });
    expectApiError(a, 401, 'login_failed');
    expectApiError(b, 401, 'login_failed');
    expect(a.body.error.message).toBe(b.body.error.message);
    expect(a.headers.get('set-cookie')).toBeNull();
    expectApiError(await postJson(s, '/api/auth/login', { username }), 422, 'validation_error');
    expectApiError(
      await postJson(s, '/api/auth/login', { username: 1, password: 2 }),
      422,
      'validation_error',
    );
  });

  it('logout ends the session (and needs the CSRF token)', async () => {
    const { username, password } = await createUser(s);
    const u = await session(s, username, password);
    expect((await u.call('GET', '/api/keys')).status).toBe(200);
    expectApiError(
      await s.api('POST', '/api/auth/logout', undefined, { cookie: u.cookie }),
      403,
      'csrf_failed',
    );
    expect((await u.call('GET', '/api/keys')).status).toBe(200);
    const out = await u.call('POST', '/api/auth/logout');
    expect(out.status).toBe(200);
    expect(out.headers.get('set-cookie') ?? '').toMatch(
      /mole_session=;.*(Max-Age=0|Expires=Thu, 01 Jan 1970)/i,
    );
    // Cleared with the attributes it was set with.
    expect(out.headers.get('set-cookie')).toMatch(/HttpOnly/i);
    expect(out.headers.get('set-cookie')).toMatch(/SameSite=Strict/i);
    expectApiError(await u.call('GET', '/api/keys'), 401, 'unauthorized');
    expectApiError(await u.call('POST', '/api/keys', { name: 'after-logout' }), 401, 'unauthorized');
  });

  it('cookie-authenticated writes without, or with a wrong, x-csrf-token are refused with 403 and change nothing', async () => {
    const { user, username, password } = await createUser(s);
    const u = await session(s, username, password);
    const other = await session(s, username, password); // a second session of the same user
    const { id } = await createKey(s, user.id, { name: 'keep-me' });
    const writes: Array<[string, string, unknown]> = [
      ['POST', '/api/keys', { name: 'csrf-made' }],
      ['PATCH', `/api/keys/${id}`, { name: 'csrf-renamed' }],
      ['PATCH', `/api/keys/${id}`, { status: 'disabled' }],
      ['POST', `/api/keys/${id}/rotate`, {}],
      ['DELETE', `/api/keys/${id}`, undefined],
      ['PATCH', `/api/users/${user.id}`, { password: 'hijacked-password' }],
    ];
    for (const [method, p, body] of writes) {
      for (const token of [undefined, '', 'wrong-token', u.csrf + 'x', other.csrf]) {
        const headers: Record<string, string> = {
          cookie: u.cookie,
          ...(token !== undefined ? { 'x-csrf-token': token } : {}),
        };
        expectApiError(await s.api(method, p, body, headers), 403, 'csrf_failed');
      }
    }
    const keys = await u.call('GET', '/api/keys');
    expect(keys.body.data.map((k: { name: string; status: string }) => [k.name, k.status])).toEqual([
      ['keep-me', 'active'],
    ]);
    expect((await login(s, username, password)).status).toBe(200);
    // With the right token the same writes go through.
    const made = await u.call('POST', '/api/keys', { name: 'csrf-ok' });
    expect(made.status).toBe(201);
    expect(made.body.user_id).toBe(user.id);
    expect((await u.call('PATCH', `/api/keys/${id}`, { name: 'renamed-ok' })).body.name).toBe('renamed-ok');
    // The master key is not a cookie: no CSRF token needed.
    expect((await s.api('PATCH', `/api/keys/${id}`, { name: 'by-master' })).status).toBe(200);
  });

  it('a session ends when it expires, when the user is disabled or deleted', async () => {
    const a = await createUser(s);
    const expiring = await session(s, a.username, a.password);
    const other = await session(s, a.username, a.password);
    expect((await expiring.call('GET', '/api/keys')).status).toBe(200);
    // Age one session past its expiry in storage; the other stays valid.
    const token = decodeURIComponent(expiring.cookie.split('=')[1]!);
    const { createHash } = await import('node:crypto');
    const hash = createHash('sha256').update(token).digest('hex');
    const upd = await s.services.storage.db
      .updateTable('sessions')
      .set({ expires_at: Date.now() - 1000 })
      .where('token_hash', '=', hash)
      .executeTakeFirst();
    expect(Number(upd.numUpdatedRows)).toBe(1);
    expectApiError(await expiring.call('GET', '/api/keys'), 401, 'unauthorized');
    expect((await other.call('GET', '/api/keys')).status).toBe(200);
    // Disabling the user ends their sessions (re-enabling does not revive them).
    await s.api('PATCH', `/api/users/${a.user.id}`, { status: 'disabled' });
    expectApiError(await other.call('GET', '/api/keys'), 401, 'unauthorized');
    await s.api('PATCH', `/api/users/${a.user.id}`, { status: 'active' });
    expectApiError(await other.call('GET', '/api/keys'), 401, 'unauthorized');
    const fresh = await session(s, a.username, a.password);
    await s.api('DELETE', `/api/users/${a.user.id}`);
    expectApiError(await fresh.call('GET', '/api/keys'), 401, 'unauthorized');
  });

  it('an admin session creates keys for itself by default and for others by user_id', async () => {
    const admin = await createUser(s, { role: 'admin' });
    const other = await createUser(s);
    const a = await session(s, admin.username, admin.password);
    const own = await a.call('POST', '/api/keys', { name: 'admin-own' });
    expect(own.status).toBe(201);
    expect(own.body.user_id).toBe(admin.user.id);
    const theirs = await a.call('POST', '/api/keys', {
      name: 'for-other',
      user_id: other.user.id,
      group: 'any-group',
    });
    expect(theirs.status).toBe(201);
    expect(theirs.body).toMatchObject({ user_id: other.user.id, group: 'any-group' });
    const audit = await s.api('GET', `/api/audit?key_id=${theirs.body.id}`);
    expect(audit.body.data[0]).toMatchObject({
      action: 'key.create',
      actor: `admin:${admin.user.id}`,
      user_id: other.user.id,
    });
  });

  it('a user session acts as that user in the audit trail', async () => {
    const { user, username, password } = await createUser(s);
    const u = await session(s, username, password);
    const k = await u.call('POST', '/api/keys', { name: 'self-made', quota: 1 });
    expect(k.status).toBe(201);
    await u.call('PATCH', `/api/keys/${k.body.id}`, { status: 'disabled' });
    const audit = await u.call('GET', `/api/audit?key_id=${k.body.id}`);
    expect(
      audit.body.data.map((a: { action: string; actor: string; ip: string }) => [a.action, a.actor, a.ip]),
    ).toEqual([
      ['key.disable', `user:${user.id}`, '127.0.0.1'],
      ['key.create', `user:${user.id}`, '127.0.0.1'],
    ]);
    expect(JSON.stringify(audit.body)).not.toContain(k.body.key);
  });
});

describe.each(backends())('login throttling [%s]', (backend) => {
  const s = suiteServer({ backend, env: { MOLE_LOGIN_MAX_FAILURES: '3' } });

  it('answers 429 after MOLE_LOGIN_MAX_FAILURES failures, even to the right password', async () => {
    const { username, password } = await createUser(s);
    const other = await createUser(s);
    for (let i = 0; i < 3; i++)
      expectApiError(
        await postJson(s, '/api/auth/login', { username, password: `wrong-${i}-password` }),
        401,
        'login_failed',
      );
    const t = await postJson(s, '/api/auth/login', { username, password: 'wrong-again-password' });
    expectApiError(t, 429, 'login_throttled');
    expect(Number(t.headers.get('retry-after'))).toBeGreaterThan(0);
    const right = await postJson(s, '/api/auth/login', { username, password });
    expectApiError(right, 429, 'login_throttled');
    expect(right.headers.get('set-cookie')).toBeNull();
    // Another account from the same address is not locked out by it.
    expect(
      (await postJson(s, '/api/auth/login', { username: other.username, password: other.password })).status,
    ).toBe(200);
  });

  it('concurrent guesses cannot slip past the limit', async () => {
    const { username, password } = await createUser(s);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        postJson(s, '/api/auth/login', { username, password: `parallel-guess-${i}` }),
      ),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((st) => st === 401).length).toBeLessThanOrEqual(3);
    expect(statuses.filter((st) => st === 429).length).toBeGreaterThanOrEqual(17);
    expectApiError(await postJson(s, '/api/auth/login', { username, password }), 429, 'login_throttled');
  });

  it('a success before the limit clears the count', async () => {
    const { username, password } = await createUser(s);
    for (let i = 0; i < 2; i++)
      await postJson(s, '/api/auth/login', { username, password: 'wrong-password' });
    expect((await postJson(s, '/api/auth/login', { username, password })).status).toBe(200);
    for (let i = 0; i < 2; i++)
      expectApiError(
        await postJson(s, '/api/auth/login', { username, password: 'wrong-password' }),
        401,
        'login_failed',
      );
    expect((await postJson(s, '/api/auth/login', { username, password })).status).toBe(200);
  });
});

describe.each(backends())('tenancy [%s]', (backend) => {
  let A: Awaited<ReturnType<typeof session>> & { id: number; group: string };
  let B: Awaited<ReturnType<typeof session>> & { id: number };
  let aKey: { id: number; secret: string };
  let aUsername: string;
  const s = suiteServer({ backend });
  beforeAll(async () => {
    const a = await createUser(s, { group: 'team-a', balance: 5 });
    const b = await createUser(s, { balance: 5 });
    aUsername = a.username;
    A = { ...(await session(s, a.username, a.password)), id: a.user.id, group: 'team-a' };
    B = { ...(await session(s, b.username, b.password)), id: b.user.id };
    const k = await A.call('POST', '/api/keys', { name: 'a-secret-project', quota: 1 });
    expect(k.status).toBe(201);
    aKey = { id: k.body.id, secret: k.body.key };
    expect((await relay(s, aKey.secret)).status).toBe(200); // gives A a log row
    const bk = await B.call('POST', '/api/keys', { name: 'b-own' });
    expect(bk.status).toBe(201);
    await relay(s, bk.body.key);
  });

  it("B gets 404 for every operation on A's key, and A's key is untouched", async () => {
    expectApiError(await B.call('GET', `/api/keys/${aKey.id}`), 404, 'not_found');
    expectApiError(await B.call('PATCH', `/api/keys/${aKey.id}`, { name: 'pwned' }), 404, 'not_found');
    expectApiError(await B.call('PATCH', `/api/keys/${aKey.id}`, { status: 'disabled' }), 404, 'not_found');
    expectApiError(await B.call('PATCH', `/api/keys/${aKey.id}`, { quota: 1000 }), 404, 'not_found');
    expectApiError(
      await B.call('POST', `/api/keys/${aKey.id}/rotate`, { grace_seconds: 0 }),
      404,
      'not_found',
    );
    expectApiError(await B.call('DELETE', `/api/keys/${aKey.id}`), 404, 'not_found');
    // Same answer as a key that does not exist: nothing is revealed.
    const missing = await B.call('GET', '/api/keys/999999999');
    const foreign = await B.call('GET', `/api/keys/${aKey.id}`);
    expect(foreign.body).toEqual(missing.body);
    const mine = await A.call('GET', `/api/keys/${aKey.id}`);
    expect(mine.body).toMatchObject({ name: 'a-secret-project', status: 'active', quota: 1 });
    expect((await relay(s, aKey.secret)).status).toBe(200);
  });

  it('lists show only their own keys, whatever the filters say', async () => {
    for (const q of ['', `?user_id=${A.id}`, '?q=a-secret', '?status=active', '?limit=500']) {
      const r = await B.call('GET', `/api/keys${q}`);
      expect(r.status).toBe(200);
      expect(
        r.body.data.every((k: { user_id: number }) => k.user_id === B.id),
        q,
      ).toBe(true);
      expect(JSON.stringify(r.body)).not.toContain('a-secret-project');
    }
    expect((await A.call('GET', '/api/keys')).body.data.map((k: { name: string }) => k.name)).toEqual([
      'a-secret-project',
    ]);
    // The admin sees both.
    const all = await s.api('GET', '/api/keys?limit=500');
    expect(new Set(all.body.data.map((k: { user_id: number }) => k.user_id))).toEqual(new Set([A.id, B.id]));
  });

  it("B cannot create a key on A's account, nor in another group", async () => {
    const r = await B.call('POST', '/api/keys', { name: 'planted', user_id: A.id });
    expect([403, 404]).toContain(r.status);
    expectApiError(r, r.status);
    expectApiError(await B.call('POST', '/api/keys', { name: 'vip', group: 'team-a' }), 403, 'forbidden');
    expectApiError(await B.call('POST', '/api/keys', { name: 'vip', group: 'vip' }), 403, 'forbidden');
    expect((await B.call('POST', '/api/keys', { name: 'own-group', group: 'default' })).status).toBe(201);
    const own = (await B.call('GET', '/api/keys?q=b-own')).body.data[0];
    expectApiError(await B.call('PATCH', `/api/keys/${own.id}`, { group: 'team-a' }), 403, 'forbidden');
    expect((await B.call('POST', '/api/keys', { name: 'self', user_id: B.id })).status).toBe(201);
    expect((await A.call('GET', '/api/keys')).body.data.length).toBe(1);
  });

  it("B never sees A's logs, usage or audit trail", async () => {
    for (const q of ['', `?key_id=${aKey.id}`, `?user_id=${A.id}`, '?limit=500']) {
      const logs = await B.call('GET', `/api/logs${q}`);
      expect(logs.status).toBe(200);
      expect(
        logs.body.data.every((l: { user_id: number }) => l.user_id === B.id),
        q,
      ).toBe(true);
      expect(logs.body.data.some((l: { key_id: number }) => l.key_id === aKey.id)).toBe(false);
      const audit = await B.call('GET', `/api/audit${q}`);
      expect(audit.status).toBe(200);
      expect(
        audit.body.data.every((a: { user_id: number }) => a.user_id === B.id),
        q,
      ).toBe(true);
    }
    expect((await B.call('GET', `/api/logs?key_id=${aKey.id}`)).body.data).toEqual([]);
    expect((await A.call('GET', `/api/logs?key_id=${aKey.id}`)).body.data.length).toBeGreaterThan(0);
    for (const q of [
      '?group_by=key',
      `?group_by=key&key_id=${aKey.id}`,
      `?group_by=day&user_id=${A.id}`,
      '?group_by=model',
    ]) {
      const usage = await B.call('GET', `/api/usage${q}`);
      expect(usage.status).toBe(200);
      expect(JSON.stringify(usage.body)).not.toContain('a-secret-project');
      if (q.includes('group_by=key'))
        expect(
          usage.body.data.every((r: { key_id: number }) => r.key_id !== aKey.id),
          q,
        ).toBe(true);
    }
    const aUsage = await A.call('GET', '/api/usage?group_by=key');
    expect(aUsage.body.data.map((r: { key_id: number }) => r.key_id)).toEqual([aKey.id]);
    // A filter on A's account finds nothing for B; B's own totals are B's alone: one request
    // each so far from the setup.
    expect((await B.call('GET', `/api/usage?group_by=day&user_id=${A.id}`)).body.data).toEqual([]);
    const bDay = await B.call('GET', '/api/usage?group_by=day');
    const aDay = await A.call('GET', '/api/usage?group_by=day');
    expect(bDay.body.data.reduce((n: number, r: { requests: number }) => n + r.requests, 0)).toBe(1);
    expect(
      aDay.body.data.reduce((n: number, r: { requests: number }) => n + r.requests, 0),
    ).toBeGreaterThanOrEqual(1);
  });

  it('users see only themselves among users and cannot change role, group or status', async () => {
    const list = await B.call('GET', '/api/users');
    expect(list.body.data.map((u: { id: number }) => u.id)).toEqual([B.id]);
    expect(JSON.stringify(list.body)).not.toContain(aUsername);
    expectApiError(await B.call('GET', `/api/users/${A.id}`), 404, 'not_found');
    expectApiError(
      await B.call('PATCH', `/api/users/${A.id}`, { password: 'new-password-x' }),
      404,
      'not_found',
    );
    expect((await B.call('GET', `/api/users/${B.id}`)).body.id).toBe(B.id);
    expectApiError(await B.call('PATCH', `/api/users/${B.id}`, { role: 'admin' }), 403, 'forbidden');
    expectApiError(await B.call('PATCH', `/api/users/${B.id}`, { group: 'team-a' }), 403, 'forbidden');
    expectApiError(await B.call('PATCH', `/api/users/${B.id}`, { status: 'disabled' }), 403, 'forbidden');
    expect((await s.api('GET', `/api/users/${B.id}`)).body).toMatchObject({
      role: 'user',
      group: 'default',
      status: 'active',
    });
  });

  it('a non-admin gets 403 on admin routes', async () => {
    const calls: Array<[string, string, unknown]> = [
      ['POST', '/api/users', { username: 'made-by-b', password: 'password-123' }],
      ['DELETE', `/api/users/${A.id}`, undefined],
      ['POST', `/api/users/${B.id}/topup`, { amount: 1000 }],
      ['POST', `/api/users/${A.id}/topup`, { amount: 1000 }],
      ['GET', '/api/channels', undefined],
      ['GET', '/api/channels/1', undefined],
      ['POST', '/api/channels', { name: 'c', type: 'mock', models: ['x'] }],
      ['PATCH', '/api/channels/1', { name: 'c' }],
      ['DELETE', '/api/channels/1', undefined],
      ['PUT', '/api/prices/gpt-4o', { input: 0, output: 0 }],
      ['DELETE', '/api/prices/gpt-4o', undefined],
      ['PUT', '/api/groups/default', { multiplier: 0 }],
    ];
    for (const [method, p, body] of calls) {
      expectApiError(await B.call(method, p, body), 403, 'forbidden');
    }
    expect((await s.api('GET', `/api/users/${B.id}`)).body.balance).toBe(5);
    expect((await s.api('GET', '/api/users?q=made-by-b')).body.data).toEqual([]);
  });
});
