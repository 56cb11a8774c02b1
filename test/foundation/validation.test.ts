// Input validation over every management route (contract §3): wrong types, unknown fields,
// huge strings, NUL bytes, bad CIDRs, malformed JSON, bad ids and queries → a 4xx with an
// error code, never a 5xx. Plus /api/openapi.json and /api/docs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, startTestServer, type TestServer } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import { createKey, createUser, raw, relay, type Res } from './util.js';
import { nanoOf } from '../relay/relay-helpers.js';

const HUGE = 'x'.repeat(100_000);
/** Every limit a key takes, set to a valid value (the key routes' bodies start from it). */
const KEY_LIMITS = {
  models: ['m1'],
  allowed_ips: ['127.0.0.1'],
  quota: 1,
  expires_at: '2999-01-01T00:00:00Z',
  group: 'default',
  rpm: 10,
};
/** Values every field is tried with (most are wrong for any field; the rest must still not break anything). */
const VALUES: unknown[] = [
  null,
  true,
  -1,
  1.5,
  1e308,
  2 ** 53 + 2, // above Number.MAX_SAFE_INTEGER
  '',
  'str',
  HUGE,
  '\u0000',
  '\ud800',
  "'; drop table users; --",
  [],
  ['x'],
  [HUGE],
  ['10.0.0.0/33'],
  {},
  { a: 1 },
  '9'.repeat(30),
  '+275760-09-13T00:00:00.001Z',
];

interface Ids {
  userId: number;
  keyId: number;
  channelId: number;
}
/**
 * Every write route with a valid body; the fuzz varies one field at a time. A route's `:param`
 * is filled with the `id` its entry gives.
 */
const BODY_ROUTES: Record<string, (i: Ids) => { id?: number | string; base: Record<string, unknown> }> = {
  'POST /api/auth/login': () => ({ base: { username: 'nobody', password: 'password-123' } }),
  'POST /api/users': () => ({
    base: { username: 'fuzzed', password: 'password-123', role: 'user', group: 'default', balance: 1 },
  }),
  'PATCH /api/users/:id': (i) => ({
    id: i.userId,
    base: { role: 'user', group: 'default', status: 'active', password: 'password-123' },
  }),
  'POST /api/users/:id/topup': (i) => ({ id: i.userId, base: { amount: 1 } }),
  'POST /api/keys': (i) => ({ base: { name: 'n', user_id: i.userId, ...KEY_LIMITS } }),
  'PATCH /api/keys/:id': (i) => ({ id: i.keyId, base: { name: 'n', status: 'active', ...KEY_LIMITS } }),
  'POST /api/keys/:id/rotate': (i) => ({ id: i.keyId, base: { grace_seconds: 0 } }),
  'POST /api/channels': () => ({
    base: {
      name: 'c',
      type: 'openai',
      base_url: 'http://127.0.0.1:9',
      api_key: 'k',
      models: ['m1'],
      model_map: { m1: 'm2' },
      priority: 0,
      weight: 1,
      groups: ['default'],
      status: 'disabled',
    },
  }),
  'PATCH /api/channels/:id': (i) => ({
    id: i.channelId,
    base: {
      name: 'c',
      type: 'mock',
      models: ['m1'],
      model_map: null,
      priority: 0,
      weight: 1,
      groups: null,
      status: 'active',
    },
  }),
  'PUT /api/prices/:model': () => ({ id: 'm1', base: { input: 1, output: 2, cached_input: 0.5 } }),
  'PUT /api/groups/:name': () => ({ id: 'default', base: { multiplier: 1 } }),
};

/** A BODY_ROUTES entry as sent: its method, its path with the id filled in, its valid body. */
function bodyRoute(name: string, i: Ids) {
  const [method, template] = name.split(' ') as [string, string];
  const { id, base } = BODY_ROUTES[name]!(i);
  return { method, path: template.replace(/:\w+/, String(id)), base };
}

