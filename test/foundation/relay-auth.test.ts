// Relay authentication (contract §4, authentication part), end to end through GET /v1/key:
// every error code in OpenAI's shape with x-request-id, every header form, check order,
// IP allowlists (v4, v6, CIDR, mapped), X-Forwarded-For trust, expiry, model allowlists.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { generateKey } from '../../src/keys/format.js';
import { backends, type TestServer } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import { createKey, createUser, expectRelayError, relay, type Res, suiteUser } from './util.js';

type Loopback = '127.0.0.1' | '::1';

/** Allowlists (addresses, CIDRs, v6 and IPv4-mapped rules) and the loopback clients each admits. */
const LOOPBACK_RULES: Array<[rules: string[], admits: Loopback[]]> = [
  [['127.0.0.1'], ['127.0.0.1']],
  [['127.0.0.0/8'], ['127.0.0.1']],
  [['0.0.0.0/0'], ['127.0.0.1']],
  [['10.0.0.0/8', '127.0.0.1/32'], ['127.0.0.1']],
  [['::ffff:127.0.0.1'], ['127.0.0.1']],
  [['::ffff:127.0.0.0/104'], ['127.0.0.1']],
  [['::1'], ['::1']],
  [['::1/128'], ['::1']],
  [['0:0:0:0:0:0:0:1'], ['::1']],
  [['::/0'], ['::1']],
  [['127.0.0.2'], []],
  [['10.0.0.0/8'], []],
  [['::2'], []],
  [['2001:db8::/32'], []],
  [[], []],
];

