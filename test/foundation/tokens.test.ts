// Management tokens (contract §8): `mg-` tokens act as their owner narrowed to their scopes.
// Table-driven over every /api route the OpenAPI document lists: in scope → allowed, out of
// scope → 403 insufficient_scope, routes without a scope refuse tokens. Then tenancy, expiry
// (the injected clock), revocation, owners disabled / deleted / demoted, the master key and
// tokens refused on /v1 (openai SDK), relay keys refused on /api, shown once, CSRF-free.
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { SCOPES } from '../../src/http/principal.js';
import { isWellFormedToken, TOKEN_REGEX } from '../../src/tokens/format.js';
import { backends, type TestServer } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import { createKey, createUser, expectApiError, raw, relay, session, uname } from './util.js';

/** The scope each route needs, as the README documents it (null = no token at all). */
const ROUTE_SCOPES: Record<string, string | null> = {
  'GET /api/auth/session': null,
  'POST /api/auth/logout': null,
  'POST /api/users': 'users:write',
  'GET /api/users': 'users:read',
  'GET /api/users/{id}': 'users:read',
  'PATCH /api/users/{id}': 'users:write',
  'DELETE /api/users/{id}': 'users:write',
  'POST /api/users/{id}/topup': 'users:write',
  'GET /api/audit': 'audit:read',
  'GET /api/events': 'audit:read',
  'GET /api/prices': 'channels:read',
  'PUT /api/prices/{model}': 'channels:write',
  'DELETE /api/prices/{model}': 'channels:write',
  'GET /api/groups': 'channels:read',
  'PUT /api/groups/{name}': 'channels:write',
  'POST /api/channels': 'channels:write',
  'GET /api/channels': 'channels:read',
  'GET /api/channels/{id}': 'channels:read',
  'PATCH /api/channels/{id}': 'channels:write',
  'DELETE /api/channels/{id}': 'channels:write',
  'POST /api/channels/{id}/test': 'channels:write',
  'GET /api/models': 'channels:read',
  'POST /api/keys': 'keys:write',
  'GET /api/keys': 'keys:read',
  'GET /api/keys/{id}': 'keys:read',
  'PATCH /api/keys/{id}': 'keys:write',
  'POST /api/keys/{id}/rotate': 'keys:write',
  'DELETE /api/keys/{id}': 'keys:write',
  'GET /api/logs': 'logs:read',
  'GET /api/usage': 'usage:read',
  'POST /api/tokens': null,
  'GET /api/tokens': null,
  'DELETE /api/tokens/{id}': null,
};

interface Operation {
  route: string;
  method: string;
  /** A concrete path: ids point at nothing, so an allowed call changes nothing. */
  path: string;
  /** The scope the document declares for tokens, or null. */
  scope: string | null;
}

