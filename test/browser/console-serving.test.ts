// How the gateway serves the built console: caching, security headers, SPA fallback, and
// that /api and /v1 never fall back to HTML. Plain HTTP, no browser needed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_SECTIONS, registerConsole } from '../../src/console/index.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { ensureWebBuilt, WEB_DIST } from './helpers.js';

describe('console serving', () => {
  let s: TestServer;
  beforeAll(async () => {
    await ensureWebBuilt();
    s = await startTestServer();
  }, 180_000);
  afterAll(async () => {
    await s?.close();
  });

  it('every page the console links to survives a reload (its section is served as index.html)', () => {
    const app = fs.readFileSync(path.join(import.meta.dirname, '../../web/src/App.tsx'), 'utf8');
    const linked = [...app.matchAll(/href: '\/([^'/]+)'/g)].map((m) => m[1]!);
    expect(linked.length).toBeGreaterThan(5);
    for (const section of linked) expect(CONSOLE_SECTIONS.has(section), section).toBe(true);
  });

  it('serves index.html at / and at client routes, uncached, with security headers', async () => {
    for (const p of ['/', '/keys', '/keys/123?x=1', '/logs', '/usage', '/users']) {
      const res = await fetch(s.url + p, {
        headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' },
      });
      expect(res.status, p).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('content-security-policy')).toBe(
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
      );
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      const html = await res.text();
      expect(html).toContain('<div id="root"></div>');
      // no inline script: the CSP allows only same-origin scripts
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    }
  });

  it('serves hashed assets as immutable for a year', async () => {
    const html = await (await fetch(s.url + '/')).text();
    const src = /<script[^>]+src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(src).toBeTruthy();
    const res = await fetch(s.url + src);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/javascript/);
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(0); // read it: an unread body holds the connection
    const css = /href="(\/assets\/[^"]+\.css)"/.exec(html)?.[1];
    const cssRes = await fetch(s.url + css);
    expect(cssRes.headers.get('content-type')).toMatch(/text\/css/);
    await cssRes.arrayBuffer();
    const missing = await fetch(s.url + '/assets/nope-123.js');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/json/);
  });

  it('never answers /api or /v1 with the console', async () => {
    const api = await fetch(s.url + '/api/nope', { headers: { accept: 'text/html' } });
    expect(api.status).toBe(404);
    expect(api.headers.get('content-type')).toMatch(/json/);
    const v1 = await fetch(s.url + '/v1/nope', { headers: { accept: 'text/html' } });
    expect(v1.headers.get('content-type')).toMatch(/json/);
    const session = await fetch(s.url + '/api/auth/session', { headers: { accept: 'text/html' } });
    expect(session.status).toBe(401);
    // a non-HTML client asking for an unknown path gets the JSON 404, not a page
    const json = await fetch(s.url + '/keys', { headers: { accept: 'application/json' } });
    expect(json.status).toBe(404);
    expect((await fetch(s.url + '/favicon.svg')).headers.get('content-type')).toMatch(/svg/);
  });

  it('says how to build the console when it is not built', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-web-'));
    const app = Fastify();
    await registerConsole(app, { webDir: empty });
    const res = await app.inject({ url: '/keys', headers: { accept: 'text/html' } });
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.body).toContain('npm run build:web');
    expect(res.headers['content-security-policy']).toBeTruthy();
    // Clients' `HEAD /` probe still answers 200: the gateway serves without its console.
    expect((await app.inject({ method: 'HEAD', url: '/' })).statusCode).toBe(200);
    await app.close();
    fs.rmSync(empty, { recursive: true, force: true });
    expect(fs.existsSync(path.join(WEB_DIST, 'index.html'))).toBe(true);
  });
});