/** A second listener on ::1 feeding the same app, so requests really arrive from ::1. */
async function listenOnV6Loopback(s: TestServer): Promise<{ url: string; close(): Promise<void> } | null> {
  const srv = http.createServer((req, res) => s.app.server.emit('request', req, res));
  try {
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(0, '::1', () => resolve());
    });
  } catch {
    return null;
  }
  const port = (srv.address() as AddressInfo).port;
  return {
    url: `http://[::1]:${port}`,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

/** GET /v1/key through Fastify's injector with a chosen socket address (e.g. an IPv4-mapped one). */
async function injectFrom(
  s: TestServer,
  remoteAddress: string,
  secret: string,
  headers: Record<string, string> = {},
): Promise<Res> {
  const r = await s.app.inject({
    method: 'GET',
    url: '/v1/key',
    remoteAddress,
    headers: { authorization: `Bearer ${secret}`, ...headers },
  });
  return { status: r.statusCode, body: r.json(), headers: new Headers(r.headers as Record<string, string>) };
}

/** Headers claiming the request was forwarded for `ip`. */
const forwardedFor = (ip: string) => ({ headers: { 'x-forwarded-for': ip } });

/** Renames key `id` with the master key, claiming to be forwarded for `ip`; returns its audit row. */
async function renameAuditedFrom(s: TestServer, id: number, ip: string) {
  await s.api(
    'PATCH',
    `/api/keys/${id}`,
    { name: 'renamed' },
    { authorization: `Bearer ${s.masterKey}`, ...forwardedFor(ip).headers },
  );
  return (await s.api('GET', `/api/audit?key_id=${id}&limit=1`)).body.data[0];
}

describe.each(backends())('relay authentication [%s]', (backend) => {
  const s = suiteServer({ backend });
  const user = suiteUser(s, { balance: 5 });

  it('a valid key sees its own object, never its secret, with x-request-id', async () => {
    const { secret, id } = await createKey(s, user.id, { name: 'mine', quota: 2 });
    const r = await relay(s, secret);
    expect(r.status).toBe(200);
    expect(r.headers.get('x-request-id')).toMatch(/^req_[0-9a-z]{12,}$/);
    expect(r.body).toMatchObject({
      id,
      name: 'mine',
      user_id: user.id,
      status: 'active',
      quota: 2,
      used: 0,
      remaining: 2,
      expires_at: null,
      models: null,
    });
    expect(JSON.stringify(r.body)).not.toContain(secret);
    expect(JSON.stringify(r.body)).not.toContain(secret.slice(7, -4));
  });

  it('accepts every header form', async () => {
    const { secret, id } = await createKey(s, user.id);
    for (const how of ['bearer', 'x-api-key', 'api-key', 'x-goog-api-key'] as const) {
      const r = await relay(s, secret, { how });
      expect(r.status, how).toBe(200);
      expect(r.body.id).toBe(id);
    }
    expect((await relay(s, undefined, { headers: { authorization: `bearer ${secret}` } })).body.id).toBe(id);
    expect((await relay(s, undefined, { headers: { authorization: `Bearer   ${secret}  ` } })).body.id).toBe(
      id,
    );
  });

  it('missing_api_key: no key at all, on every relay route', async () => {
    expectRelayError(await relay(s, undefined), 401, 'missing_api_key');
    expectRelayError(await relay(s, '', { how: 'x-api-key' }), 401, 'missing_api_key');
    expectRelayError(await relay(s, undefined, { path: '/v1/models' }), 401, 'missing_api_key');
    for (const path of ['/v1/chat/completions', '/v1/completions', '/v1/embeddings']) {
      expectRelayError(
        await relay(s, undefined, {
          path,
          method: 'POST',
          body: { model: 'gpt-4o-mini', messages: [], input: 'x', prompt: 'x' },
        }),
        401,
        'missing_api_key',
      );
    }
  });

  it('invalid_api_key: malformed, bad checksum, unknown, deleted, rotated out', async () => {
    const { secret, id } = await createKey(s, user.id);
    const flipped = secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A');
    const unknown = generateKey();
    for (const bad of [
      'sk-123',
      'not-a-key',
      secret + 'x',
      secret.slice(0, -1),
      flipped,
      secret.toUpperCase(),
      'Bearer',
      unknown,
      s.masterKey,
    ]) {
      expectRelayError(await relay(s, bad), 401, 'invalid_api_key');
    }
    expect((await relay(s, secret)).status).toBe(200);
    const rotated = (await s.api('POST', `/api/keys/${id}/rotate`, {})).body.key as string;
    expectRelayError(await relay(s, secret), 401, 'invalid_api_key');
    await s.api('DELETE', `/api/keys/${id}`);
    expectRelayError(await relay(s, rotated), 401, 'invalid_api_key');
  });

  it('invalid_api_key also for every header form', async () => {
    for (const how of ['bearer', 'x-api-key', 'api-key', 'x-goog-api-key'] as const) {
      expectRelayError(await relay(s, generateKey(), { how }), 401, 'invalid_api_key');
    }
  });

  it('key_disabled, key_expired, ip_not_allowed', async () => {
    const disabled = await createKey(s, user.id);
    await s.api('PATCH', `/api/keys/${disabled.id}`, { status: 'disabled' });
    expectRelayError(await relay(s, disabled.secret), 401, 'key_disabled');

    const expired = await createKey(s, user.id, { expires_at: new Date(Date.now() - 1000).toISOString() });
    expectRelayError(await relay(s, expired.secret), 401, 'key_expired');

    const fenced = await createKey(s, user.id, { allowed_ips: ['10.0.0.0/8'] });
    const r = await relay(s, fenced.secret);
    expectRelayError(r, 403, 'ip_not_allowed');
    expect(r.body.error.type).toBe('permission_error');
  });

  it('checks run in the contract order', async () => {
    // disabled beats expired beats IP
    const k = await createKey(s, user.id, {
      expires_at: new Date(Date.now() - 1000).toISOString(),
      allowed_ips: ['10.0.0.1'],
    });
    expectRelayError(await relay(s, k.secret), 401, 'key_expired');
    await s.api('PATCH', `/api/keys/${k.id}`, { status: 'disabled' });
    expectRelayError(await relay(s, k.secret), 401, 'key_disabled');
    // the key is checked before the body is read, and before the model
    const fenced = await createKey(s, user.id, { allowed_ips: ['10.0.0.1'], models: ['only-this'] });
    const post = (secret: string | undefined, body: string) =>
      fetch(s.url + '/v1/chat/completions', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(secret ? { authorization: `Bearer ${secret}` } : {}),
        },
        body,
      }).then(async (res) => ({ status: res.status, body: await res.json(), headers: res.headers }));
    expectRelayError(await post(undefined, '{not json'), 401, 'missing_api_key');
    expectRelayError(await post(generateKey(), '{not json'), 401, 'invalid_api_key');
    expectRelayError(
      await post(fenced.secret, JSON.stringify({ model: 'other', messages: [] })),
      403,
      'ip_not_allowed',
    );
  });

  it('refusals of a known key are logged with their error code and request id; unknown keys are not', async () => {
    const k = await createKey(s, user.id);
    await s.api('PATCH', `/api/keys/${k.id}`, { status: 'disabled' });
    const r = await relay(s, k.secret);
    expectRelayError(r, 401, 'key_disabled');
    await relay(s, generateKey());
    const logs = await s.api('GET', `/api/logs?key_id=${k.id}`);
    expect(logs.body.data.length).toBe(1);
    expect(logs.body.data[0]).toMatchObject({
      request_id: r.headers.get('x-request-id'),
      status: 401,
      error_code: 'key_disabled',
      cost: 0,
      key_id: k.id,
      user_id: user.id,
    });
  });

  it('expiry: a key works until expires_at, then answers key_expired', async () => {
    const expiresAt = s.clock.now() + 60_000;
    const k = await createKey(s, user.id, { expires_at: new Date(expiresAt).toISOString() });
    expect((await relay(s, k.secret)).status).toBe(200);
    expect((await s.api('GET', `/api/keys/${k.id}`)).body.status).toBe('active');
    s.clock.advance(expiresAt - s.clock.now());
    expectRelayError(await relay(s, k.secret), 401, 'key_expired');
    expect((await s.api('GET', `/api/keys/${k.id}`)).body.status).toBe('expired');
    // Extending it brings it back.
    const extended = { expires_at: new Date(s.clock.now() + 3_600_000).toISOString() };
    expect((await s.api('PATCH', `/api/keys/${k.id}`, extended)).status).toBe(200);
    expect((await relay(s, k.secret)).status).toBe(200);
  });

  /** For every allowlist in LOOPBACK_RULES: a key allowing it, shown through `get` to `client`. */
  async function expectAllowlist(client: Loopback, get: (secret: string) => Promise<Res>) {
    for (const [rules, admits] of LOOPBACK_RULES) {
      const k = await createKey(s, user.id, { allowed_ips: rules });
      const r = await get(k.secret);
      expect(r.status, JSON.stringify(rules)).toBe(admits.includes(client) ? 200 : 403);
      expect(r.headers.get('x-request-id')).toMatch(/^req_/);
      if (r.status === 403) expectRelayError(r, 403, 'ip_not_allowed');
    }
  }

  it('IP allowlist from 127.0.0.1: addresses, CIDRs, v6 rules, mapped rules', async () => {
    await expectAllowlist('127.0.0.1', (secret) => relay(s, secret));
  });

  it('IP allowlist from ::1 (a real IPv6 loopback connection)', async (ctx) => {
    const v6 = await listenOnV6Loopback(s);
    if (!v6) {
      ctx.skip();
      return;
    }
    const getKey = async (secret: string): Promise<Res> => {
      const res = await fetch(v6.url + '/v1/key', { headers: { authorization: `Bearer ${secret}` } });
      return { status: res.status, body: await res.json(), headers: res.headers };
    };
    try {
      await expectAllowlist('::1', getKey);
      const k = await createKey(s, user.id, { allowed_ips: ['::1'] });
      await getKey(k.secret);
      expect((await s.api('GET', `/api/keys/${k.id}`)).body.last_used_ip).toBe('::1');
    } finally {
      await v6.close();
    }
  });

  it('IP allowlist for an IPv4-mapped IPv6 peer (dual-stack socket)', async () => {
    const v4rule = await createKey(s, user.id, { allowed_ips: ['10.0.0.0/8'] });
    expect((await injectFrom(s, '::ffff:10.1.2.3', v4rule.secret)).status).toBe(200);
    expectRelayError(await injectFrom(s, '::ffff:11.1.2.3', v4rule.secret), 403, 'ip_not_allowed');
    const mappedRule = await createKey(s, user.id, { allowed_ips: ['::ffff:10.1.2.3'] });
    expect((await injectFrom(s, '10.1.2.3', mappedRule.secret)).status).toBe(200);
    expect((await injectFrom(s, '::ffff:10.1.2.3', mappedRule.secret)).status).toBe(200);
    expectRelayError(await injectFrom(s, '10.1.2.4', mappedRule.secret), 403, 'ip_not_allowed');
    const v6 = await createKey(s, user.id, { allowed_ips: ['2001:db8::/32'] });
    expect((await injectFrom(s, '2001:db8::9', v6.secret)).status).toBe(200);
    expectRelayError(await injectFrom(s, '2001:db9::9', v6.secret), 403, 'ip_not_allowed');
    // Recorded in its plain IPv4 form.
    expect((await s.api('GET', `/api/keys/${v4rule.id}`)).body.last_used_ip).toBe('10.1.2.3');
  });

  it('a spoofed X-Forwarded-For is ignored when no proxy is trusted', async () => {
    const outside = await createKey(s, user.id, { allowed_ips: ['203.0.113.0/24'] });
    const spoofs: Array<Record<string, string>> = [
      { 'x-forwarded-for': '203.0.113.7' },
      { 'x-forwarded-for': '203.0.113.7, 127.0.0.1' },
      { 'x-real-ip': '203.0.113.7' },
      { forwarded: 'for=203.0.113.7' },
    ];
    for (const headers of spoofs) {
      expectRelayError(await relay(s, outside.secret, { headers }), 403, 'ip_not_allowed');
    }
    const local = await createKey(s, user.id, { allowed_ips: ['127.0.0.1'] });
    expect((await relay(s, local.secret, forwardedFor('198.51.100.1'))).status).toBe(200);
    expect((await s.api('GET', `/api/keys/${local.id}`)).body.last_used_ip).toBe('127.0.0.1');
    // The management API's audit trail uses the same client address.
    expect(await renameAuditedFrom(s, local.id, '198.51.100.1')).toMatchObject({
      action: 'key.update',
      ip: '127.0.0.1',
    });
  });

  it('model allowlist: exact names and "*" prefixes', async () => {
    const ch = await s.api('POST', '/api/channels', {
      name: 'mock',
      type: 'mock',
      models: ['gpt-4o', 'gpt-4o-mini', 'gpt-3.5-turbo', 'text-embedding-3-small'],
    });
    expect(ch.status).toBe(201);
    // /v1/models lists only priced models.
    for (const m of ['gpt-4o', 'gpt-4o-mini', 'gpt-3.5-turbo', 'text-embedding-3-small'])
      expect((await s.api('PUT', `/api/prices/${m}`, { input: 1, output: 1 })).status).toBe(200);
    const chat = (secret: string, model: string) =>
      relay(s, secret, {
        path: '/v1/chat/completions',
        method: 'POST',
        body: { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 },
      });
    const listed = async (secret: string) =>
      ((await relay(s, secret, { path: '/v1/models' })).body.data as Array<{ id: string }>)
        .map((m) => m.id)
        .sort();

    const prefix = await createKey(s, user.id, { models: ['gpt-4o*'] });
    expectRelayError(await chat(prefix.secret, 'gpt-3.5-turbo'), 403, 'model_not_allowed');
    expectRelayError(await chat(prefix.secret, 'text-embedding-3-small'), 403, 'model_not_allowed');
    for (const m of ['gpt-4o', 'gpt-4o-mini']) {
      const r = await chat(prefix.secret, m);
      expect(r.body?.error?.code).not.toBe('model_not_allowed');
    }
    // Allowed by the key but not served to its group: model_not_found comes after model_not_allowed.
    expectRelayError(await chat(prefix.secret, 'gpt-4o-unknown'), 404, 'model_not_found');
    expect(await listed(prefix.secret)).toEqual(['gpt-4o', 'gpt-4o-mini']);

    const exact = await createKey(s, user.id, { models: ['gpt-4o'] });
    expectRelayError(await chat(exact.secret, 'gpt-4o-mini'), 403, 'model_not_allowed');
    expect(await listed(exact.secret)).toEqual(['gpt-4o']);

    const star = await createKey(s, user.id, { models: ['*'] });
    expect(await listed(star.secret)).toEqual([
      'gpt-3.5-turbo',
      'gpt-4o',
      'gpt-4o-mini',
      'text-embedding-3-small',
    ]);
    const all = await createKey(s, user.id);
    expect(await listed(all.secret)).toEqual([
      'gpt-3.5-turbo',
      'gpt-4o',
      'gpt-4o-mini',
      'text-embedding-3-small',
    ]);
    expectRelayError(await chat(all.secret, 'no-such-model'), 404, 'model_not_found');

    // Changing the list applies at once.
    await s.api('PATCH', `/api/keys/${exact.id}`, { models: ['gpt-3.5*'] });
    expect(await listed(exact.secret)).toEqual(['gpt-3.5-turbo']);
    expectRelayError(await chat(exact.secret, 'gpt-4o'), 403, 'model_not_allowed');
  });
});

