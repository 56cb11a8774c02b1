// A key an admin switched off stays off: its owner cannot switch it back on.
import { describe, expect, it } from 'vitest';
import { backends, login, userWithKey } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';

describe.each(backends())('admin lock on disabled keys (%s)', (backend) => {
  const s = suiteServer({ backend });

  const keyCall = (secret: string) =>
    fetch(s.url + '/v1/key', { headers: { authorization: `Bearer ${secret}` } });

  it('an admin disable locks the key; the owner cannot enable it, an admin can', async () => {
    const owner = await userWithKey(s);
    const session = await login(s, owner.username, owner.password);
    const asOwner = (method: string, p: string, body?: unknown) =>
      s.api(method, p, body, { cookie: session.cookie, 'x-csrf-token': session.csrf });

    const disabled = await s.api('PATCH', `/api/keys/${owner.key.id}`, { status: 'disabled' }); // master key
    expect(disabled.body).toMatchObject({ status: 'disabled', locked: true });
    expect((await keyCall(owner.secret)).status).toBe(401);

    const attempt = await asOwner('PATCH', `/api/keys/${owner.key.id}`, { status: 'active' });
    expect(attempt.status).toBe(403);
    expect(attempt.body.error.code).toBe('forbidden');
    expect((await s.api('GET', `/api/keys/${owner.key.id}`)).body.status).toBe('disabled');
    expect((await keyCall(owner.secret)).status).toBe(401);

    // The owner may still change other fields of a locked key (it stays off).
    expect((await asOwner('PATCH', `/api/keys/${owner.key.id}`, { name: 'renamed' })).body).toMatchObject({
      name: 'renamed',
      status: 'disabled',
      locked: true,
    });

    const enabled = await s.api('PATCH', `/api/keys/${owner.key.id}`, { status: 'active' });
    expect(enabled.body).toMatchObject({ status: 'active', locked: false });
    expect((await keyCall(owner.secret)).status).toBe(200);
  });

  it("the owner's own disable does not lock: they can switch it back on", async () => {
    const owner = await userWithKey(s);
    const session = await login(s, owner.username, owner.password);
    const asOwner = (method: string, p: string, body?: unknown) =>
      s.api(method, p, body, { cookie: session.cookie, 'x-csrf-token': session.csrf });
    expect((await asOwner('PATCH', `/api/keys/${owner.key.id}`, { status: 'disabled' })).body).toMatchObject({
      status: 'disabled',
      locked: false,
    });
    expect((await asOwner('PATCH', `/api/keys/${owner.key.id}`, { status: 'active' })).body).toMatchObject({
      status: 'active',
      locked: false,
    });
  });

  it('an admin disabling a key of their own is its owner: no lock', async () => {
    const admin = await s.api('POST', '/api/users', {
      username: `adm${Date.now()}${backend}`,
      password: 'password-123',
      role: 'admin',
    });
    const session = await login(s, admin.body.username, 'password-123');
    const asAdmin = (method: string, p: string, body?: unknown) =>
      s.api(method, p, body, { cookie: session.cookie, 'x-csrf-token': session.csrf });
    const key = await asAdmin('POST', '/api/keys', { name: 'mine' });
    expect((await asAdmin('PATCH', `/api/keys/${key.body.id}`, { status: 'disabled' })).body.locked).toBe(
      false,
    );
  });
});