/** Every management operation in the OpenAPI document, with the scope it declares. */
async function operations(s: TestServer): Promise<Operation[]> {
  const doc = (await s.api('GET', '/api/openapi.json')).body as {
    paths: Record<string, Record<string, { security?: Record<string, string[]>[] }>>;
  };
  return Object.entries(doc.paths).flatMap(([p, ops]) =>
    Object.entries(ops)
      // Routes open to anyone (sign-in, webhooks with their own signatures) take no credential.
      .filter(([m, op]) => m !== 'head' && p.startsWith('/api/') && op.security !== undefined)
      .map(([m, op]) => {
        const token = op.security?.find((sec) => 'managementToken' in sec)?.managementToken;
        return {
          route: `${m.toUpperCase()} ${p}`,
          method: m.toUpperCase(),
          path: p
            .replace('{id}', '999999999')
            .replace('{model}', 'no-such-model-tok')
            .replace('{name}', 'no-such-group-tok'),
          scope: token?.[0] ?? null,
        };
      }),
  );
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

describe.each(backends())('management tokens [%s]', (backend) => {
  let admin: Awaited<ReturnType<typeof createUser>>;
  let alice: Awaited<ReturnType<typeof createUser>>;
  let bob: Awaited<ReturnType<typeof createUser>>;
  let adminSession: Awaited<ReturnType<typeof session>>;
  let aliceSession: Awaited<ReturnType<typeof session>>;

  /** Creates a token from `who` (a session's call, or the master key); returns the answer body. */
  async function mint(
    who: Awaited<ReturnType<typeof session>> | 'master',
    scopes: readonly string[],
    extra: Record<string, unknown> = {},
  ) {
    const body = { name: uname('t'), scopes, ...extra };
    const r =
      who === 'master'
        ? await s.api('POST', '/api/tokens', body)
        : await who.call('POST', '/api/tokens', body);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body as { id: number; token: string; scopes: string[]; user_id: number | null; status: string };
  }
  const as = (token: string) => (method: string, p: string, body?: unknown) =>
    s.api(method, p, body, bearer(token));

  const s = suiteServer({ backend });
  beforeAll(async () => {
    admin = await createUser(s, { role: 'admin' });
    alice = await createUser(s, { balance: 5 });
    bob = await createUser(s, { balance: 5 });
    adminSession = await session(s, admin.username, admin.password);
    aliceSession = await session(s, alice.username, alice.password);
  });

  describe('every /api route × scopes', () => {
    let ops: Operation[];
    beforeAll(async () => {
      ops = await operations(s);
    });

    it('declares the scope the README documents (routes added later are covered by the next test)', () => {
      const declared = Object.fromEntries(ops.map((o) => [o.route, o.scope]));
      for (const [route, scope] of Object.entries(ROUTE_SCOPES)) expect(declared[route], route).toBe(scope);
    });

    it('in scope → allowed; every other scope → 403 insufficient_scope; no scope → tokens refused', async () => {
      const all = await mint(adminSession, SCOPES);
      for (const op of ops) {
        if (op.scope === null) {
          const r = await as(all.token)(op.method, op.path, op.method === 'GET' ? undefined : {});
          expectApiError(r, 403, 'insufficient_scope');
          continue;
        }
        const only = await mint(adminSession, [op.scope]);
        const inScope = await as(only.token)(op.method, op.path, op.method === 'GET' ? undefined : {});
        expect([401, 403], `${op.route} with ${op.scope}: ${JSON.stringify(inScope.body)}`).not.toContain(
          inScope.status,
        );
        const others = await mint(
          adminSession,
          SCOPES.filter((sc) => sc !== op.scope),
        );
        const outOfScope = await as(others.token)(op.method, op.path, op.method === 'GET' ? undefined : {});
        expectApiError(outOfScope, 403, 'insufficient_scope');
        expect(outOfScope.body.error.message).toContain(op.scope);
      }
    });

    it('a user’s token never gains admin power: admin-only routes stay 403 forbidden', async () => {
      const t = await mint(aliceSession, SCOPES);
      for (const [method, p, body] of [
        ['GET', '/api/channels'],
        ['POST', '/api/users', { username: uname(), password: 'password-123456' }],
        ['POST', `/api/users/${alice.user.id}/topup`, { amount: 100 }],
        ['PUT', '/api/prices/whatever', { input: 0, output: 0 }],
        ['PATCH', `/api/users/${alice.user.id}`, { role: 'admin' }],
      ] as const) {
        const r = await as(t.token)(method, p, body);
        expectApiError(r, 403, 'forbidden');
      }
      expect((await s.api('GET', `/api/users/${alice.user.id}`)).body.balance).toBe(5);
    });

    it('an admin’s token with users:read reads every user', async () => {
      const t = await mint(adminSession, ['users:read']);
      const r = await as(t.token)('GET', '/api/users?limit=500');
      expect(r.status).toBe(200);
      const ids = r.body.data.map((u: { id: number }) => u.id);
      expect(ids).toEqual(expect.arrayContaining([admin.user.id, alice.user.id, bob.user.id]));
    });
  });

  describe('tenancy', () => {
    it('a user’s token sees only its owner’s keys, logs, usage, audit and self', async () => {
      const aliceKey = await createKey(s, alice.user.id);
      const bobKey = await createKey(s, bob.user.id);
      const t = await mint(aliceSession, SCOPES);
      const call = as(t.token);

      const keys = await call('GET', '/api/keys?limit=500');
      expect(keys.status).toBe(200);
      const ids = keys.body.data.map((k: { id: number }) => k.id);
      expect(ids).toContain(aliceKey.id);
      expect(ids).not.toContain(bobKey.id);
      expect(new Set(keys.body.data.map((k: { user_id: number }) => k.user_id))).toEqual(
        new Set([alice.user.id]),
      );
      // Asking for Bob's data by id or filter finds nothing.
      expectApiError(await call('GET', `/api/keys/${bobKey.id}`), 404, 'not_found');
      expectApiError(await call('PATCH', `/api/keys/${bobKey.id}`, { name: 'stolen' }), 404, 'not_found');
      // A filter on another account narrows to nothing (not to Alice's own rows either).
      const filtered = await call('GET', `/api/keys?user_id=${bob.user.id}`);
      expect(filtered.body.data).toEqual([]);
      expect((await call('GET', `/api/keys?user_id=${alice.user.id}`)).body.data.length).toBeGreaterThan(0);
      expectApiError(await call('GET', `/api/users/${bob.user.id}`), 404, 'not_found');

      const users = await call('GET', '/api/users');
      expect(users.body.data.map((u: { id: number }) => u.id)).toEqual([alice.user.id]);

      // Relay traffic on Bob's key; Alice's logs and usage never show it.
      await relay(s, bobKey.secret, { path: '/v1/models' });
      await relay(s, bobKey.secret, {
        path: '/v1/chat/completions',
        method: 'POST',
        body: { model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] },
      });
      await s.services.flush();
      const adminLogs = await s.api('GET', `/api/logs?key_id=${bobKey.id}`);
      expect(adminLogs.body.data.length).toBeGreaterThan(0);
      for (const p of ['/api/logs', `/api/logs?user_id=${bob.user.id}`, `/api/logs?key_id=${bobKey.id}`]) {
        const logs = await call('GET', p);
        expect(logs.status).toBe(200);
        expect(logs.body.data.filter((l: { user_id: number }) => l.user_id !== alice.user.id)).toEqual([]);
      }
      expect((await call('GET', `/api/logs?user_id=${bob.user.id}`)).body.data).toEqual([]);
      const usage = await call('GET', `/api/usage?group_by=key&user_id=${bob.user.id}`);
      expect(usage.status).toBe(200);
      expect(usage.body.data).toEqual([]);
      expect((await call('GET', `/api/audit?user_id=${bob.user.id}`)).body.data).toEqual([]);
      const audit = await call('GET', '/api/audit?limit=500');
      expect(audit.body.data.filter((a: { user_id: number | null }) => a.user_id !== alice.user.id)).toEqual(
        [],
      );
    });

    it('a user lists and revokes only their own tokens; an admin sees and revokes everyone’s', async () => {
      const bobSession = await session(s, bob.username, bob.password);
      const bobs = await mint(bobSession, ['keys:read']);
      const alices = await mint(aliceSession, ['keys:read']);
      const aliceList = await aliceSession.call('GET', '/api/tokens');
      expect(aliceList.body.data.map((t: { id: number }) => t.id)).toContain(alices.id);
      expect(aliceList.body.data.every((t: { user_id: number }) => t.user_id === alice.user.id)).toBe(true);
      expectApiError(await aliceSession.call('DELETE', `/api/tokens/${bobs.id}`), 404, 'not_found');
      expect((await as(bobs.token)('GET', '/api/keys')).status).toBe(200);

      const adminList = await adminSession.call('GET', '/api/tokens');
      expect(adminList.body.data.map((t: { id: number }) => t.id)).toEqual(
        expect.arrayContaining([alices.id, bobs.id]),
      );
      const onlyBob = await adminSession.call('GET', `/api/tokens?user_id=${bob.user.id}`);
      expect(onlyBob.body.data.map((t: { user_id: number }) => t.user_id)).toEqual(
        onlyBob.body.data.map(() => bob.user.id),
      );
      expect((await adminSession.call('DELETE', `/api/tokens/${bobs.id}`)).body.status).toBe('revoked');
      expectApiError(await as(bobs.token)('GET', '/api/keys'), 401, 'unauthorized');
    });
  });

  describe('lifecycle', () => {
    it('is shown once: mg- format with a checksum, never in a list; only its hash is stored', async () => {
      const t = await mint(aliceSession, ['keys:read']);
      expect(t.token).toMatch(TOKEN_REGEX);
      expect(isWellFormedToken(t.token)).toBe(true);
      expect(t.status).toBe('active');
      expect(t.user_id).toBe(alice.user.id);
      const list = await aliceSession.call('GET', '/api/tokens');
      const listed = list.body.data.find((x: { id: number }) => x.id === t.id);
      expect(listed.display).toBe(`${t.token.slice(0, 7)}…${t.token.slice(-4)}`);
      expect(JSON.stringify(list.body)).not.toContain(t.token.slice(8, -8));
      expect(listed).not.toHaveProperty('token');
      // One changed character fails the checksum; the same shape with an unknown secret is unknown.
      const flipped = t.token.slice(0, 10) + (t.token[10] === 'a' ? 'b' : 'a') + t.token.slice(11);
      expectApiError(await as(flipped)('GET', '/api/keys'), 401, 'unauthorized');
    });

    it('expires by the injected clock, and is refused once expired', async () => {
      const t = await mint(aliceSession, ['keys:read'], {
        expires_at: new Date(s.clock.now() + 3_600_000).toISOString(),
      });
      expect((await as(t.token)('GET', '/api/keys')).status).toBe(200);
      s.clock.advance(3_600_001);
      const r = await as(t.token)('GET', '/api/keys');
      expectApiError(r, 401, 'unauthorized');
      expect(r.body.error.message).toMatch(/expired/);
      const listed = (await aliceSession.call('GET', '/api/tokens')).body.data.find(
        (x: { id: number }) => x.id === t.id,
      );
      expect(listed.status).toBe('expired');
      // A time already past is refused.
      const past = await aliceSession.call('POST', '/api/tokens', {
        name: 'late',
        scopes: ['keys:read'],
        expires_at: new Date(s.clock.now() - 1000).toISOString(),
      });
      expectApiError(past, 422, 'validation_error');
    });

    it('is revoked at once; the audit trail has create and revoke, never the secret', async () => {
      const t = await mint(aliceSession, ['keys:read', 'keys:write']);
      expect((await as(t.token)('GET', '/api/keys')).status).toBe(200);
      const r = await aliceSession.call('DELETE', `/api/tokens/${t.id}`);
      expect(r.status).toBe(200);
      expect(r.body.status).toBe('revoked');
      const after = await as(t.token)('GET', '/api/keys');
      expectApiError(after, 401, 'unauthorized');
      expect(after.body.error.message).toMatch(/revoked/);
      expectApiError(await aliceSession.call('DELETE', `/api/tokens/${t.id}`), 404, 'not_found');
      const list = await aliceSession.call('GET', '/api/tokens');
      expect(list.body.data.map((x: { id: number }) => x.id)).not.toContain(t.id);

      const audit = await s.api('GET', `/api/audit?user_id=${alice.user.id}&limit=500`);
      const rows = audit.body.data.filter(
        (a: { changes: { token_id?: number } }) => a.changes?.token_id === t.id,
      );
      expect(rows.map((a: { action: string }) => a.action).sort()).toEqual(['token.create', 'token.revoke']);
      expect(rows.every((a: { actor: string }) => a.actor === `user:${alice.user.id}`)).toBe(true);
      expect(JSON.stringify(audit.body)).not.toContain(t.token.slice(8, -8));
    });

    it('acts as its owner in the audit trail, and writes need no CSRF token', async () => {
      const t = await mint(aliceSession, ['keys:write']);
      const k = await as(t.token)('POST', '/api/keys', { name: uname('k') });
      expect(k.status, JSON.stringify(k.body)).toBe(201);
      expect(k.body.user_id).toBe(alice.user.id);
      const audit = await s.api('GET', `/api/audit?key_id=${k.body.id}`);
      expect(audit.body.data[0].actor).toBe(`user:${alice.user.id}/token:${t.id}`);
      // A token never rides along with a cookie's CSRF rule, nor does a cookie skip it.
      const cookieOnly = await s.api('POST', '/api/keys', { name: 'x' }, { cookie: aliceSession.cookie });
      expectApiError(cookieOnly, 403, 'csrf_failed');
    });

    it('cannot mint, list or revoke tokens; unknown or no scopes are a 400', async () => {
      const t = await mint(aliceSession, SCOPES);
      expectApiError(
        await as(t.token)('POST', '/api/tokens', { name: 'x', scopes: ['keys:read'] }),
        403,
        'insufficient_scope',
      );
      expectApiError(await as(t.token)('GET', '/api/tokens'), 403, 'insufficient_scope');
      expectApiError(await as(t.token)('DELETE', `/api/tokens/${t.id}`), 403, 'insufficient_scope');
      const unknown = await aliceSession.call('POST', '/api/tokens', {
        name: 'x',
        scopes: ['keys:read', 'root'],
      });
      expectApiError(unknown, 400, 'invalid_request');
      expect(unknown.body.error.message).toContain('"root"');
      expectApiError(
        await aliceSession.call('POST', '/api/tokens', { name: 'x', scopes: [] }),
        400,
        'invalid_request',
      );
    });

    it('follows its owner: demoted, disabled or deleted owners take its power with them', async () => {
      const boss = await createUser(s, { role: 'admin' });
      const bossSession = await session(s, boss.username, boss.password);
      const t = await mint(bossSession, ['channels:read', 'users:read']);
      expect((await as(t.token)('GET', '/api/channels')).status).toBe(200);
      await s.api('PATCH', `/api/users/${boss.user.id}`, { role: 'user' });
      expectApiError(await as(t.token)('GET', '/api/channels'), 403, 'forbidden');
      expect((await as(t.token)('GET', '/api/users')).body.data.map((u: { id: number }) => u.id)).toEqual([
        boss.user.id,
      ]);
      await s.api('PATCH', `/api/users/${boss.user.id}`, { status: 'disabled' });
      expectApiError(await as(t.token)('GET', '/api/users'), 401, 'unauthorized');
      await s.api('PATCH', `/api/users/${boss.user.id}`, { status: 'active' });
      expect((await as(t.token)('GET', '/api/users')).status).toBe(200);
      await s.api('DELETE', `/api/users/${boss.user.id}`);
      expectApiError(await as(t.token)('GET', '/api/users'), 401, 'unauthorized');
    });

    it('changing the owner’s password through a token needs the current password', async () => {
      const carol = await createUser(s);
      const carolSession = await session(s, carol.username, carol.password);
      const t = await mint(carolSession, ['users:write']);
      const r = await as(t.token)('PATCH', `/api/users/${carol.user.id}`, { password: 'new-password-1' });
      expectApiError(r, 422, 'validation_error');
      expect(r.body.error.param).toBe('current_password');
    });

    it('the master key mints tokens that act as the master key, narrowed', async () => {
      const t = await mint('master', ['keys:write', 'keys:read']);
      expect(t.user_id).toBeNull();
      const k = await as(t.token)('POST', '/api/keys', { name: uname('k'), user_id: bob.user.id });
      expect(k.status, JSON.stringify(k.body)).toBe(201);
      expect((await as(t.token)('GET', `/api/keys/${k.body.id}`)).status).toBe(200);
      expectApiError(await as(t.token)('GET', '/api/users'), 403, 'insufficient_scope');
      const audit = await s.api('GET', `/api/audit?key_id=${k.body.id}`);
      expect(audit.body.data[0].actor).toBe(`master/token:${t.id}`);
      const masterList = await s.api('GET', '/api/tokens');
      expect(masterList.body.data.map((x: { id: number }) => x.id)).toContain(t.id);
    });
  });

  describe('each credential on its own API', () => {
    it('the master key and a management token are refused on /v1 (openai SDK), saying to use an API key', async () => {
      const t = await mint(adminSession, SCOPES);
      for (const credential of [s.masterKey, t.token]) {
        const client = new OpenAI({ apiKey: credential, baseURL: `${s.url}/v1`, maxRetries: 0 });
        const err = await client.models.list().then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
        const e = err as InstanceType<typeof OpenAI.AuthenticationError>;
        expect(e.status).toBe(401);
        expect(e.code).toBe('invalid_api_key');
        expect(e.message).toMatch(/use an API key \(sk-…\)/i);
        expect(e.message).not.toContain(credential);
        const chat = await client.chat.completions
          .create({ model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }] })
          .catch((x: unknown) => x);
        expect(chat).toBeInstanceOf(OpenAI.AuthenticationError);
        // Anthropic- and Gemini-style headers too, each in its own protocol's error shape.
        for (const [how, path] of [
          ['x-api-key', '/v1/messages'],
          ['x-goog-api-key', '/v1beta/models/gemini-x:generateContent'],
        ] as const) {
          const r = await relay(s, credential, { how, path, method: 'POST', body: {} });
          expect(r.status, how).toBe(401);
          expect(r.body.error.message, how).toMatch(/use an API key/i);
        }
      }
    });

    it('a relay key is refused on /api, saying it is a relay key', async () => {
      const k = await createKey(s, alice.user.id);
      const ways: Record<string, string>[] = [
        bearer(k.secret),
        { 'x-api-key': k.secret },
        { 'api-key': k.secret },
      ];
      for (const headers of ways) {
        const r = await raw(s, 'GET', '/api/keys', { headers });
        expectApiError(r, 401, 'unauthorized');
        expect(r.body.error.message).toMatch(/relay API key/);
        expect(r.body.error.message).not.toContain(k.secret);
      }
      // An sk- string that is no key at all gets the same pointer (no lookup needed).
      const r = await raw(s, 'GET', '/api/users', { headers: bearer('sk-not-a-real-key') });
      expectApiError(r, 401, 'unauthorized');
      expect(r.body.error.message).toMatch(/relay API key/);
    });
  });
});