function expectClientError(res: Res, what: string) {
  expect(res.status, `${what} → ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`).toBeLessThan(500);
  if (res.status >= 400) {
    expect(typeof res.body?.error?.code, `${what}: ${JSON.stringify(res.body).slice(0, 300)}`).toBe('string');
    expect(typeof res.body.error.message).toBe('string');
  }
}

describe.each(backends())('input validation [%s]', (backend) => {
  let s: TestServer;
  let userId: number;
  let keyId: number;
  let channelId: number;
  let ids: Ids;
  const bodyRoutes = () => Object.keys(BODY_ROUTES).map((name) => bodyRoute(name, ids));
  const send = (method: string, p: string, body?: string, contentType = 'application/json') =>
    raw(s, method, p, {
      headers: {
        authorization: `Bearer ${s.masterKey}`,
        ...(body !== undefined ? { 'content-type': contentType } : {}),
      },
      ...(body !== undefined ? { body } : {}),
    });

  beforeAll(async () => {
    s = await startTestServer({ backend });
    userId = (await createUser(s, { balance: 1 })).user.id;
    keyId = (await createKey(s, userId)).id;
    const ch = await s.api('POST', '/api/channels', { name: 'fuzz', type: 'mock', models: ['m1'] });
    expect(ch.status).toBe(201);
    channelId = ch.body.id;
    ids = { userId, keyId, channelId };
  });
  afterAll(async () => {
    await s?.close();
  });

  it.each(Object.keys(BODY_ROUTES))(
    '%s: every body field, every wrong value → 4xx with a code, never 5xx',
    async (name) => {
      const r = bodyRoute(name, ids);
      let n = 0;
      for (const field of Object.keys(r.base)) {
        for (const v of VALUES) {
          const res = await send(r.method, r.path, JSON.stringify({ ...r.base, [field]: v }));
          expectClientError(res, `${r.method} ${r.path} ${field}=${JSON.stringify(v)?.slice(0, 40)}`);
          n++;
        }
        // the field alone, without the others
        expectClientError(
          await send(r.method, r.path, JSON.stringify({ [field]: r.base[field] })),
          `${r.method} ${r.path} only ${field}`,
        );
      }
      expect(n).toBe(Object.keys(r.base).length * VALUES.length);
    },
  );

  it('unknown fields are refused with 422 on every write route', async () => {
    for (const r of bodyRoutes()) {
      for (const extra of [{ unknown_field: 1 }, { __proto__x: 1 }, { ['k'.repeat(10_000)]: 1 }, { id: 1 }]) {
        const res = await send(r.method, r.path, JSON.stringify({ ...r.base, ...extra }));
        expect(res.status, `${r.method} ${r.path} ${Object.keys(extra)[0]!.slice(0, 20)}`).toBe(422);
        expect(res.body.error.code).toBe('validation_error');
        expect(res.body.error.message.length).toBeLessThan(500);
      }
    }
  });

  it('a DELETE with content-type: application/json and no body is a DELETE (a PATCH is refused)', async () => {
    const headers = { authorization: `Bearer ${s.masterKey}`, 'content-type': 'application/json' };
    const doomed = await createKey(s, userId);
    const del = await raw(s, 'DELETE', `/api/keys/${doomed.id}`, { headers });
    expect(del.status, JSON.stringify(del.body)).toBe(200);
    expect((await raw(s, 'GET', `/api/keys/${doomed.id}`, { headers })).status).toBe(404);
    expect((await raw(s, 'PATCH', `/api/keys/${keyId}`, { headers, body: '' })).status).toBe(400);
  });

  it('malformed and mistyped bodies: 400/413/415/422, never 5xx', async () => {
    const shapes: Array<[string | undefined, string, number[]]> = [
      ['{not json', 'application/json', [400]],
      ['{"a":', 'application/json', [400]],
      ['', 'application/json', [400, 422]],
      ['[]', 'application/json', [422]],
      ['[1,2]', 'application/json', [422]],
      ['"a string"', 'application/json', [422]],
      ['123', 'application/json', [422]],
      ['true', 'application/json', [422]],
      ['{"a":1}{"b":2}', 'application/json', [400]],
      ['\u0000', 'application/json', [400]],
      ['{"__proto__":{"role":"admin"}}', 'application/json', [400, 422]],
      ['{"constructor":{"prototype":{"role":"admin"}}}', 'application/json', [400, 422]],
      ['name=x', 'application/x-www-form-urlencoded', [415]],
      ['name', 'text/plain', [415, 422]],
      ['{"name":"x"}', 'application/json; charset=latin1', [200, 201, 400, 401, 415, 422]],
      [JSON.stringify({ name: 'y'.repeat(1_100_000) }), 'application/json', [413]],
    ];
    for (const r of bodyRoutes()) {
      for (const [body, type, allowed] of shapes) {
        const res = await send(r.method, r.path, body, type);
        expectClientError(res, `${r.method} ${r.path} ${type} ${String(body).slice(0, 20)}`);
        expect(
          allowed,
          `${r.method} ${r.path} ${type} ${String(body).slice(0, 20)} → ${res.status}`,
        ).toContain(res.status);
      }
    }
    const bad = await send('POST', '/api/keys', '{not json');
    expect(bad.body.error.code).toBe('invalid_request');
    expect(bad.body.error.message).toBe('request body is not valid JSON');
    // Valid JSON refused for a prototype key is told so, not called invalid JSON.
    for (const body of ['{"__proto__":{"role":"admin"}}', '{"constructor":{"prototype":{"role":"admin"}}}']) {
      const proto = await send('POST', '/api/keys', body);
      expect(proto.status).toBe(400);
      expect(proto.body.error.message).toBe(
        'request body has a forbidden key: __proto__, or constructor with a prototype',
      );
    }
    const big = await send('POST', '/api/keys', JSON.stringify({ name: 'y'.repeat(1_100_000) }));
    expect(big.body.error.code).toBe('request_too_large');
  });

  it('bad ids in paths: 4xx with a code, never 5xx', async () => {
    const ids = [
      '%E0%A4%A',
      '%FF',
      '%',
      'abc',
      '-1',
      '0',
      '1.5',
      '1e400',
      '99999999999999999999',
      '9007199254740993',
      '%00',
      '%20',
      '1%3Bdrop',
      '0x10',
      'Infinity',
      'NaN',
      '1'.repeat(300),
      "1'",
    ];
    const templates: Array<[string, string, unknown]> = [
      ['GET', '/api/users/:id', undefined],
      ['PATCH', '/api/users/:id', { role: 'user' }],
      ['DELETE', '/api/users/:id', undefined],
      ['POST', '/api/users/:id/topup', { amount: 1 }],
      ['GET', '/api/keys/:id', undefined],
      ['PATCH', '/api/keys/:id', { name: 'x' }],
      ['DELETE', '/api/keys/:id', undefined],
      ['POST', '/api/keys/:id/rotate', {}],
      ['GET', '/api/channels/:id', undefined],
      ['PATCH', '/api/channels/:id', { name: 'x' }],
      ['DELETE', '/api/channels/:id', undefined],
      ['PUT', '/api/prices/:id', { input: 1, output: 1 }],
      ['DELETE', '/api/prices/:id', undefined],
      ['PUT', '/api/groups/:id', { multiplier: 1 }],
    ];
    for (const [method, t, body] of templates) {
      for (const id of ids) {
        const res = await send(
          method,
          t.replace(':id', id),
          body === undefined ? undefined : JSON.stringify(body),
        );
        expectClientError(res, `${method} ${t} id=${id.slice(0, 20)}`);
      }
      // a well-formed id that does not exist
      if (!t.startsWith('/api/prices') && !t.startsWith('/api/groups')) {
        const res = await send(
          method,
          t.replace(':id', '987654321'),
          body === undefined ? undefined : JSON.stringify(body),
        );
        expect(res.status, `${method} ${t}`).toBe(404);
        expect(res.body.error.code).toBe('not_found');
      }
    }
    // Our fixtures survived.
    expect((await s.api('GET', `/api/keys/${keyId}`)).status).toBe(200);
    expect((await s.api('GET', `/api/users/${userId}`)).status).toBe(200);
  });

  it('an amount a JSON number cannot carry exactly is refused, not rounded', async () => {
    const before = (await s.api('GET', `/api/users/${userId}`)).body.balance;
    for (const amount of ['8999999.999999999', '1234567.123456789', '0.0000000001']) {
      const r = await send('POST', `/api/users/${userId}/topup`, `{"amount":${amount}}`);
      expect(r.status, amount).toBe(422);
      expect(r.body.error.param).toBe('amount');
    }
    expect((await s.api('GET', `/api/users/${userId}`)).body.balance).toBe(before);
    const exact = await send('POST', `/api/users/${userId}/topup`, '{"amount":1234567.12345678}');
    expect(exact.status).toBe(200);
    expect(nanoOf(exact.body.balance) - nanoOf(before)).toBe(1_234_567_123_456_780n);
  });

  it('an id is its decimal digits or a JSON number: nothing else names a row', async () => {
    const hex = `0x${keyId.toString(16)}`;
    for (const id of [hex, `${keyId}e0`, `+${keyId}`, `${keyId}.0`, `0${keyId}`, ` ${keyId}`]) {
      const r = await s.api('GET', `/api/keys/${encodeURIComponent(id)}`);
      expect(r.status, id).toBe(422);
      expect(r.body.error.code).toBe('validation_error');
      const q = await s.api(
        'GET',
        `/api/keys?user_id=${encodeURIComponent(id.replace(String(keyId), String(userId)))}`,
      );
      expect(q.status, `user_id=${id}`).toBe(422);
    }
    // In a body, only a number: coercion made `true` user 1 (an admin) and `[3]` user 3.
    for (const user_id of [true, [userId], String(userId), `0x${userId.toString(16)}`]) {
      const r = await s.api('POST', '/api/keys', { name: 'coerced', user_id });
      expect(r.status, JSON.stringify(user_id)).toBe(422);
      expect(r.body.error.param).toBe('user_id');
    }
    expect((await s.api('POST', '/api/keys', { name: 'numbered', user_id: userId })).status).toBe(201);
  });

  it('bad query strings: 4xx with a code, never 5xx', async () => {
    const routes: Record<string, string[]> = {
      '/api/users': ['limit', 'cursor', 'q'],
      '/api/keys': ['user_id', 'status', 'q', 'group', 'limit', 'cursor'],
      '/api/audit': ['key_id', 'user_id', 'limit', 'cursor'],
      '/api/events': ['type', 'key_id', 'user_id', 'limit', 'cursor'],
      '/api/logs': [
        'key_id',
        'user_id',
        'model',
        'from',
        'to',
        'status',
        'limit',
        'cursor',
        'format',
        'totals',
      ],
      '/api/usage': ['key_id', 'user_id', 'model', 'from', 'to', 'group_by', 'format', 'limit', 'cursor'],
      '/api/models': ['group'],
    };
    const values = [
      '',
      'abc',
      '-1',
      '1.5',
      '1e400',
      '1e300',
      '99999999999999999999',
      'a%00b',
      encodeURIComponent(HUGE.slice(0, 5000)),
      '%25%5F%5C',
      "'",
      '2024-13-45',
      '%F0%9F%92%A9',
      '%FF',
    ];
    for (const [p, params] of Object.entries(routes)) {
      for (const param of params) {
        for (const v of values)
          expectClientError(await send('GET', `${p}?${param}=${v}`), `GET ${p}?${param}=${v.slice(0, 20)}`);
        expectClientError(await send('GET', `${p}?${param}=1&${param}=2`), `GET ${p} repeated ${param}`);
        expectClientError(await send('GET', `${p}?${param}[a]=1`), `GET ${p} ${param}[a]`);
      }
      const unknown = await send('GET', `${p}?unknown_param=1`);
      expect(unknown.status, p).toBe(422);
      expect(unknown.body.error.code).toBe('validation_error');
    }
  });

  it('a lone surrogate in a name is stored as U+FFFD on both backends', async () => {
    const made = await send('POST', '/api/keys', `{"name":"s\\ud800\\u0001x","user_id":${userId}}`);
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    expect(made.body.name).toBe('s\ufffd\u0001x');
    expect((await s.api('GET', `/api/keys/${made.body.id}`)).body.name).toBe('s\ufffd\u0001x');
  });

  it('NUL characters anywhere in the input are refused with 422 on both backends', async () => {
    const cases: Array<[string, string, unknown]> = [
      ['POST', '/api/keys', { name: 'a\u0000b', user_id: userId }],
      ['POST', '/api/keys', { name: 'ok', user_id: userId, models: ['m\u0000'] }],
      ['PATCH', `/api/keys/${keyId}`, { name: '\u0000' }],
      ['POST', '/api/users', { username: 'nul\u0000user', password: 'password-123' }],
      ['POST', '/api/users', { username: 'nuluser', password: 'pass\u0000word-123' }],
      ['POST', '/api/auth/login', { username: 'a\u0000', password: 'password-123' }],
      ['POST', '/api/channels', { name: 'c\u0000', type: 'mock', models: ['m1'] }],
      ['PUT', '/api/prices/m1', { input: 1, output: 1, 'x\u0000': 1 }],
    ];
    for (const [method, p, body] of cases) {
      const res = await s.api(method, p, body);
      expect(res.status, `${method} ${p} ${JSON.stringify(body)}`).toBe(422);
      expect(res.body.error.code).toBe('validation_error');
      expect(res.body.error.message).toMatch(/NUL/);
    }
    for (const p of [
      '/api/users?q=%00',
      '/api/keys?q=a%00',
      '/api/logs?model=%00',
      '/api/prices/m%00',
      '/api/usage?model=%00',
    ]) {
      const res = await send(
        p.startsWith('/api/prices') ? 'PUT' : 'GET',
        p,
        p.startsWith('/api/prices') ? '{"input":1,"output":1}' : undefined,
      );
      expect(res.status, p).toBe(422);
    }
    expect((await s.api('GET', `/api/keys/${keyId}`)).body.name).not.toContain('\u0000');
  });

  it('URLs the router cannot take answer in the error shape with x-request-id', async () => {
    for (const p of ['/api/keys/%E0%A4%A', `/api/keys/${'1'.repeat(300)}`, `/v1/${'a'.repeat(300)}`]) {
      const res = await send('GET', p);
      expect(res.status, p).toBeGreaterThanOrEqual(400);
      expect(res.status, p).toBeLessThan(500);
      expect(res.body.error.code, p).toBe(res.status === 404 ? 'not_found' : 'invalid_request');
      expect(res.headers.get('x-request-id'), p).toMatch(/^req_/);
    }
  });

  it('allowed_ips: bad CIDRs are refused with 422 naming the rule', async () => {
    for (const rule of [
      '10.0.0.0/33',
      '::1/129',
      '300.0.0.1',
      'abc',
      '10.0.0.0/',
      '',
      '010.0.0.1',
      '1.2.3',
      '10.0.0.0/8/8',
      'x'.repeat(65),
    ]) {
      for (const [method, p] of [
        ['POST', '/api/keys'],
        ['PATCH', `/api/keys/${keyId}`],
      ] as const) {
        const res = await s.api(method, p, {
          name: 'cidr',
          user_id: method === 'POST' ? userId : undefined,
          allowed_ips: ['127.0.0.1', rule],
        });
        expect(res.status, `${method} ${rule}`).toBe(422);
        expect(res.body.error.code).toBe('validation_error');
        expect(res.body.error.param).toBe('allowed_ips.1');
      }
    }
    expect((await s.api('GET', `/api/keys/${keyId}`)).body.allowed_ips ?? []).not.toContain('010.0.0.1');
  });

  it('relay routes with a valid key refuse malformed bodies with 4xx, never 5xx', async () => {
    const { secret } = await createKey(s, userId);
    const bodies = [
      '{not json',
      '[]',
      '"x"',
      '{}',
      '{"model":123}',
      '{"model":"m1","messages":"x","prompt":1,"input":1}',
      '\u0000',
      '',
    ];
    for (const path of ['/v1/chat/completions', '/v1/completions', '/v1/embeddings']) {
      for (const body of bodies) {
        const res = await fetch(s.url + path, {
          method: 'POST',
          headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
          body,
        });
        const json = await res.json().catch(() => null);
        expect(res.status, `${path} ${body} → ${JSON.stringify(json)}`).toBeLessThan(500);
        expect(res.status).toBeGreaterThanOrEqual(400);
      }
    }
    // A key-shaped header of absurd size is refused, not crashed on.
    const long = await relay(s, 'sk-' + 'a'.repeat(8000));
    expect(long.status).toBe(401);
  });
});

