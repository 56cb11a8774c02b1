// The kill switch (contract §8): POST /v1/key/revoke, authenticated by the key itself, disables
// and locks it (its owner cannot enable it again; an admin can), audited as key.revoke, answers
// the key object (never the secret). Whoever holds the secret may do it, from any IP.
import { describe, expect, it } from 'vitest';
import { backends } from '../helpers/server.js';
import type { AuditPage } from '../../web/src/api-types.js';
import { suiteServer } from '../helpers/suite.js';
import { expectOwnerCannotEnable } from '../helpers/locked-key.js';
import { createKey, createUser, expectRelayError, relay } from '../foundation/util.js';

describe.each(backends())('kill switch [%s]', (backend) => {
  const s = suiteServer({ backend });

  it('switches the key off and locks it; its owner cannot switch it back on, an admin can', async () => {
    const owner = await createUser(s);
    const { secret, id } = await createKey(s, owner.user.id, { name: 'leaky' });
    const r = await relay(s, secret, { method: 'POST', path: '/v1/key/revoke' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ object: 'api_key', id, name: 'leaky', status: 'disabled', locked: true });
    expect(JSON.stringify(r.body)).not.toContain(secret);
    expect(r.headers.get('x-request-id')).toBeTruthy();
    expectRelayError(await relay(s, secret), 401, 'key_disabled');
    expectRelayError(await relay(s, secret, { method: 'POST', path: '/v1/key/revoke' }), 401, 'key_disabled');

    const me = await expectOwnerCannotEnable(s, owner, id);
    expect((await me.call('GET', `/api/keys/${id}`)).body).toMatchObject({
      status: 'disabled',
      locked: true,
    });

    const audit = await s.api<AuditPage>('GET', `/api/audit?key_id=${id}`);
    const row = audit.body.data.find((a) => a.action === 'key.revoke');
    expect(row).toMatchObject({ actor: `key:${id}`, key_id: id, user_id: owner.user.id, ip: '127.0.0.1' });
    expect(row!.changes.status).toEqual({ from: 'active', to: 'disabled' });
    expect(JSON.stringify(audit.body)).not.toContain(secret);

    expect((await s.api('PATCH', `/api/keys/${id}`, { status: 'active' })).status).toBe(200);
    expect((await relay(s, secret)).status).toBe(200);
  });

  it('works from an IP or origin the key does not allow (whoever found it may switch it off)', async () => {
    const owner = await createUser(s);
    const { secret, id } = await createKey(s, owner.user.id, { allowed_ips: ['203.0.113.0/24'] });
    expectRelayError(await relay(s, secret), 403, 'ip_not_allowed');
    const r = await relay(s, secret, {
      method: 'POST',
      path: '/v1/key/revoke',
      headers: { origin: 'https://finder.example' },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.id).toBe(id);
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
    expect((await s.api('GET', `/api/keys/${id}`)).body.status).toBe('disabled');
  });

  it('a key that is not valid switches nothing off', async () => {
    expectRelayError(
      await relay(s, undefined, { method: 'POST', path: '/v1/key/revoke' }),
      401,
      'missing_api_key',
    );
    expectRelayError(
      await relay(s, 'sk-notakey', { method: 'POST', path: '/v1/key/revoke' }),
      401,
      'invalid_api_key',
    );
  });
});
