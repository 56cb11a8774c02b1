// Group policy in the management API (contract §7), on SQLite and PostgreSQL: groups carry
// limits, models and a key lifetime; keys and accounts cannot be created or changed above
// their group's ceilings (422 limit_above_group); keys of a group with a lifetime must
// expire within it; limit fields are validated (positive integers, sensible maxima).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, startTestServer, userWithKey, type TestServer } from '../helpers/server.js';
import { session } from './util.js';

const DAY = 86_400_000;
let n = 0;
const groupName = () => `pol-${process.pid}-${n++}`;

describe.each(backends())('group policy and limit fields [%s]', (backend) => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ backend });
  });
  afterAll(() => s?.close());

  it('PUT /api/groups/:name sets limits, models and key lifetime; fields not sent stay', async () => {
    const g = groupName();
    const created = await s.api('PUT', `/api/groups/${g}`, {
      rpm: 60,
      tpm: 100_000,
      max_concurrency: 4,
      models: ['gpt-4o*', 'mole-mini'],
      max_key_lifetime_days: 30,
    });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({
      name: g,
      multiplier: 1,
      rpm: 60,
      tpm: 100_000,
      max_concurrency: 4,
      models: ['gpt-4o*', 'mole-mini'],
      max_key_lifetime_days: 30,
    });
    const changed = await s.api('PUT', `/api/groups/${g}`, { multiplier: 2, tpm: null });
    expect(changed.body).toMatchObject({ multiplier: 2, rpm: 60, tpm: null, max_concurrency: 4 });
    const list = await s.api('GET', '/api/groups');
    expect(list.body.data.find((x: { name: string }) => x.name === g)).toMatchObject({ rpm: 60, tpm: null });
    const audit = await s.api('GET', '/api/audit?limit=5');
    expect(
      audit.body.data.find(
        (a: { action: string; changes: Record<string, unknown> }) =>
          a.action === 'group.set' && a.changes.group === g && a.changes.multiplier === 2,
      ),
    ).toBeTruthy();
  });

  it('validates limit fields: positive integers up to their maxima, null clears', async () => {
    const { key } = await userWithKey(s);
    for (const [field, bad] of [
      ['rpm', 0],
      ['rpm', 1.5],
      ['rpm', 2_000_000],
      ['tpm', -1],
      ['tpm', 'many'],
      ['max_concurrency', 0],
      ['max_concurrency', 20_000],
    ] as const) {
      const r = await s.api('PATCH', `/api/keys/${key.id}`, { [field]: bad });
      expect(r.status, `${field}: ${bad}`).toBe(422);
      expect(r.body.error.code).toBe('validation_error');
      expect(r.body.error.message).toContain(field);
    }
    const ok = await s.api('PATCH', `/api/keys/${key.id}`, { rpm: 10, tpm: 5000, max_concurrency: 2 });
    expect(ok.body).toMatchObject({ rpm: 10, tpm: 5000, max_concurrency: 2 });
    const cleared = await s.api('PATCH', `/api/keys/${key.id}`, { tpm: null });
    expect(cleared.body).toMatchObject({ rpm: 10, tpm: null, max_concurrency: 2 });
    const g = await s.api('PUT', `/api/groups/${groupName()}`, { max_key_lifetime_days: 0 });
    expect(g.status).toBe(422);
    const u = await s.api('POST', '/api/users', { username: `v${n++}x`, password: 'password-123', rpm: 0 });
    expect(u.status).toBe(422);
  });

  it('a key cannot be created or changed above its group ceilings: 422 limit_above_group', async () => {
    const g = groupName();
    await s.api('PUT', `/api/groups/${g}`, { rpm: 60, tpm: 10_000, max_concurrency: 2 });
    const { user } = await userWithKey(s, { group: g });
    const above = await s.api('POST', '/api/keys', { name: 'k', user_id: user.id, rpm: 61 });
    expect(above.status).toBe(422);
    expect(above.body.error).toMatchObject({ code: 'limit_above_group', param: 'rpm' });
    expect(above.body.error.message).toContain('60');
    const ok = await s.api('POST', '/api/keys', { name: 'k', user_id: user.id, rpm: 60, max_concurrency: 1 });
    expect(ok.status).toBe(201);
    const patch = await s.api('PATCH', `/api/keys/${ok.body.id}`, { max_concurrency: 3 });
    expect(patch.status).toBe(422);
    expect(patch.body.error).toMatchObject({ code: 'limit_above_group', param: 'max_concurrency' });
    // Moving a key into a tighter group judges all its limits there.
    const tight = groupName();
    await s.api('PUT', `/api/groups/${tight}`, { rpm: 10 });
    const moved = await s.api('PATCH', `/api/keys/${ok.body.id}`, { group: tight });
    expect(moved.status).toBe(422);
    expect(moved.body.error.code).toBe('limit_above_group');
    // Other changes to a key are not held up by its limits, nor by a limit sent unchanged
    // that its group has since gone below (what the console's edit form sends).
    expect((await s.api('PATCH', `/api/keys/${ok.body.id}`, { name: 'renamed' })).status).toBe(200);
    await s.api('PUT', `/api/groups/${g}`, { rpm: 30 });
    const same = await s.api('PATCH', `/api/keys/${ok.body.id}`, { name: 'again', rpm: 60 });
    expect(same.status).toBe(200);
    expect((await s.api('PATCH', `/api/keys/${ok.body.id}`, { rpm: 59 })).body.error.code).toBe(
      'limit_above_group',
    );
    // The owner signed in is held to the same ceilings.
    const owner = await session(s, user.username, 'password-123');
    const own = await owner.call('PATCH', `/api/keys/${ok.body.id}`, { tpm: 20_000 });
    expect(own.status).toBe(422);
    expect(own.body.error.code).toBe('limit_above_group');
  });

  it('an account cannot be created or changed above its group ceilings; users cannot set their own', async () => {
    const g = groupName();
    await s.api('PUT', `/api/groups/${g}`, { rpm: 100 });
    const above = await s.api('POST', '/api/users', {
      username: `acct${n++}`,
      password: 'password-123',
      group: g,
      rpm: 101,
    });
    expect(above.status).toBe(422);
    expect(above.body.error.code).toBe('limit_above_group');
    const u = await s.api('POST', '/api/users', {
      username: `acct${n++}`,
      password: 'password-123',
      group: g,
      rpm: 100,
      max_concurrency: 5,
    });
    expect(u.status).toBe(201);
    expect(u.body).toMatchObject({ rpm: 100, tpm: null, max_concurrency: 5 });
    expect((await s.api('PATCH', `/api/users/${u.body.id}`, { rpm: 500 })).body.error.code).toBe(
      'limit_above_group',
    );
    expect((await s.api('PATCH', `/api/users/${u.body.id}`, { rpm: 50 })).body.rpm).toBe(50);
    const account = await session(s, u.body.username, 'password-123');
    const self = await account.call('PATCH', `/api/users/${u.body.id}`, { rpm: 10 });
    expect(self.status).toBe(403);
  });

  it('max_key_lifetime_days: keys of the group must expire within it', async () => {
    const g = groupName();
    await s.api('PUT', `/api/groups/${g}`, { max_key_lifetime_days: 30 });
    const { user } = await userWithKey(s, { group: 'default' });
    await s.api('PATCH', `/api/users/${user.id}`, { group: g });
    const at = (days: number) => new Date(s.clock.now() + days * DAY).toISOString();
    const none = await s.api('POST', '/api/keys', { name: 'k', user_id: user.id });
    expect(none.status).toBe(422);
    expect(none.body.error).toMatchObject({ code: 'limit_above_group', param: 'expires_at' });
    expect(none.body.error.message).toContain('30 days');
    const beyond = await s.api('POST', '/api/keys', { name: 'k', user_id: user.id, expires_at: at(31) });
    expect(beyond.status).toBe(422);
    const ok = await s.api('POST', '/api/keys', { name: 'k', user_id: user.id, expires_at: at(29) });
    expect(ok.status).toBe(201);
    expect((await s.api('PATCH', `/api/keys/${ok.body.id}`, { expires_at: null })).status).toBe(422);
    expect((await s.api('PATCH', `/api/keys/${ok.body.id}`, { expires_at: at(45) })).status).toBe(422);
    expect((await s.api('PATCH', `/api/keys/${ok.body.id}`, { expires_at: at(10) })).status).toBe(200);
    // An admin granting a key this group is held to it too.
    const other = await userWithKey(s);
    const grant = await s.api('PATCH', `/api/keys/${other.key.id}`, { group: g });
    expect(grant.status).toBe(422);
    expect(grant.body.error.param).toBe('expires_at');
  });
});