describe('API documentation', () => {
  const s = suiteServer({});

  it('/api/openapi.json is a valid OpenAPI document listing every contract route', async () => {
    const res = await fetch(s.url + '/api/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const doc = (await res.json()) as {
      openapi: string;
      info: { title: string };
      paths: Record<string, Record<string, { responses?: unknown; summary?: string }>>;
    };
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.title).toBeTruthy();
    const expected: Record<string, string[]> = {
      '/api/auth/login': ['post'],
      '/api/auth/logout': ['post'],
      '/api/users': ['get', 'post'],
      '/api/users/{id}': ['delete', 'get', 'patch'],
      '/api/users/{id}/topup': ['post'],
      '/api/keys': ['get', 'post'],
      '/api/keys/{id}': ['delete', 'get', 'patch'],
      '/api/keys/{id}/rotate': ['post'],
      '/api/channels': ['get', 'post'],
      '/api/channels/{id}': ['delete', 'get', 'patch'],
      '/api/prices': ['get'],
      '/api/groups/{name}': ['put'],
      '/api/logs': ['get'],
      '/api/usage': ['get'],
      '/api/audit': ['get'],
      '/api/events': ['get'],
    };
    for (const [p, methods] of Object.entries(expected)) {
      expect(doc.paths[p], p).toBeDefined();
      for (const m of methods) expect(doc.paths[p]![m], `${m} ${p}`).toBeDefined();
    }
    // Model names may hold "/": the price routes take the rest of the path, documented as {model}.
    expect(Object.keys(doc.paths['/api/prices/{model}']!)).toEqual(expect.arrayContaining(['put', 'delete']));
    expect(Object.keys(doc.paths).filter((p) => p.includes('*'))).toEqual([]);
    expect(Object.keys(doc.paths).filter((p) => !p.startsWith('/api/') && !p.startsWith('/v1/'))).toEqual([]);
    // Request bodies are described (generated from the same zod schemas that validate).
    const createKey = doc.paths['/api/keys']!.post as unknown as {
      requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown> } }> };
    };
    const props = Object.keys(createKey.requestBody!.content['application/json']!.schema.properties);
    expect(props).toEqual(
      expect.arrayContaining(['name', 'user_id', 'models', 'allowed_ips', 'quota', 'expires_at', 'group']),
    );
    for (const [p, ops] of Object.entries(doc.paths))
      for (const [m, op] of Object.entries(ops)) expect(op.responses, `${m} ${p}`).toBeDefined();
  });

  it('/api/docs serves the Swagger UI', async () => {
    const res = await fetch(s.url + '/api/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(await res.text()).toMatch(/swagger/i);
  });
});
