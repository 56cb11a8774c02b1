// Smaller hardening found while auditing accounting (issue 11): Node's own 431 answer in the
// contract's shape with x-request-id; a CSP on /api/docs; one's own password changes only with
// the current one; the channel test route never shows the credential, however often it occurs.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { createUser, expectApiError, session } from './util.js';
import { login } from '../helpers/server.js';

/** Sends raw bytes and answers the whole raw response (the server closes the connection). */
function rawHttp(url: string, request: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname, () => sock.write(request));
    let out = '';
    sock.on('data', (d) => (out += d));
    sock.on('end', () => resolve(out));
    sock.on('close', () => resolve(out));
    sock.on('error', (e) => (out ? resolve(out) : reject(e)));
  });
}

describe('hardening', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(() => s?.close());

  it('answers with secrets (new keys, tokens, the CSRF token, ephemeral keys) are never cached', async () => {
    const { user, username, password } = await createUser(s);
    const made = await s.api('POST', '/api/keys', { name: 'cached?', user_id: user.id });
    const signedIn = await login(s, username, password);
    const answers = [
      made,
      await s.api('POST', '/api/tokens', { name: 'ci', scopes: ['keys:read'] }),
      await s.api('GET', '/api/auth/session', undefined, { cookie: signedIn.cookie }),
      await s.api('GET', '/api/users'),
    ];
    for (const [i, r] of answers.entries()) {
      expect(r.status, String(i)).toBeLessThan(300);
      expect(r.headers.get('cache-control'), String(i)).toBe('no-store');
      expect(r.headers.get('x-content-type-options'), String(i)).toBe('nosniff');
    }
    const minted = await fetch(`${s.url}/v1/keys/ephemeral`, {
      method: 'POST',
      headers: { authorization: `Bearer ${made.body.key}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(minted.status).toBe(201);
    expect(minted.headers.get('cache-control')).toBe('no-store');
  });

  it('headers over the size limit get 431 in the error shape, with an x-request-id', async () => {
    for (const p of ['/v1/chat/completions', '/api/users']) {
      const res = await rawHttp(
        s.url,
        `GET ${p} HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`,
      );
      const [head, body] = res.split('\r\n\r\n');
      expect(head!.split('\r\n')[0]).toBe('HTTP/1.1 431 Request Header Fields Too Large');
      expect(head).toMatch(/\r\nx-request-id: req_[0-9a-z]{12,}/i);
      expect(head).toMatch(/\r\ncontent-type: application\/json/i);
      const json = JSON.parse(body!);
      expect(json.error).toMatchObject({
        code: 'headers_too_large',
        type: 'invalid_request_error',
        param: null,
      });
      expect(typeof json.error.message).toBe('string');
    }
    // Malformed HTTP: 400 in the same shape.
    const bad = await rawHttp(s.url, 'NOT HTTP\r\n\r\n');
    expect(bad.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    expect(JSON.parse(bad.split('\r\n\r\n')[1]!).error.code).toBe('invalid_request');
  });

  it('/api/docs is served with a content security policy', async () => {
    for (const p of ['/api/docs', '/api/docs/static/index.html']) {
      const res = await fetch(s.url + p);
      expect(res.status, p).toBe(200);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp, p).toContain("default-src 'self'");
      expect(csp).toContain("object-src 'none'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain("connect-src 'self'");
      expect(csp).not.toContain('upgrade-insecure-requests');
      expect(csp).not.toMatch(/script-src[^;]*'unsafe-inline'/);
      await res.arrayBuffer();
    }
  });

  it('changing one’s own password needs the current one; an admin resetting another’s does not', async () => {
    const u = await createUser(s);
    const me = await session(s, u.username, u.password);
    expectApiError(
      await me.call('PATCH', `/api/users/${u.user.id}`, { password: 'stolen-session-pw' }),
      422,
      'validation_error',
    );
    expectApiError(
      await me.call('PATCH', `/api/users/${u.user.id}`, {
        password: 'stolen-session-pw',
        current_password: 'not-it',
      }),
      403,
      'forbidden',
    );
    expect((await login(s, u.username, u.password)).status).toBe(200);
    const ok = await me.call('PATCH', `/api/users/${u.user.id}`, {
      password: 'my-new-password',
      current_password: u.password,
    });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect((await login(s, u.username, 'my-new-password')).status).toBe(200);
    // The master key (an admin) resets it without knowing it.
    expect((await s.api('PATCH', `/api/users/${u.user.id}`, { password: 'reset-by-admin' })).status).toBe(
      200,
    );
    expect((await login(s, u.username, 'reset-by-admin')).status).toBe(200);
    // Guessing the current password through a session is throttled like sign-in.
    const me2 = await session(s, u.username, 'reset-by-admin');
    const codes: number[] = [];
    for (let i = 0; i < 6; i++)
      codes.push(
        (
          await me2.call('PATCH', `/api/users/${u.user.id}`, {
            password: 'another-one-1',
            current_password: `guess-${i}`,
          })
        ).status,
      );
    expect(codes.slice(0, 5)).toEqual([403, 403, 403, 403, 403]);
    expect(codes[5]).toBe(429);
  });

  it('the channel test route redacts every occurrence of the credential', async () => {
    const secret = 'chsecret8731x';
    const ch = await s.api('POST', '/api/channels', {
      name: 'leaky',
      type: 'openai',
      base_url: `http://${secret}.${secret}.invalid`,
      api_key: secret,
      models: ['leaky-model'],
    });
    expect(ch.status, JSON.stringify(ch.body)).toBe(201);
    const r = await s.api('POST', `/api/channels/${ch.body.id}/test`);
    expect(r.status).toBe(200);
    expect(r.body.ok).toBe(false);
    expect(r.body.error).toContain('[redacted]');
    expect(JSON.stringify(r.body)).not.toContain(secret);
  });

  it('a base_url with a user name or password in it is refused; one stored earlier is shown without them', async () => {
    const secret = 'urlpass5519q';
    const body = { name: 'userinfo', type: 'openai', api_key: 'k', models: ['userinfo-model'] };
    for (const base_url of [
      `https://bob:${secret}@api.example.com/v1`,
      `https://${secret}@api.example.com/v1`,
    ]) {
      const r = await s.api('POST', '/api/channels', { ...body, base_url });
      expectApiError(r, 422, 'validation_error');
      expect(r.body.error.param).toBe('base_url');
      expect(JSON.stringify(r.body)).not.toContain(secret);
    }
    const ch = await s.api('POST', '/api/channels', { ...body, base_url: 'https://api.example.com/v1' });
    expect(ch.status, JSON.stringify(ch.body)).toBe(201);
    const patched = await s.api('PATCH', `/api/channels/${ch.body.id}`, {
      base_url: `https://bob:${secret}@api.example.com/v1`,
    });
    expectApiError(patched, 422, 'validation_error');
    // A row written before the API refused them (or by an older import).
    await s.services.storage.db
      .updateTable('channels')
      .set({ base_url: `https://bob:${secret}@api.example.com/v1` })
      .where('id', '=', ch.body.id)
      .execute();
    for (const r of [
      await s.api('GET', `/api/channels/${ch.body.id}`),
      await s.api('GET', '/api/channels'),
    ]) {
      expect(r.status).toBe(200);
      expect(JSON.stringify(r.body)).not.toContain(secret);
      expect(JSON.stringify(r.body)).toContain('"base_url":"https://api.example.com/v1"');
    }
  });
});
