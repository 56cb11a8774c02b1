// Browser origin guard (contract §8): a relay request carrying `Origin` is refused with 403
// browser_origin_not_allowed unless its key lists the origin (exact, `*.` wildcard, port and
// scheme significant); listed origins get CORS headers; preflights on relay routes answer 204
// for anyone (they carry no key). Key fields: allowed_origins validated and normalised.
import Anthropic from '@anthropic-ai/sdk';
import { describe, expect, it } from 'vitest';
import { backends, type TestServer, userWithKey } from '../helpers/server.js';
import type { AuditPage, LogPage } from '../../web/src/api-types.js';
import { offlineSuite } from '../helpers/relay-suite.js';
import { expectApiError, expectRelayError, raw, relay } from '../foundation/util.js';
import { expectOriginRefused, relayFrom, uniq } from './relay-helpers.js';

describe.each(backends())('browser origins [%s]', (backend) => {
  let s: TestServer;
  const model = uniq('origin-model');
  offlineSuite({ backend }, { [model]: { input: 1, output: 1 } }, (started) => {
    s = started;
  });

  it('allowed_origins is validated, normalised, shown and audited', async () => {
    const { key } = await userWithKey(s, {
      key: { allowed_origins: ['HTTPS://App.Example.com/', 'https://*.corp.test', 'http://localhost:5173'] },
    });
    expect(key.allowed_origins).toEqual([
      'https://app.example.com',
      'https://*.corp.test',
      'http://localhost:5173',
    ]);
    const plain = await userWithKey(s);
    expect(plain.key.allowed_origins).toEqual([]);

    for (const bad of ['example.com', 'https://a.com/path', 'https://a.*.com', '*', 'ftp//x']) {
      const r = await s.api('PATCH', `/api/keys/${key.id}`, { allowed_origins: [bad] });
      expectApiError(r, 400, 'invalid_request');
      expect(r.body.error.param).toBe('allowed_origins');
    }
    const r = await s.api('PATCH', `/api/keys/${key.id}`, { allowed_origins: ['https://b.example.com:443'] });
    expect(r.status).toBe(200);
    expect(r.body.allowed_origins).toEqual(['https://b.example.com']);
    const audit = await s.api<AuditPage>('GET', `/api/audit?key_id=${key.id}`);
    const update = audit.body.data.find((a) => a.action === 'key.update');
    expect(update!.changes.allowed_origins).toEqual({
      from: ['https://app.example.com', 'https://*.corp.test', 'http://localhost:5173'],
      to: ['https://b.example.com'],
    });
    expect(
      (await s.api('PATCH', `/api/keys/${key.id}`, { allowed_origins: null })).body.allowed_origins,
    ).toEqual([]);
  });

  it('a key without allowed origins refuses every browser origin, and server calls still work', async () => {
    const { secret } = await userWithKey(s);
    expect((await relay(s, secret)).status).toBe(200);
    const r = await expectOriginRefused(s, secret, 'https://app.example.com');
    expect(r.headers.get('x-should-retry')).toBe('false');
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
    await expectOriginRefused(s, secret, 'null');
  });

  it('exact, wildcard, port and scheme: only listed origins pass, with CORS headers', async () => {
    const { secret, key } = await userWithKey(s, {
      key: { allowed_origins: ['https://app.example.com', 'https://*.corp.test', 'http://localhost:5173'] },
    });
    const pass = [
      'https://app.example.com',
      'https://app.example.com:443',
      'https://x.corp.test',
      'https://deep.x.corp.test',
      'http://localhost:5173',
    ];
    const refuse = [
      'http://app.example.com', // scheme
      'https://app.example.com:8443', // port
      'https://evil.example.com',
      'https://corp.test', // a wildcard never covers the bare domain
      'https://x.corp.test:444',
      'https://corp.test.evil.com',
      'http://localhost:5174',
      'https://localhost:5173',
    ];
    for (const origin of pass) {
      const r = await relayFrom(s, secret, origin);
      expect(r.status, origin).toBe(200);
      expect(r.body.id).toBe(key.id);
      expect(r.headers.get('access-control-allow-origin')).toBe(origin);
      expect(r.headers.get('vary')?.toLowerCase()).toContain('origin');
      const exposed = r.headers.get('access-control-expose-headers') ?? '';
      for (const h of ['x-request-id', 'x-ratelimit-remaining-requests', 'retry-after'])
        expect(exposed).toContain(h);
    }
    for (const origin of refuse) {
      const r = await expectOriginRefused(s, secret, origin);
      expect(r.headers.get('access-control-allow-origin'), origin).toBeNull();
    }
    // A chat completion from a listed origin, plain and streamed, carries the headers too.
    for (const stream of [false, true]) {
      const r = await fetch(`${s.url}/v1/chat/completions`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${secret}`,
          'content-type': 'application/json',
          origin: 'https://x.corp.test',
        },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, stream }),
      });
      expect(r.status).toBe(200);
      expect(r.headers.get('access-control-allow-origin')).toBe('https://x.corp.test');
      await r.text();
    }
    // Refused calls are logged like any other refusal of a known key.
    await s.services.flush();
    const logs = await s.api<LogPage>('GET', `/api/logs?key_id=${key.id}&status=error`);
    expect(logs.body.data.some((l) => l.error_code === 'browser_origin_not_allowed')).toBe(true);
  });

  it('a listed origin may read refusals of its key (an expired key says so)', async () => {
    const { secret, key } = await userWithKey(s, { key: { allowed_origins: ['https://app.example.com'] } });
    await s.api('PATCH', `/api/keys/${key.id}`, { status: 'disabled' });
    const r = await relayFrom(s, secret, 'https://app.example.com');
    expectRelayError(r, 401, 'key_disabled');
    expect(r.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
  });

  it('preflights on relay routes answer 204 for any origin, with no key', async () => {
    for (const path of [
      '/v1/chat/completions',
      '/v1/messages?beta=true',
      `/v1beta/models/${model}:generateContent`,
      '/v1/key',
    ]) {
      const r = await raw(s, 'OPTIONS', path, {
        headers: {
          origin: 'https://anywhere.example',
          'access-control-request-method': 'POST',
          'access-control-request-headers':
            'authorization, content-type, x-stainless-os, anthropic-dangerous-direct-browser-access, x-custom-thing',
        },
      });
      expect(r.status, path).toBe(204);
      expect(r.headers.get('access-control-allow-origin')).toBe('https://anywhere.example');
      expect(r.headers.get('access-control-allow-methods')).toContain('POST');
      const allowed = r.headers.get('access-control-allow-headers') ?? '';
      for (const h of [
        'authorization',
        'x-api-key',
        'content-type',
        'anthropic-version',
        'x-goog-api-key',
        'x-stainless-os',
        'anthropic-dangerous-direct-browser-access',
        'x-custom-thing',
      ])
        expect(allowed, h).toContain(h);
      expect(Number(r.headers.get('access-control-max-age'))).toBeGreaterThan(0);
      expect(r.headers.get('x-request-id')).toBeTruthy();
    }
    // Nothing is logged for a preflight (it presents no key) and the management API has none.
    const api = await raw(s, 'OPTIONS', '/api/keys', { headers: { origin: 'https://anywhere.example' } });
    expect(api.headers.get('access-control-allow-origin')).toBeNull();
  });

  it("the Anthropic SDK's browser flow works from a listed origin", async () => {
    const { secret } = await userWithKey(s, { key: { allowed_origins: ['https://chat.example.com'] } });
    // What a browser does: preflight first, then the real call with the page's Origin.
    const pre = await raw(s, 'OPTIONS', '/v1/messages', {
      headers: {
        origin: 'https://chat.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers':
          'anthropic-dangerous-direct-browser-access,anthropic-version,content-type,x-api-key,x-stainless-arch,x-stainless-lang,x-stainless-os,x-stainless-package-version,x-stainless-retry-count,x-stainless-runtime,x-stainless-runtime-version,x-stainless-timeout',
      },
    });
    expect(pre.status).toBe(204);
    /** A message sent with the Anthropic SDK as a page on `origin` uses it. */
    const askFrom = (origin: string, fetchFn?: typeof fetch) =>
      new Anthropic({
        baseURL: s.url,
        apiKey: secret,
        dangerouslyAllowBrowser: true,
        maxRetries: 0,
        defaultHeaders: { origin },
        ...(fetchFn ? { fetch: fetchFn } : {}),
      }).messages.create({ model, max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] });
    let seenOrigin: string | null = null;
    const msg = await askFrom('https://chat.example.com', async (url, init) => {
      const res = await fetch(url, init);
      seenOrigin = res.headers.get('access-control-allow-origin');
      return res;
    });
    expect(msg.content.length).toBeGreaterThan(0);
    expect(seenOrigin).toBe('https://chat.example.com');
    const err = await askFrom('https://evil.example.com').catch((e) => e);
    expect(err).toBeInstanceOf(Anthropic.PermissionDeniedError);
    expect(err.status).toBe(403);
    expect(err.error?.error?.code ?? err.error?.error?.type).toBeTruthy();
  });
});
