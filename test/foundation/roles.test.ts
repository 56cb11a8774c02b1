// Who may call which management route, as one table (like Unkey's route tests): each row is
// a route aimed at a resource of the user "owner", each column a caller. Callers are an
// admin (session), the owner (session), another user (session), the master key, and nobody.
// Another user's resources answer 404 (their existence is not disclosed), admin-only
// routes 403, no credentials 401.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { createKey, createUser, raw, type Res, session, uname } from './util.js';

type Caller = 'admin' | 'owner' | 'other' | 'master' | 'none';
const CALLERS: Caller[] = ['admin', 'owner', 'other', 'master', 'none'];

interface Fixture {
  s: TestServer;
  ownerId: number;
  /** A key of the owner's that every caller may try (no row below changes it for good). */
  keyId: number;
}

interface Row {
  /** Method and OpenAPI path. */
  route: string;
  /** Expected status for admin, owner, other user, master key, no credentials. */
  expect: [admin: number, owner: number, other: number, master: number, none: number];
  /** The concrete path; may create a fresh target first (for routes that use it up). */
  path: (f: Fixture) => string | Promise<string>;
  body?: (() => unknown) | undefined;
}

const row = (
  route: string,
  expect: Row['expect'],
  path: Row['path'] | string,
  body?: () => unknown,
): Row => ({
  route,
  expect,
  path: typeof path === 'string' ? () => path : path,
  body,
});

const freshKey = async (f: Fixture) => `/api/keys/${(await createKey(f.s, f.ownerId)).id}`;
const freshUser = async (f: Fixture) => `/api/users/${(await createUser(f.s)).user.id}`;
const newChannel = () => ({ name: uname('ch'), type: 'mock', models: ['mole-mini'] });
const freshChannel = async (f: Fixture) => {
  const r = await f.s.api('POST', '/api/channels', newChannel());
  return `/api/channels/${r.body.id}`;
};
const freshPrice = async (f: Fixture) => {
  const model = uname('m');
  await f.s.api('PUT', `/api/prices/${model}`, { input: 1, output: 2 });
  return `/api/prices/${model}`;
};

const ADMIN_ONLY: Row['expect'] = [200, 403, 403, 200, 401];
const OWNERS: Row['expect'] = [200, 200, 404, 200, 401];
const ANYONE: Row['expect'] = [200, 200, 200, 200, 401];

const CREATED: Row['expect'] = [201, 403, 403, 201, 401];

const ROWS: Row[] = [
  // keys: a user's own; admins and the master key reach everyone's
  row('GET /api/keys', ANYONE, '/api/keys'),
  row('POST /api/keys', [201, 201, 404, 201, 401], '/api/keys', () => ({
    name: uname('k'),
    user_id: fixture.ownerId,
  })),
  row('GET /api/keys/{id}', OWNERS, (f) => `/api/keys/${f.keyId}`),
  row(
    'PATCH /api/keys/{id}',
    OWNERS,
    (f) => `/api/keys/${f.keyId}`,
    () => ({ name: uname('k') }),
  ),
  row(
    'POST /api/keys/{id}/rotate',
    OWNERS,
    (f) => `/api/keys/${f.keyId}/rotate`,
    () => ({ grace_seconds: 0 }),
  ),
  row('DELETE /api/keys/{id}', OWNERS, freshKey),

  // users: a user sees only themself and changes only their own password
  row('GET /api/users', ANYONE, '/api/users'),
  row('POST /api/users', CREATED, '/api/users', () => ({ username: uname(), password: 'password-123456' })),
  row('GET /api/users/{id}', OWNERS, (f) => `/api/users/${f.ownerId}`),
  row(
    'PATCH /api/users/{id}',
    [200, 403, 404, 200, 401],
    (f) => `/api/users/${f.ownerId}`,
    () => ({ group: 'default' }),
  ),
  row('DELETE /api/users/{id}', ADMIN_ONLY, freshUser),
  row(
    'POST /api/users/{id}/topup',
    ADMIN_ONLY,
    (f) => `/api/users/${f.ownerId}/topup`,
    () => ({ amount: 1 }),
  ),

  // channels: admins only
  row('GET /api/channels', ADMIN_ONLY, '/api/channels'),
  row('POST /api/channels', CREATED, '/api/channels', newChannel),
  row('GET /api/channels/{id}', ADMIN_ONLY, freshChannel),
  row('PATCH /api/channels/{id}', ADMIN_ONLY, freshChannel, () => ({ name: uname('ch') })),
  row('DELETE /api/channels/{id}', ADMIN_ONLY, freshChannel),
  row('POST /api/channels/{id}/test', ADMIN_ONLY, async (f) => `${await freshChannel(f)}/test`),

  // the offer: everyone signed in reads it; admins change it
  row('GET /api/models', ANYONE, '/api/models'),
  row('GET /api/prices', ANYONE, '/api/prices'),
  row('PUT /api/prices/{model}', ADMIN_ONLY, '/api/prices/mole-mini', () => ({ input: 0.15, output: 0.6 })),
  row('DELETE /api/prices/{model}', ADMIN_ONLY, freshPrice),
  row('GET /api/groups', ANYONE, '/api/groups'),
  row('PUT /api/groups/{name}', ADMIN_ONLY, '/api/groups/vip', () => ({ multiplier: 1.5 })),

  // management tokens: everyone manages their own; admins and the master key reach everyone's
  row('GET /api/tokens', ANYONE, '/api/tokens'),
  row('POST /api/tokens', [201, 201, 201, 201, 401], '/api/tokens', () => ({
    name: uname('t'),
    scopes: ['keys:read'],
  })),
  row('DELETE /api/tokens/{id}', OWNERS, async () => {
    const r = await callers.owner('POST', '/api/tokens', { name: uname('t'), scopes: ['keys:read'] });
    return `/api/tokens/${r.body.id}`;
  }),

  // records: everyone reads their own
  row('GET /api/logs', ANYONE, '/api/logs'),
  row('GET /api/usage', ANYONE, '/api/usage'),
  row('GET /api/audit', ANYONE, '/api/audit'),
  row('GET /api/events', ANYONE, '/api/events'),
];

