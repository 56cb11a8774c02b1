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
  what: string;
  /** The concrete path; may create a fresh target first (for routes that use it up). */
  path: (f: Fixture) => string | Promise<string>;
  body?: () => unknown;
  /** Expected status for admin, owner, other user, master key, no credentials. */
  expect: [admin: number, owner: number, other: number, master: number, none: number];
}

const freshKey = async (f: Fixture) => `/api/keys/${(await createKey(f.s, f.ownerId)).id}`;
const freshUser = async (f: Fixture) => `/api/users/${(await createUser(f.s)).user.id}`;
const freshChannel = async (f: Fixture) => {
  const r = await f.s.api('POST', '/api/channels', {
    name: uname('ch'),
    type: 'mock',
    models: ['mole-mini'],
  });
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

const ROWS: Row[] = [
  // keys: a user's own; admins and the master key reach everyone's
  { route: 'GET /api/keys', what: 'list keys', path: () => '/api/keys', expect: ANYONE },
  {
    route: 'POST /api/keys',
    what: 'create a key for the owner',
    path: () => '/api/keys',
    body: () => ({ name: uname('k'), user_id: fixture.ownerId }),
    expect: [201, 201, 404, 201, 401],
  },
  { route: 'GET /api/keys/{id}', what: 'read a key', path: (f) => `/api/keys/${f.keyId}`, expect: OWNERS },
  {
    route: 'PATCH /api/keys/{id}',
    what: 'rename a key',
    path: (f) => `/api/keys/${f.keyId}`,
    body: () => ({ name: uname('k') }),
    expect: OWNERS,
  },
  {
    route: 'POST /api/keys/{id}/rotate',
    what: 'rotate a key',
    path: (f) => `/api/keys/${f.keyId}/rotate`,
    body: () => ({ grace_seconds: 0 }),
    expect: OWNERS,
  },
  { route: 'DELETE /api/keys/{id}', what: 'delete a key', path: freshKey, expect: OWNERS },

  // users: a user sees only themself and changes only their own password
  { route: 'GET /api/users', what: 'list users', path: () => '/api/users', expect: ANYONE },
  {
    route: 'POST /api/users',
    what: 'create a user',
    path: () => '/api/users',
    body: () => ({ username: uname(), password: 'password-123456' }),
    expect: [201, 403, 403, 201, 401],
  },
  {
    route: 'GET /api/users/{id}',
    what: 'read a user',
    path: (f) => `/api/users/${f.ownerId}`,
    expect: OWNERS,
  },
  {
    route: 'PATCH /api/users/{id}',
    what: "change a user's group",
    path: (f) => `/api/users/${f.ownerId}`,
    body: () => ({ group: 'default' }),
    expect: [200, 403, 404, 200, 401],
  },
  { route: 'DELETE /api/users/{id}', what: 'delete a user', path: freshUser, expect: ADMIN_ONLY },
  {
    route: 'POST /api/users/{id}/topup',
    what: 'top up a balance',
    path: (f) => `/api/users/${f.ownerId}/topup`,
    body: () => ({ amount: 1 }),
    expect: ADMIN_ONLY,
  },

  // channels: admins only
  { route: 'GET /api/channels', what: 'list channels', path: () => '/api/channels', expect: ADMIN_ONLY },
  {
    route: 'POST /api/channels',
    what: 'create a channel',
    path: () => '/api/channels',
    body: () => ({ name: uname('ch'), type: 'mock', models: ['mole-mini'] }),
    expect: [201, 403, 403, 201, 401],
  },
  { route: 'GET /api/channels/{id}', what: 'read a channel', path: freshChannel, expect: ADMIN_ONLY },
  {
    route: 'PATCH /api/channels/{id}',
    what: 'rename a channel',
    path: freshChannel,
    body: () => ({ name: uname('ch') }),
    expect: ADMIN_ONLY,
  },
  { route: 'DELETE /api/channels/{id}', what: 'delete a channel', path: freshChannel, expect: ADMIN_ONLY },
  {
    route: 'POST /api/channels/{id}/test',
    what: 'test a channel',
    path: async (f) => `${await freshChannel(f)}/test`,
    expect: ADMIN_ONLY,
  },

  // the offer: everyone signed in reads it; admins change it
  { route: 'GET /api/models', what: 'list models', path: () => '/api/models', expect: ANYONE },
  { route: 'GET /api/prices', what: 'list prices', path: () => '/api/prices', expect: ANYONE },
  {
    route: 'PUT /api/prices/{model}',
    what: 'set a price',
    path: () => '/api/prices/mole-mini',
    body: () => ({ input: 0.15, output: 0.6 }),
    expect: ADMIN_ONLY,
  },
  { route: 'DELETE /api/prices/{model}', what: 'delete a price', path: freshPrice, expect: ADMIN_ONLY },
  { route: 'GET /api/groups', what: 'list groups', path: () => '/api/groups', expect: ANYONE },
  {
    route: 'PUT /api/groups/{name}',
    what: 'set a group multiplier',
    path: () => '/api/groups/vip',
    body: () => ({ multiplier: 1.5 }),
    expect: ADMIN_ONLY,
  },

  // records: everyone reads their own
  { route: 'GET /api/logs', what: 'read logs', path: () => '/api/logs', expect: ANYONE },
  { route: 'GET /api/usage', what: 'read usage', path: () => '/api/usage', expect: ANYONE },
  { route: 'GET /api/audit', what: 'read the audit trail', path: () => '/api/audit', expect: ANYONE },
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

  describe.each(ROWS)('$route ($what)', (row) => {
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

  it('has a row for every management route but the session ones (sessions.test.ts)', async () => {
    const doc = (await fixture.s.api('GET', '/api/openapi.json')).body as { paths: Record<string, object> };
    const routes = Object.entries(doc.paths)
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`))
      .filter((r) => !r.includes(' /api/auth/') && !r.startsWith('HEAD ') && r.includes(' /api/'))
      .filter((r) => !r.endsWith('/openapi.json'));
    expect(routes.filter((r) => !ROWS.some((row) => row.route === r)).sort()).toEqual([]);
  });
});
