// API-key lifecycle (contract §2–3): create (secret once), list/filter/page, get, patch,
// enable/disable, rotate with grace, delete, per-user cap, audit trail.
import { beforeAll, describe, expect, it } from 'vitest';
import { isWellFormedKey } from '../../src/keys/format.js';
import { backends, login, walkPages } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import type { ApiKeyPage, AuditPage } from '../../web/src/api-types.js';
import {
  KEY_FIELDS,
  createKey,
  createUser,
  expectApiError,
  expectRelayError,
  relay,
  suiteUser,
} from './util.js';

const KEY_RE = /^sk-[0-9A-Za-z]{48}$/;

describe.each(backends())('keys [%s]', (backend) => {
  const s = suiteServer({ backend });
  const owner = suiteUser(s, { balance: 10 });

  it('POST /api/keys returns the key object and the secret exactly once', async () => {
    const r = await s.api('POST', '/api/keys', { name: 'first', user_id: owner.id });
    expect(r.status).toBe(201);
    const secret = r.body.key as string;
    expect(secret).toMatch(KEY_RE);
    expect(isWellFormedKey(secret)).toBe(true);
    for (const f of KEY_FIELDS) expect(r.body, f).toHaveProperty(f);
    expect(r.body).toMatchObject({
      name: 'first',
      user_id: owner.id,
      status: 'active',
      models: null,
      allowed_ips: null,
      quota: null,
      used: 0,
      group: null,
      expires_at: null,
      last_used_at: null,
      last_used_ip: null,
      display: `${secret.slice(0, 7)}…${secret.slice(-4)}`,
    });
    expect(Date.parse(r.body.created_at)).not.toBeNaN();
    // Never again: not in get, list, or anywhere in their text.
    const got = await s.api('GET', `/api/keys/${r.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).not.toHaveProperty('key');
    const { key: _k, ...withoutSecret } = r.body;
    expect(got.body).toMatchObject({ ...withoutSecret, updated_at: got.body.updated_at });
    const list = await s.api('GET', `/api/keys?user_id=${owner.id}&limit=500`);
    for (const res of [got, list]) expect(JSON.stringify(res.body)).not.toContain(secret.slice(7, -4));
    expect((await relay(s, secret)).status).toBe(200);
  });

  it('every key is distinct, well formed and checksummed', async () => {
    const secrets = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const { secret } = await createKey(s, owner.id);
      expect(isWellFormedKey(secret)).toBe(true);
      secrets.add(secret);
    }
    expect(secrets.size).toBe(8);
  });

  it('creates with every writable field', async () => {
    const expires = new Date(Date.now() + 86_400_000).toISOString();
    const r = await s.api('POST', '/api/keys', {
      name: 'full',
      user_id: owner.id,
      models: ['gpt-4o*', 'text-embedding-3-small'],
      allowed_ips: ['127.0.0.1', '10.0.0.0/8', '2001:db8::/32'],
      quota: 1.5,
      expires_at: expires,
      group: 'vip',
      rpm: 60,
    });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      models: ['gpt-4o*', 'text-embedding-3-small'],
      allowed_ips: ['127.0.0.1', '10.0.0.0/8', '2001:db8::/32'],
      quota: 1.5,
      used: 0,
      group: 'vip',
      expires_at: expires,
      status: 'active',
    });
    const k = await relay(s, r.body.key);
    expect(k.status).toBe(200);
    expect(k.body).toMatchObject({
      id: r.body.id,
      quota: 1.5,
      used: 0,
      remaining: 1.5,
      expires_at: expires,
      models: ['gpt-4o*', 'text-embedding-3-small'],
      status: 'active',
    });
    expect(JSON.stringify(k.body)).not.toContain(r.body.key);
  });

  it('create: master key must name the user; unknown user is 404; bad fields 422', async () => {
    expectApiError(await s.api('POST', '/api/keys', { name: 'x' }), 422, 'validation_error');
    expectApiError(await s.api('POST', '/api/keys', { name: 'x', user_id: 999999999 }), 404, 'not_found');
    for (const body of [
      { user_id: owner.id },
      { name: '', user_id: owner.id },
      { name: 'x'.repeat(129), user_id: owner.id },
      { name: 'x', user_id: owner.id, models: 'gpt-4o' },
      { name: 'x', user_id: owner.id, models: ['has space'] },
      { name: 'x', user_id: owner.id, models: ['a*b'] },
      { name: 'x', user_id: owner.id, allowed_ips: ['10.0.0.0/33'] },
      { name: 'x', user_id: owner.id, allowed_ips: ['not-an-ip'] },
      { name: 'x', user_id: owner.id, allowed_ips: '10.0.0.1' },
      { name: 'x', user_id: owner.id, quota: -1 },
      { name: 'x', user_id: owner.id, quota: '1' },
      { name: 'x', user_id: owner.id, expires_at: 'tomorrow-ish' },
      // Days a month lacks: not rolled over into the next month.
      { name: 'x', user_id: owner.id, expires_at: '2099-02-30T00:00:00Z' },
      { name: 'x', user_id: owner.id, expires_at: '2099-04-31' },
      { name: 'x', user_id: owner.id, group: 'no spaces allowed' },
      { name: 'x', user_id: owner.id, status: 'active' },
      { name: 'x', user_id: owner.id, key: 'sk-chosen-by-me' },
    ]) {
      expectApiError(await s.api('POST', '/api/keys', body), 422, 'validation_error');
    }
    expect((await s.api('POST', '/api/keys', { name: 'x'.repeat(128), user_id: owner.id })).status).toBe(201);
  });

  describe('list', () => {
    let u: { id: number };
    const ids: Record<string, number> = {};
    beforeAll(async () => {
      u = (await createUser(s)).user;
      ids.active = (await createKey(s, u.id, { name: 'alpha_one' })).id;
      ids.disabled = (await createKey(s, u.id, { name: 'Beta%two' })).id;
      await s.api('PATCH', `/api/keys/${ids.disabled}`, { status: 'disabled' });
      ids.expired = (
        await createKey(s, u.id, { name: 'gamma', expires_at: new Date(Date.now() - 60_000).toISOString() })
      ).id;
      ids.exhausted = (await createKey(s, u.id, { name: 'delta', quota: 0 })).id;
      ids.future = (
        await createKey(s, u.id, {
          name: 'epsilon',
          quota: 5,
          expires_at: new Date(Date.now() + 3_600_000).toISOString(),
          group: 'g2',
        })
      ).id;
      ids.deleted = (await createKey(s, u.id, { name: 'zeta' })).id;
      await s.api('DELETE', `/api/keys/${ids.deleted}`);
    });
    const names = (r: { body: { data: Array<{ name: string }> } }) => r.body.data.map((k) => k.name).sort();

    it('by user_id, newest first, without deleted keys', async () => {
      const r = await s.api('GET', `/api/keys?user_id=${u.id}`);
      expect(r.status).toBe(200);
      expect(r.body.data.map((k: { id: number }) => k.id)).toEqual([
        ids.future,
        ids.exhausted,
        ids.expired,
        ids.disabled,
        ids.active,
      ]);
      expect(r.body.next_cursor).toBeNull();
      expect(r.body.data.every((k: { user_id: number }) => k.user_id === u.id)).toBe(true);
    });

    it('by status, including the derived expired and exhausted', async () => {
      const byStatus = async (st: string) =>
        names(await s.api('GET', `/api/keys?user_id=${u.id}&status=${st}`));
      expect(await byStatus('active')).toEqual(['alpha_one', 'epsilon']);
      expect(await byStatus('disabled')).toEqual(['Beta%two']);
      expect(await byStatus('expired')).toEqual(['gamma']);
      expect(await byStatus('exhausted')).toEqual(['delta']);
      const all = await s.api('GET', `/api/keys?user_id=${u.id}`);
      const st = Object.fromEntries(
        all.body.data.map((k: { name: string; status: string }) => [k.name, k.status]),
      );
      expect(st).toEqual({
        alpha_one: 'active',
        'Beta%two': 'disabled',
        gamma: 'expired',
        delta: 'exhausted',
        epsilon: 'active',
      });
      expectApiError(await s.api('GET', `/api/keys?status=deleted`), 422, 'validation_error');
    });

    it('by q over name and masked form, treating % and _ literally', async () => {
      expect(names(await s.api('GET', `/api/keys?user_id=${u.id}&q=alpha`))).toEqual(['alpha_one']);
      expect(names(await s.api('GET', `/api/keys?user_id=${u.id}&q=a_o`))).toEqual(['alpha_one']);
      expect(names(await s.api('GET', `/api/keys?user_id=${u.id}&q=${encodeURIComponent('%')}`))).toEqual([
        'Beta%two',
      ]);
      expect(names(await s.api('GET', `/api/keys?user_id=${u.id}&q=_`))).toEqual(['alpha_one']);
      expect(names(await s.api('GET', `/api/keys?user_id=${u.id}&q=nothing-like-this`))).toEqual([]);
      const one = (await s.api('GET', `/api/keys/${ids.active}`)).body;
      const tail = one.display.slice(-4);
      expect(names(await s.api('GET', `/api/keys?user_id=${u.id}&q=${encodeURIComponent(tail)}`))).toContain(
        'alpha_one',
      );
    });

    it('q is case-insensitive on every backend', async () => {
      expect(names(await s.api('GET', `/api/keys?user_id=${u.id}&q=BETA`))).toEqual(['Beta%two']);
      expect(names(await s.api('GET', `/api/keys?user_id=${u.id}&q=ALPHA`))).toEqual(['alpha_one']);
    });

    it('by group', async () => {
      expect(names(await s.api('GET', `/api/keys?user_id=${u.id}&group=g2`))).toEqual(['epsilon']);
    });

    it('pages with limit and cursor, without gaps or repeats', async () => {
      const all = (await s.api('GET', `/api/keys?user_id=${u.id}`)).body.data.map(
        (k: { id: number }) => k.id,
      );
      const { rows, pages } = await walkPages<ApiKeyPage['data'][number]>(
        s,
        `/api/keys?user_id=${u.id}&limit=2`,
      );
      expect(rows.map((k) => k.id)).toEqual(all);
      expect(pages).toBe(3);
      expectApiError(await s.api('GET', `/api/keys?limit=0`), 422, 'validation_error');
      expectApiError(await s.api('GET', `/api/keys?limit=501`), 422, 'validation_error');
      expectApiError(await s.api('GET', `/api/keys?cursor=abc`), 422, 'validation_error');
    });
  });

  it('GET /api/keys/:id answers 404 for unknown and deleted keys', async () => {
    expectApiError(await s.api('GET', '/api/keys/999999999'), 404, 'not_found');
    const { id } = await createKey(s, owner.id);
    await s.api('DELETE', `/api/keys/${id}`);
    expectApiError(await s.api('GET', `/api/keys/${id}`), 404, 'not_found');
  });

  it('PATCH changes every writable field, and null clears', async () => {
    const { id, secret } = await createKey(s, owner.id);
    const expires = new Date(Date.now() + 7 * 86_400_000).toISOString();
    const patch = {
      name: 'renamed',
      models: ['gpt-4o-mini', 'claude-*'],
      allowed_ips: ['127.0.0.0/8', '::1'],
      quota: 2.5,
      expires_at: expires,
      group: 'vip',
      rpm: 10,
    };
    const r = await s.api('PATCH', `/api/keys/${id}`, patch);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ ...patch, rpm: 10, status: 'active' });
    expect((await s.api('GET', `/api/keys/${id}`)).body).toMatchObject({ ...patch });
    expect((await relay(s, secret)).body).toMatchObject({
      name: 'renamed',
      quota: 2.5,
      models: ['gpt-4o-mini', 'claude-*'],
      allowed_ips: ['127.0.0.0/8', '::1'],
      group: 'vip',
    });

    const cleared = await s.api('PATCH', `/api/keys/${id}`, {
      models: null,
      allowed_ips: null,
      quota: null,
      expires_at: null,
      group: null,
      rpm: null,
    });
    expect(cleared.status).toBe(200);
    expect(cleared.body).toMatchObject({
      name: 'renamed',
      models: null,
      allowed_ips: null,
      quota: null,
      expires_at: null,
      group: null,
    });
    expect((await relay(s, secret)).body).toMatchObject({ models: null, quota: null, remaining: null });

    expectApiError(await s.api('PATCH', `/api/keys/${id}`, { status: 'expired' }), 422, 'validation_error');
    expectApiError(await s.api('PATCH', `/api/keys/${id}`, { user_id: 1 }), 422, 'validation_error');
    expectApiError(await s.api('PATCH', `/api/keys/${id}`, { used: 0 }), 422, 'validation_error');
    expectApiError(await s.api('PATCH', `/api/keys/${id}`, { name: '' }), 422, 'validation_error');
    expectApiError(await s.api('PATCH', '/api/keys/999999999', { name: 'x' }), 404, 'not_found');
  });

  it('disable and enable switch the key off and on at once', async () => {
    const { id, secret } = await createKey(s, owner.id);
    expect((await relay(s, secret)).status).toBe(200);
    const d = await s.api('PATCH', `/api/keys/${id}`, { status: 'disabled' });
    expect(d.body.status).toBe('disabled');
    expectRelayError(await relay(s, secret), 401, 'key_disabled');
    const e = await s.api('PATCH', `/api/keys/${id}`, { status: 'active' });
    expect(e.body.status).toBe('active');
    expect((await relay(s, secret)).status).toBe(200);
  });

  it('rotate with grace 0: new secret at once, the old one dies at once', async () => {
    const { id, secret: old, key } = await createKey(s, owner.id, { name: 'rot0', quota: 3 });
    expect((await relay(s, old)).status).toBe(200);
    const r = await s.api('POST', `/api/keys/${id}/rotate`, {});
    expect(r.status).toBe(200);
    const fresh = r.body.key as string;
    expect(fresh).toMatch(KEY_RE);
    expect(isWellFormedKey(fresh)).toBe(true);
    expect(fresh).not.toBe(old);
    expect(r.body).toMatchObject({
      id,
      name: 'rot0',
      quota: 3,
      display: `${fresh.slice(0, 7)}…${fresh.slice(-4)}`,
    });
    expect(r.body.display).not.toBe(key.display);
    expectRelayError(await relay(s, old), 401, 'invalid_api_key');
    expect((await relay(s, fresh)).body.id).toBe(id);
    expect((await s.api('GET', `/api/keys/${id}`)).body).not.toHaveProperty('key');
  });

  it('rotate with a grace period: the old secret works until it ends, then invalid_api_key', async () => {
    const { id, secret: old } = await createKey(s, owner.id);
    expect((await relay(s, old)).status).toBe(200); // cached before the rotation
    const r = await s.api('POST', `/api/keys/${id}/rotate`, { grace_seconds: 60 });
    expect(r.status).toBe(200);
    const fresh = r.body.key as string;
    const during = await relay(s, old);
    expect(during.status).toBe(200);
    expect(during.body.id).toBe(id);
    expect((await relay(s, fresh)).status).toBe(200);
    s.clock.advance(59_000);
    expect((await relay(s, old)).status).toBe(200);
    s.clock.advance(1_000);
    expectRelayError(await relay(s, old), 401, 'invalid_api_key');
    expect((await relay(s, fresh)).status).toBe(200);
  });

  it('a second rotation ends the first grace period early when asked (never later than asked)', async () => {
    const { id, secret: first } = await createKey(s, owner.id);
    const second = (await s.api('POST', `/api/keys/${id}/rotate`, { grace_seconds: 3600 })).body
      .key as string;
    expect((await relay(s, first)).status).toBe(200);
    const third = (await s.api('POST', `/api/keys/${id}/rotate`, { grace_seconds: 0 })).body.key as string;
    expectRelayError(await relay(s, first), 401, 'invalid_api_key');
    expectRelayError(await relay(s, second), 401, 'invalid_api_key');
    expect((await relay(s, third)).status).toBe(200);
    // Rotating with grace again keeps only the immediately previous secret.
    const fourth = (await s.api('POST', `/api/keys/${id}/rotate`, { grace_seconds: 3600 })).body
      .key as string;
    expect((await relay(s, third)).status).toBe(200);
    const fifth = (await s.api('POST', `/api/keys/${id}/rotate`, { grace_seconds: 3600 })).body.key as string;
    expectRelayError(await relay(s, third), 401, 'invalid_api_key');
    expect((await relay(s, fourth)).status).toBe(200);
    expect((await relay(s, fifth)).status).toBe(200);
    // Disabling a key in its grace period disables both secrets.
    await s.api('PATCH', `/api/keys/${id}`, { status: 'disabled' });
    expectRelayError(await relay(s, fourth), 401, 'key_disabled');
    expectRelayError(await relay(s, fifth), 401, 'key_disabled');
    // Deleting it ends the grace period too.
    await s.api('DELETE', `/api/keys/${id}`);
    expectRelayError(await relay(s, fourth), 401, 'invalid_api_key');
    expectRelayError(await relay(s, fifth), 401, 'invalid_api_key');
  });

  it('rotate validates grace_seconds and answers 404 for unknown keys', async () => {
    const { id } = await createKey(s, owner.id);
    for (const body of [
      { grace_seconds: -1 },
      { grace_seconds: 1.5 },
      { grace_seconds: '10' },
      { grace_seconds: 31 * 24 * 3600 },
      { other: 1 },
    ]) {
      expectApiError(await s.api('POST', `/api/keys/${id}/rotate`, body), 422, 'validation_error');
    }
    expectApiError(await s.api('POST', '/api/keys/999999999/rotate', {}), 404, 'not_found');
  });

  it('delete: the secret stops working, the key is gone, its logs keep their attribution', async () => {
    const { id, secret } = await createKey(s, owner.id, { name: 'doomed' });
    const call = await relay(s, secret);
    expect(call.status).toBe(200);
    const requestId = call.headers.get('x-request-id');
    const d = await s.api('DELETE', `/api/keys/${id}`);
    expect(d.status).toBe(200);
    expect(d.body).toMatchObject({ id, name: 'doomed', deleted: true });
    expect(d.body).not.toHaveProperty('key');
    expectRelayError(await relay(s, secret), 401, 'invalid_api_key');
    expectApiError(await s.api('GET', `/api/keys/${id}`), 404, 'not_found');
    expectApiError(await s.api('DELETE', `/api/keys/${id}`), 404, 'not_found');
    expectApiError(await s.api('PATCH', `/api/keys/${id}`, { name: 'back' }), 404, 'not_found');
    expectApiError(await s.api('POST', `/api/keys/${id}/rotate`, {}), 404, 'not_found');
    const logs = await s.api('GET', `/api/logs?key_id=${id}`);
    expect(logs.status).toBe(200);
    expect(logs.body.data.length).toBe(1);
    expect(logs.body.data[0]).toMatchObject({
      key_id: id,
      key_name: 'doomed',
      user_id: owner.id,
      request_id: requestId,
      status: 200,
    });
  });

  it('last_used_at and last_used_ip are recorded', async () => {
    const { id, secret } = await createKey(s, owner.id);
    const before = Date.now();
    await relay(s, secret);
    const k = (await s.api('GET', `/api/keys/${id}`)).body;
    expect(k.last_used_ip).toBe('127.0.0.1');
    expect(Date.parse(k.last_used_at)).toBeGreaterThanOrEqual(before - 1000);
  });

  describe('audit trail', () => {
    it('records key.create/update/enable/disable/rotate/delete and user.create with actor, ip, changes and no secret', async () => {
      const { user } = await createUser(s);
      const c = await s.api('POST', '/api/keys', {
        name: 'audited',
        user_id: user.id,
        models: ['gpt-4o'],
        quota: 1,
      });
      const id = c.body.id as number;
      const secrets = [c.body.key as string];
      await s.api('PATCH', `/api/keys/${id}`, { name: 'audited-2', quota: 2 });
      await s.api('PATCH', `/api/keys/${id}`, { status: 'disabled' });
      // Changing nothing is recorded as nothing: a second disable, a name it already has.
      expect((await s.api('PATCH', `/api/keys/${id}`, { status: 'disabled' })).status).toBe(200);
      expect((await s.api('PATCH', `/api/keys/${id}`, { name: 'audited-2' })).status).toBe(200);
      await s.api('PATCH', `/api/keys/${id}`, { status: 'active', allowed_ips: ['10.0.0.0/8'] });
      secrets.push((await s.api('POST', `/api/keys/${id}/rotate`, { grace_seconds: 5 })).body.key);
      await s.api('DELETE', `/api/keys/${id}`);

      const byKey = await s.api('GET', `/api/audit?key_id=${id}`);
      expect(byKey.status).toBe(200);
      const rows = [...byKey.body.data].reverse();
      expect(rows.map((r: { action: string }) => r.action)).toEqual([
        'key.create',
        'key.update',
        'key.disable',
        'key.enable',
        'key.update',
        'key.rotate',
        'key.delete',
      ]);
      for (const r of rows) {
        expect(Object.keys(r).sort()).toEqual([
          'action',
          'actor',
          'changes',
          'created_at',
          'id',
          'ip',
          'key_id',
          'user_id',
        ]);
        expect(r).toMatchObject({ actor: 'master', ip: '127.0.0.1', key_id: id, user_id: user.id });
        expect(Date.parse(r.created_at)).not.toBeNaN();
      }
      expect(rows[0].changes).toMatchObject({ name: 'audited', models: ['gpt-4o'], quota: 1 });
      expect(rows[1].changes).toEqual({
        name: { from: 'audited', to: 'audited-2' },
        quota: { from: 1, to: 2 },
      });
      expect(rows[2].changes).toEqual({ status: { from: 'active', to: 'disabled' } });
      expect(rows[3].changes).toEqual({ status: { from: 'disabled', to: 'active' } });
      expect(rows[4].changes).toEqual({ allowed_ips: { from: null, to: ['10.0.0.0/8'] } });
      expect(rows[5].changes).toMatchObject({ grace_seconds: 5 });
      const text = JSON.stringify(byKey.body);
      for (const sec of secrets) {
        expect(text).not.toContain(sec);
        expect(text).not.toContain(sec.slice(7, 40));
      }

      const byUser = await s.api('GET', `/api/audit?user_id=${user.id}`);
      const actions = byUser.body.data.map((r: { action: string }) => r.action);
      expect(actions).toContain('user.create');
      expect(actions.filter((a: string) => a.startsWith('key.')).length).toBe(7);
      const uc = byUser.body.data.find((r: { action: string }) => r.action === 'user.create');
      expect(uc).toMatchObject({ actor: 'master', ip: '127.0.0.1', user_id: user.id, key_id: null });
      expect(uc.changes).toMatchObject({ username: user.username, role: 'user' });
      expect(JSON.stringify(uc)).not.toMatch(/password-/);

      // The user reads their own trail without the address an admin (here: master) worked from.
      const { cookie, csrf } = await login(s, user.username, `password-${user.username}`);
      const mine = await s.api('POST', '/api/keys', { name: 'made-by-me' }, { cookie, 'x-csrf-token': csrf });
      expect(mine.status).toBe(201);
      const own = await s.api('GET', '/api/audit', undefined, { cookie });
      expect(own.status).toBe(200);
      const created = own.body.data.find((r: { action: string }) => r.action === 'user.create');
      expect(created).toMatchObject({ actor: 'master', ip: null, user_id: user.id });
      for (const r of own.body.data as { actor: string; ip: string | null }[])
        expect(r.ip, r.actor).toBe(r.actor === `user:${user.id}` ? '127.0.0.1' : null);
      expect(own.body.data.some((r: { actor: string }) => r.actor === `user:${user.id}`)).toBe(true);
    });

    it('pages with limit and cursor', async () => {
      const { user } = await createUser(s);
      const { id } = await createKey(s, user.id);
      for (let i = 0; i < 4; i++) await s.api('PATCH', `/api/keys/${id}`, { name: `n${i}` });
      const { rows, pages } = await walkPages<AuditPage['data'][number]>(
        s,
        `/api/audit?key_id=${id}&limit=2`,
      );
      const seen = rows.map((a) => a.id);
      expect(seen.length).toBe(5);
      expect(new Set(seen).size).toBe(5);
      expect([...seen].sort((a, b) => b - a)).toEqual(seen);
      expect(pages).toBe(3);
    });
  });
});

describe.each(backends())('per-user key cap [%s]', (backend) => {
  const s = suiteServer({ backend, env: { MOLE_MAX_KEYS_PER_USER: '3' } });

  it('refuses the key past MOLE_MAX_KEYS_PER_USER with 409; deleted keys do not count', async () => {
    const a = (await createUser(s)).user;
    const b = (await createUser(s)).user;
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) ids.push((await createKey(s, a.id)).id);
    expectApiError(
      await s.api('POST', '/api/keys', { name: 'fourth', user_id: a.id }),
      409,
      'key_limit_reached',
    );
    // Another user has their own allowance.
    expect((await s.api('POST', '/api/keys', { name: 'b1', user_id: b.id })).status).toBe(201);
    await s.api('DELETE', `/api/keys/${ids[0]}`);
    expect((await s.api('POST', '/api/keys', { name: 'fourth', user_id: a.id })).status).toBe(201);
    expectApiError(
      await s.api('POST', '/api/keys', { name: 'fifth', user_id: a.id }),
      409,
      'key_limit_reached',
    );
  });

  it('holds under concurrent creation', async () => {
    const c = (await createUser(s)).user;
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => s.api('POST', '/api/keys', { name: `race-${i}`, user_id: c.id })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((st) => st === 201).length).toBe(3);
    expect(statuses.filter((st) => st === 409).length).toBe(37);
    expect((await s.api('GET', `/api/keys?user_id=${c.id}`)).body.data.length).toBe(3);
  });
});
