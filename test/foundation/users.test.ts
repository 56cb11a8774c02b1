// Users (contract §3): create, list, get, patch, delete, topup; management authentication.
import { describe, expect, it } from 'vitest';
import { backends, login, walkPages } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import type { UserPage } from '../../web/src/api-types.js';
import {
  createKey,
  createUser,
  expectApiError,
  expectRelayError,
  raw,
  relay,
  session,
  uname,
} from './util.js';

describe.each(backends())('users [%s]', (backend) => {
  const s = suiteServer({ backend });

  it('POST /api/users creates a user with defaults, and with every field', async () => {
    const name = uname();
    const r = await s.api('POST', '/api/users', { username: name, password: 'password-123' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      username: name,
      role: 'user',
      group: 'default',
      balance: 0,
      status: 'active',
    });
    expect(Number.isInteger(r.body.id)).toBe(true);
    expect(Date.parse(r.body.created_at)).not.toBeNaN();
    expect(JSON.stringify(r.body)).not.toMatch(/password/);

    const full = await s.api('POST', '/api/users', {
      username: uname('adm'),
      password: 'password-123',
      role: 'admin',
      group: 'vip',
      balance: 12.5,
    });
    expect(full.status).toBe(201);
    expect(full.body).toMatchObject({ role: 'admin', group: 'vip', balance: 12.5 });
  });

  it('a taken username answers 409 conflict', async () => {
    const { username } = await createUser(s);
    expectApiError(
      await s.api('POST', '/api/users', { username, password: 'password-456' }),
      409,
      'conflict',
    );
  });

  it('rejects bad user input with 422', async () => {
    for (const body of [
      {},
      { username: 'x' },
      { username: uname(), password: 'short' },
      { username: 'has space', password: 'password-123' },
      { username: uname(), password: 'password-123', role: 'root' },
      { username: uname(), password: 'password-123', balance: -1 },
      { username: uname(), password: 'password-123', balance: '10' },
      { username: uname(), password: 'password-123', balance: 0.0000000001 },
      { username: uname(), password: 'password-123', group: 'bad group' },
      { username: uname(), password: 'password-123', extra: 1 },
    ]) {
      expectApiError(await s.api('POST', '/api/users', body), 422, 'validation_error');
    }
  });

  it('GET /api/users lists newest first, pages with cursor and filters with q', async () => {
    const tag = uname('page');
    const made: number[] = [];
    for (let i = 0; i < 5; i++) made.push((await createUser(s, { username: `${tag}_${i}` })).user.id);
    const { rows, pages } = await walkPages<UserPage['data'][number]>(s, `/api/users?q=${tag}&limit=2`);
    expect(rows.map((u) => u.id)).toEqual([...made].reverse());
    expect(pages).toBe(3);
    // q is case-insensitive and takes _ and % literally, on both backends.
    const upper = await s.api('GET', `/api/users?q=${encodeURIComponent(tag.toUpperCase() + '_')}`);
    expect(upper.body.data.length).toBe(5);
    expect(
      (await s.api('GET', `/api/users?q=${encodeURIComponent(tag.slice(0, 3) + '%')}`)).body.data,
    ).toEqual([]);
    const all = await s.api('GET', '/api/users?limit=500');
    expect(all.body.data.length).toBeGreaterThanOrEqual(5);
    expect(
      all.body.data.every((u: Record<string, unknown>) => !('password_hash' in u) && !('password' in u)),
    ).toBe(true);
  });

  it('GET /api/users/:id answers the user, or 404', async () => {
    const { user } = await createUser(s);
    const r = await s.api('GET', `/api/users/${user.id}`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual(user);
    expectApiError(await s.api('GET', '/api/users/999999999'), 404, 'not_found');
  });

  it('PATCH /api/users/:id changes role, group, status and password', async () => {
    const { user, username, password } = await createUser(s);
    const r = await s.api('PATCH', `/api/users/${user.id}`, { role: 'admin', group: 'team-a' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ role: 'admin', group: 'team-a', status: 'active' });
    expect((await s.api('GET', `/api/users/${user.id}`)).body).toMatchObject({
      role: 'admin',
      group: 'team-a',
    });

    // A new password ends existing sessions and replaces the old one.
    const before = await session(s, username, password);
    expect((await before.call('GET', '/api/keys')).status).toBe(200);
    expect((await s.api('PATCH', `/api/users/${user.id}`, { password: 'another-password' })).status).toBe(
      200,
    );
    expectApiError(await before.call('GET', '/api/keys'), 401, 'unauthorized');
    expect((await login(s, username, password)).status).toBe(401);
    expect((await login(s, username, 'another-password')).status).toBe(200);
    expectApiError(await s.api('PATCH', '/api/users/999999999', { role: 'user' }), 404, 'not_found');
    const audit = await s.api('GET', `/api/audit?user_id=${user.id}`);
    const updates = audit.body.data.filter((a: { action: string }) => a.action === 'user.update').reverse();
    expect(
      updates.map((a: { actor: string; ip: string; changes: unknown }) => [a.actor, a.ip, a.changes]),
    ).toEqual([
      [
        'master',
        '127.0.0.1',
        { role: { from: 'user', to: 'admin' }, group: { from: 'default', to: 'team-a' } },
      ],
      ['master', '127.0.0.1', { password: expect.stringMatching(/^(changed|\[redacted\])$/) }],
    ]);
    expect(JSON.stringify(audit.body)).not.toContain('another-password');
    expect(JSON.stringify(audit.body)).not.toContain(password);
  });

  it('a disabled user cannot sign in and their keys answer account_disabled until re-enabled', async () => {
    const { user, username, password } = await createUser(s);
    const { secret } = await createKey(s, user.id);
    expect((await relay(s, secret)).status).toBe(200);
    expect((await s.api('PATCH', `/api/users/${user.id}`, { status: 'disabled' })).body.status).toBe(
      'disabled',
    );
    expectApiError(
      await raw(s, 'POST', '/api/auth/login', {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, password }),
      }),
      401,
      'login_failed',
    );
    expectRelayError(await relay(s, secret), 401, 'account_disabled');
    await s.api('PATCH', `/api/users/${user.id}`, { status: 'active' });
    expect((await relay(s, secret)).status).toBe(200);
  });

  it('POST /api/users/:id/topup adds and subtracts exactly', async () => {
    const { user } = await createUser(s, { balance: 1 });
    const r = await s.api('POST', `/api/users/${user.id}/topup`, { amount: 2.25 });
    expect(r.status).toBe(200);
    expect(r.body.balance).toBe(3.25);
    expect((await s.api('POST', `/api/users/${user.id}/topup`, { amount: -0.25 })).body.balance).toBe(3);
    // 0.1 + 0.2 in an integer ledger is 0.3, not 0.30000000000000004.
    await s.api('POST', `/api/users/${user.id}/topup`, { amount: 0.1 });
    expect((await s.api('POST', `/api/users/${user.id}/topup`, { amount: 0.2 })).body.balance).toBe(3.3);
    expect((await s.api('GET', `/api/users/${user.id}`)).body.balance).toBe(3.3);
    expectApiError(
      await s.api('POST', `/api/users/${user.id}/topup`, { amount: 0 }),
      422,
      'validation_error',
    );
    expectApiError(await s.api('POST', `/api/users/${user.id}/topup`, {}), 422, 'validation_error');
    expectApiError(
      await s.api('POST', `/api/users/${user.id}/topup`, { amount: '5' }),
      422,
      'validation_error',
    );
    expectApiError(await s.api('POST', '/api/users/999999999/topup', { amount: 1 }), 404, 'not_found');
    // A debit takes the balance to zero at most: past it, refused and nothing taken.
    const over = await s.api('POST', `/api/users/${user.id}/topup`, { amount: -3.300000001 });
    expectApiError(over, 422, 'validation_error');
    expect(over.body.error.message).toContain('3.3 USD');
    expect((await s.api('POST', `/api/users/${user.id}/topup`, { amount: -3.3 })).body.balance).toBe(0);
    expectApiError(
      await s.api('POST', `/api/users/${user.id}/topup`, { amount: -0.01 }),
      422,
      'validation_error',
    );
    const audit = await s.api('GET', `/api/audit?user_id=${user.id}`);
    expect(audit.body.data.filter((a: { action: string }) => a.action === 'user.topup').length).toBe(5);
  });

  it('DELETE /api/users/:id removes the user, revokes their keys and frees the name', async () => {
    const { user, username, password } = await createUser(s);
    const { secret, id: keyId } = await createKey(s, user.id);
    expect((await relay(s, secret)).status).toBe(200);
    const d = await s.api('DELETE', `/api/users/${user.id}`);
    expect(d.status).toBe(200);
    expect(d.body).toMatchObject({ id: user.id, deleted: true });
    expectApiError(await s.api('GET', `/api/users/${user.id}`), 404, 'not_found');
    expectApiError(await s.api('DELETE', `/api/users/${user.id}`), 404, 'not_found');
    expectApiError(await s.api('GET', `/api/keys/${keyId}`), 404, 'not_found');
    expectRelayError(await relay(s, secret), 401, 'invalid_api_key');
    expect((await login(s, username, password)).status).toBe(401);
    expect((await s.api('POST', '/api/users', { username, password: 'password-789' })).status).toBe(201);
    const audit = await s.api('GET', `/api/audit?user_id=${user.id}`);
    expect(audit.body.data.map((a: { action: string }) => a.action)).toContain('user.delete');
  });

  it('the management API needs the master key or a session', async () => {
    expectApiError(await raw(s, 'GET', '/api/users'), 401, 'unauthorized');
    expectApiError(await raw(s, 'GET', '/api/keys'), 401, 'unauthorized');
    expectApiError(
      await raw(s, 'GET', '/api/users', { headers: { authorization: 'Bearer mk-wrong' } }),
      401,
      'unauthorized',
    );
    expectApiError(
      await raw(s, 'GET', '/api/users', { headers: { authorization: s.masterKey } }),
      401,
      'unauthorized',
    );
    expectApiError(
      await raw(s, 'GET', '/api/users', { headers: { authorization: `Basic ${s.masterKey}` } }),
      401,
      'unauthorized',
    );
    expectApiError(
      await raw(s, 'GET', '/api/users', { headers: { cookie: 'mole_session=forged' } }),
      401,
      'unauthorized',
    );
    expect(
      (await raw(s, 'GET', '/api/users', { headers: { authorization: `Bearer ${s.masterKey}` } })).status,
    ).toBe(200);
    expect(
      (await raw(s, 'GET', '/api/users', { headers: { authorization: `bearer ${s.masterKey}` } })).status,
    ).toBe(200);
  });

  it('an admin session may administer users; it cannot delete itself', async () => {
    const admin = await createUser(s, { role: 'admin' });
    const a = await session(s, admin.username, admin.password);
    const made = await a.call('POST', '/api/users', { username: uname(), password: 'password-123' });
    expect(made.status).toBe(201);
    expect((await a.call('POST', `/api/users/${made.body.id}/topup`, { amount: 5 })).body.balance).toBe(5);
    expectApiError(await a.call('DELETE', `/api/users/${admin.user.id}`), 403, 'forbidden');
    const audit = await s.api('GET', `/api/audit?user_id=${made.body.id}`);
    const create = audit.body.data.find((e: { action: string }) => e.action === 'user.create');
    expect(create.actor).toBe(`admin:${admin.user.id}`);
  });
});