describe.each(backends())('trusted proxies [%s]', (backend) => {
  const s = suiteServer({ backend, env: { MOLE_TRUSTED_PROXIES: '127.0.0.1/32, 10.0.0.0/8' } });
  const user = suiteUser(s);

  it('X-Forwarded-For from a trusted peer is honoured (rightmost untrusted hop)', async () => {
    const k = await createKey(s, user.id, { allowed_ips: ['203.0.113.0/24'] });
    expectRelayError(await relay(s, k.secret), 403, 'ip_not_allowed');
    expect((await relay(s, k.secret, forwardedFor('203.0.113.7'))).status).toBe(200);
    expect((await s.api('GET', `/api/keys/${k.id}`)).body.last_used_ip).toBe('203.0.113.7');
    // Trusted hops on the right are skipped; the client's own (spoofable) left entries are not believed.
    expect((await relay(s, k.secret, forwardedFor('203.0.113.8, 10.1.1.1'))).status).toBe(200);
    expectRelayError(
      await relay(s, k.secret, forwardedFor('203.0.113.9, 198.51.100.4')),
      403,
      'ip_not_allowed',
    );
    expectRelayError(await relay(s, k.secret, forwardedFor('198.51.100.4')), 403, 'ip_not_allowed');
    expect((await relay(s, k.secret, forwardedFor('::ffff:203.0.113.10'))).status).toBe(200);
    expect((await s.api('GET', `/api/keys/${k.id}`)).body.last_used_ip).toBe('203.0.113.10');
  });

  it('an IPv6 client behind the proxy matches v6 rules', async () => {
    const k = await createKey(s, user.id, { allowed_ips: ['2001:db8::/32'] });
    expect((await relay(s, k.secret, forwardedFor('2001:db8::42'))).status).toBe(200);
    expectRelayError(await relay(s, k.secret, forwardedFor('2001:db9::42')), 403, 'ip_not_allowed');
  });

  it('the audit trail records the forwarded client address', async () => {
    const k = await createKey(s, user.id);
    expect(await renameAuditedFrom(s, k.id, '198.51.100.23')).toMatchObject({
      action: 'key.update',
      ip: '198.51.100.23',
    });
  });
});

describe('trusted proxies that do not include the peer', () => {
  const s = suiteServer({ env: { MOLE_TRUSTED_PROXIES: '10.0.0.0/8' } });

  it('X-Forwarded-For from an untrusted peer is ignored', async () => {
    const { user } = await createUser(s);
    const k = await createKey(s, user.id, { allowed_ips: ['203.0.113.0/24'] });
    expectRelayError(await relay(s, k.secret, forwardedFor('203.0.113.7')), 403, 'ip_not_allowed');
    const local = await createKey(s, user.id, { allowed_ips: ['127.0.0.1'] });
    expect((await relay(s, local.secret, forwardedFor('203.0.113.7'))).status).toBe(200);
  });
});