let fixture: Fixture;
const callers = {} as Record<Caller, (method: string, path: string, body?: unknown) => Promise<Res>>;

describe('management routes by caller', () => {
  beforeAll(async () => {
    const s = await startTestServer();
    const admin = await createUser(s, { role: 'admin' });
    const owner = await createUser(s);
    const other = await createUser(s);
    fixture = { s, ownerId: owner.user.id, keyId: (await createKey(s, owner.user.id)).id };
    const adminSession = await session(s, admin.username, admin.password);
    const ownerSession = await session(s, owner.username, owner.password);
    const otherSession = await session(s, other.username, other.password);
    callers.admin = adminSession.call;
    callers.owner = ownerSession.call;
    callers.other = otherSession.call;
    callers.master = (method, path, body) => s.api(method, path, body);
    callers.none = (method, path, body) =>
      raw(s, method, path, {
        ...(body !== undefined
          ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
          : {}),
      });
  });
  afterAll(async () => {
    await fixture?.s.close();
  });

  describe.each(ROWS)('$route', (row) => {
    it.each(CALLERS.map((caller, i) => [caller, row.expect[i]!] as const))(
      '%s → %i',
      async (caller, status) => {
        const res = await callers[caller](row.route.split(' ')[0]!, await row.path(fixture), row.body?.());
        expect(res.status, JSON.stringify(res.body)).toBe(status);
        if (status >= 400) {
          expect(res.body.error.code).toBe(
            status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : 'not_found',
          );
        }
      },
    );
  });

  it("GET /api/groups: a user sees only their own group's policy, an admin every group", async () => {
    const { s } = fixture;
    for (const name of ['policy-a', 'policy-b'])
      expect((await s.api('PUT', `/api/groups/${name}`, { multiplier: 2, rpm: 7 })).status).toBe(200);
    const member = await createUser(s, { group: 'policy-a' });
    const mine = await (await session(s, member.username, member.password)).call('GET', '/api/groups');
    expect(mine.status).toBe(200);
    expect(mine.body.data.map((g: { name: string }) => g.name)).toEqual(['policy-a']);
    // A user in a group without a row of its own sees none.
    expect((await callers.owner('GET', '/api/groups')).body.data).toEqual([]);
    const all = (await callers.admin('GET', '/api/groups')).body.data.map((g: { name: string }) => g.name);
    expect(all).toEqual(expect.arrayContaining(['policy-a', 'policy-b']));
  });

  it('has a row for every management route but the session ones (sessions.test.ts)', async () => {
    const doc = (await fixture.s.api('GET', '/api/openapi.json')).body as {
      paths: Record<string, Record<string, { security?: unknown }>>;
    };
    // Routes that take no credential at all (sign-in, GitHub's signed reports) have their own suites.
    const routes = Object.entries(doc.paths)
      .flatMap(([p, ops]) =>
        Object.entries(ops)
          .filter(([, op]) => op.security !== undefined)
          .map(([m]) => `${m.toUpperCase()} ${p}`),
      )
      .filter((r) => !r.includes(' /api/auth/') && !r.startsWith('HEAD ') && r.includes(' /api/'))
      .filter((r) => !r.endsWith('/openapi.json'));
    expect(routes.filter((r) => !ROWS.some((row) => row.route === r)).sort()).toEqual([]);
  });
});
