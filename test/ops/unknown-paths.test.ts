// Paths that are neither an API, a probe nor a console route never answer 200 with the
// console's HTML (a load balancer or scraper would be fooled): API clients get the JSON 404,
// a browser's page navigation the console's "Page not found" with status 404.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import Fastify from 'fastify';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_SECTIONS, registerConsole } from '../../src/console/index.js';
import { REPO_ROOT } from '../helpers/process.js';
import { userWithKey } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';

const UNKNOWN = [
  '/healthzz',
  '/healthz/x',
  '/readyz.json',
  '/metrics.txt',
  '/metrics/x',
  '/api/nope',
  '/v2/x',
  '/v1beta2/models',
  '/nope',
  '/wp-login.php',
  '/.env',
];
const HTML = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

describe('unknown paths on the real server', () => {
  const s = suiteServer({});

  it('answer a JSON 404 to API clients and probes, whatever they accept', async () => {
    for (const p of UNKNOWN) {
      for (const accept of [undefined, '*/*', 'application/json']) {
        const res = await fetch(s.url + p, accept ? { headers: { accept } } : {});
        const body = await res.text();
        expect(res.status, `${p} ${accept}`).toBe(404);
        expect(res.headers.get('content-type'), p).toMatch(/application\/json/);
        expect(JSON.parse(body).error.code).toBe('not_found');
      }
    }
  });

  it('a GET for an unknown relay path answers in its protocol’s error shape', async () => {
    for (const p of ['/v1/messages', '/v1/messages/count_tokens', '/v1/messages/nope']) {
      const res = await fetch(s.url + p);
      expect(res.status, p).toBe(404);
      expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    }
    const gemini = await fetch(`${s.url}/v1beta/files`);
    expect(gemini.status).toBe(404);
    expect(await gemini.json()).toMatchObject({ error: { code: 404, status: 'NOT_FOUND' } });
    // Under /v1, a Google credential says the client is Google's (@google/genai, apiVersion v1).
    const { secret } = await userWithKey(s);
    for (const [key, status, name] of [
      [secret, 404, 'NOT_FOUND'],
      ['sk-not-a-key', 401, 'UNAUTHENTICATED'],
    ] as const) {
      const v1 = await fetch(`${s.url}/v1/tunedModels/t:generateContent`, {
        method: 'POST',
        headers: { 'x-goog-api-key': key, 'content-type': 'application/json' },
        body: '{}',
      });
      expect(v1.status).toBe(status);
      expect(await v1.json()).toMatchObject({ error: { code: status, status: name } });
    }
  });

  it('a base URL one segment off gets a 404 that says how to fix it, in the SDK’s own shape', async () => {
    const { secret } = await userWithKey(s);
    const claude = new Anthropic({ baseURL: `${s.url}/v1`, apiKey: secret, maxRetries: 0 });
    const e1 = await claude.messages
      .create({ model: 'm', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(Anthropic.NotFoundError);
    expect((e1 as Error).message).toContain(
      "the path repeats /v1. An Anthropic or Google client adds it itself (its base URL is the gateway's origin)",
    );
    const openai = new OpenAI({ baseURL: s.url, apiKey: secret, maxRetries: 0 });
    const e2 = await openai.chat.completions
      .create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(OpenAI.NotFoundError);
    expect((e2 as Error).message).toContain('the base URL should end in /v1');
    const google = new GoogleGenAI({ apiKey: secret, httpOptions: { baseUrl: `${s.url}/v1beta` } });
    const e3 = await google.models.generateContent({ model: 'm', contents: 'hi' }).catch((e: unknown) => e);
    expect((e3 as Error).message).toContain('the path repeats /v1beta');
    // Thrice is one shape too: the protocol the path meant.
    const thrice = await fetch(`${s.url}/v1/v1/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': secret },
    });
    expect(await thrice.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    expect((e3 as Error).message).toContain('NOT_FOUND');
  });

  it('never answer 200 to a browser either', async () => {
    for (const p of UNKNOWN) {
      const res = await fetch(s.url + p, { headers: { accept: HTML } });
      await res.arrayBuffer();
      expect(res.status, p).toBe(404);
    }
  });

  it('the probes answer JSON even to a browser', async () => {
    for (const p of ['/healthz', '/readyz', '/metrics']) {
      const res = await fetch(s.url + p, { headers: { accept: HTML } });
      await res.arrayBuffer();
      expect(res.status, p).toBe(200);
      expect(res.headers.get('content-type'), p).not.toMatch(/text\/html/);
    }
  });
});

describe('console sections', () => {
  it('cover every page the console links to (web/src), so none of them answers 404', () => {
    const files = fs
      .readdirSync(path.join(REPO_ROOT, 'web', 'src'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.tsx') || f.endsWith('.ts'));
    const linked = new Set<string>();
    for (const f of files) {
      const text = fs.readFileSync(path.join(REPO_ROOT, 'web', 'src', f), 'utf8');
      for (const m of text.matchAll(/(?:href\s*[:=]\s*\{?|navigate\()\s*['"`]\/([a-z0-9-]*)/gi))
        linked.add(m[1]!);
    }
    expect(linked.size).toBeGreaterThan(3);
    for (const section of linked) expect(CONSOLE_SECTIONS.has(section), `/${section}`).toBe(true);
  });
});

describe('console routing rule', () => {
  const webDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-web-'));
  const app = Fastify();
  beforeAll(async () => {
    fs.mkdirSync(path.join(webDir, 'assets'));
    fs.writeFileSync(path.join(webDir, 'index.html'), '<!doctype html><div id="root"></div>');
    fs.writeFileSync(path.join(webDir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    await registerConsole(app, { webDir });
  });
  afterAll(async () => {
    await app.close();
    fs.rmSync(webDir, { recursive: true, force: true });
  });

  it('serves the app at console routes', async () => {
    for (const url of [
      '/',
      '/keys',
      '/keys/12',
      '/logs',
      '/usage',
      '/users',
      '/channels',
      '/pricing',
      '/login',
    ]) {
      const res = await app.inject({ url, headers: { accept: HTML } });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type'], url).toMatch(/text\/html/);
      expect(res.body).toContain('id="root"');
    }
    expect((await app.inject({ url: '/favicon.svg' })).statusCode).toBe(200);
  });

  it('a browser navigating to an unknown page gets the app with status 404; anyone else plain 404', async () => {
    const page = await app.inject({ url: '/no-such-page', headers: { accept: HTML } });
    expect(page.statusCode).toBe(404);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.headers['content-security-policy']).toBeTruthy();
    for (const url of ['/no-such-page', '/healthzz', '/v2/x', '/metrics.txt', '/keys.php', '/api/x']) {
      const res = await app.inject({ url, headers: { accept: '*/*' } });
      expect(res.statusCode, url).toBe(404);
      expect(res.headers['content-type'], url).not.toMatch(/text\/html/);
    }
    for (const url of ['/metrics.txt', '/v2/x', '/api/x', '/assets/x.js', '/healthz/x']) {
      const res = await app.inject({ url, headers: { accept: HTML } });
      expect(res.statusCode, url).toBe(404);
      expect(res.headers['content-type'], url).not.toMatch(/text\/html/);
    }
  });
});
