// Starts the real gateway in-process on a random loopback port, against a fresh SQLite data
// dir or a fresh PostgreSQL schema, and captures its log output so tests can search it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { expect } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config.js';
import { createServices, type Services } from '../../src/services.js';
import { buildApp } from '../../src/app.js';
import type { errorBody } from '../../src/http/errors.js';
import { pgOnce } from './pg-once.js';
import { redactingSerializers } from '../../src/http/redact.js';

export type Backend = 'sqlite' | 'postgres';

/** PostgreSQL for tests: MOLE_TEST_PG_URL (set by test/global-setup.ts when a server answers). */
export const pgUrl = (): string | undefined => process.env.MOLE_TEST_PG_URL || undefined;
export const backends = (): Backend[] => (pgUrl() ? ['sqlite', 'postgres'] : ['sqlite']);

/**
 * JSON as the suites read it when its shape is not named: a response body of whichever endpoint
 * was called (or its text), a fixture, a body the mock upstream recorded. Such JSON is read field
 * by field in some 900 places, each read checked by expect() at run time; the path of a call does
 * not tell the compiler the shape, so this stays open. Calls that can name a type do:
 * s.api<AuditPage>(…) with web/src/api-types.ts (generated from the OpenAPI document), ErrorBody.
 */
// biome-ignore lint/suspicious/noExplicitAny: the one declared open type for JSON the suites read and assert on (see above).
export type TestJson = any;

/** A JSON object whose fields a test reads and asserts on (see TestJson). */
export type TestJsonObject = Record<string, TestJson>;

/** The error body every API answers with (management API and OpenAI-style relay). */
export type ErrorBody = ReturnType<typeof errorBody>;

/** What `TestServer.api` answers. */
export interface ApiReply<T = TestJson> {
  status: number;
  body: T;
  headers: Headers;
}

/**
 * Every row of a cursor-paginated list, page by page: `path` carries its query (its `limit`
 * too) but no cursor. Each page must answer 200 with at most `limit` rows; a cursor that never
 * ends stops at `maxPages`, so the test fails on its count instead of hanging.
 */
export async function walkPages<Row>(
  s: Pick<TestServer, 'api'>,
  path: string,
  maxPages = 20,
): Promise<{ rows: Row[]; pages: number }> {
  const limit = Number(new URL(path, 'http://x').searchParams.get('limit') ?? Number.POSITIVE_INFINITY);
  const rows: Row[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const r: ApiReply<{ data: Row[]; next_cursor: string | null }> = await s.api(
      'GET',
      cursor ? `${path}&cursor=${encodeURIComponent(cursor)}` : path,
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.data.length).toBeLessThanOrEqual(limit);
    rows.push(...r.body.data);
    cursor = r.body.next_cursor;
    pages++;
  } while (cursor && pages < maxPages);
  return { rows, pages };
}

export interface TestServer {
  url: string;
  masterKey: string;
  /** MOLE_SECRET in use (PostgreSQL mode). */
  secret: string | undefined;
  backend: Backend;
  services: Services;
  app: FastifyInstance;
  dataDir: string;
  pgSchema: string | null;
  /** The server's clock for keys (creation, rotation, expiry, verification): real time
   * plus however far a test moved it forward, so tests never sleep to let time pass. */
  clock: TestClock;
  /** Everything the server logged so far. */
  logs(): string;
  /**
   * Management API call with the master key (or another bearer / cookie). The body is the
   * parsed JSON (else the text); a call that knows the answer's shape names it as `T`.
   */
  api<T = TestJson>(
    method: string,
    p: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<ApiReply<T>>;
  close(): Promise<void>;
}

export interface TestClock {
  now(): number;
  /** Moves the clock forward by `ms`. */
  advance(ms: number): void;
  /**
   * Stops the clock until the returned function is called (then it runs on from where it
   * stood): for a test that asserts what a time reads, which a slow machine must not change.
   */
  freeze(): () => void;
}

function testClock(): TestClock {
  let offset = 0;
  let frozenAt: number | null = null;
  return {
    now: () => (frozenAt ?? Date.now()) + offset,
    advance(ms) {
      offset += ms;
    },
    freeze() {
      // Already stopped: the first freeze's thaw starts it again, not this one's.
      if (frozenAt !== null) return () => {};
      frozenAt = Date.now();
      return () => {
        if (frozenAt === null) return;
        offset += frozenAt - Date.now();
        frozenAt = null;
      };
    },
  };
}

export interface StartOptions {
  backend?: Backend;
  env?: Record<string, string>;
  /** Join an existing instance's PostgreSQL schema (a second gateway on the same database). */
  shareWith?: TestServer;
  /** Use Redis (MOLE_TEST_REDIS_URL) for shared caches, limits and quota counters. */
  redis?: boolean;
  /** Start again on a closed instance's data dir / PostgreSQL schema (a restart); needs `keep` on it. */
  restartOf?: TestServer;
  /** close() leaves the data dir and the PostgreSQL schema, for a `restartOf`. */
  keep?: boolean;
}

export const redisUrl = (): string | undefined => process.env.MOLE_TEST_REDIS_URL || undefined;

export async function startTestServer(opts: StartOptions = {}): Promise<TestServer> {
  const prev = opts.restartOf;
  const backend = prev?.backend ?? opts.shareWith?.backend ?? opts.backend ?? 'sqlite';
  const dataDir = prev?.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'mole-test-'));
  const masterKey =
    prev?.masterKey ?? opts.shareWith?.masterKey ?? 'mk-test-' + randomBytes(16).toString('hex');
  const pgSchema =
    prev?.pgSchema ??
    opts.shareWith?.pgSchema ??
    (backend === 'postgres' ? 't_' + randomBytes(6).toString('hex') : null);
  const ownsSchema = !opts.shareWith && !opts.keep;
  if (opts.redis && !redisUrl()) throw new Error('no Redis configured (MOLE_TEST_REDIS_URL)');
  if (backend === 'postgres' && !pgUrl()) throw new Error('no PostgreSQL configured (MOLE_TEST_PG_URL)');
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    MOLE_DATA_DIR: dataDir,
    MOLE_MASTER_KEY: masterKey,
    MOLE_FLUSH_INTERVAL_MS: '50',
    MOLE_LOG_LEVEL: 'debug',
    ...(backend === 'postgres'
      ? {
          DATABASE_URL: pgUrl()!,
          MOLE_SECRET:
            prev?.secret ?? opts.shareWith?.secret ?? 'test-secret-' + randomBytes(8).toString('hex'),
        }
      : {}),
    ...(opts.redis ? { REDIS_URL: redisUrl()! } : {}),
    ...opts.env,
  });
  let captured = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      captured += chunk.toString();
      cb();
    },
  });
  const logger = pino({ level: config.logLevel, serializers: redactingSerializers }, sink);
  const clock = testClock();
  const services = await createServices(config, logger, {
    announceMasterKey: () => {},
    now: clock.now,
    ...(pgSchema ? { pgSchema } : {}),
  });
  const app = await buildApp(services, logger);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

  const api: TestServer['api'] = async <T>(
    method: string,
    p: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const res = await fetch(url + p, {
      method,
      headers: {
        ...(headers.cookie || headers.authorization ? {} : { authorization: `Bearer ${masterKey}` }),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* CSV or empty */
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  };

  return {
    url,
    masterKey,
    backend,
    services,
    app,
    dataDir,
    pgSchema,
    api,
    secret: config.secret,
    clock,
    logs: () => captured,
    async close() {
      // A client that never read a large body keeps its connection busy, and close() would wait
      // for it forever; the real process bounds this with MOLE_SHUTDOWN_GRACE_SECONDS.
      const force = setTimeout(() => app.server.closeAllConnections(), 2_000);
      await app.close();
      clearTimeout(force);
      await services.close();
      if (!opts.keep) fs.rmSync(dataDir, { recursive: true, force: true });
      if (pgSchema && ownsSchema) await pgOnce(pgUrl()!, `DROP SCHEMA IF EXISTS "${pgSchema}" CASCADE`);
    },
  };
}

/** Creates a user (with balance) and a key for it through the API; returns both. */
export async function userWithKey(
  s: TestServer,
  opts: { username?: string; balance?: number; group?: string; key?: Record<string, unknown> } = {},
) {
  const username = opts.username ?? 'u' + randomBytes(4).toString('hex');
  const u = await s.api('POST', '/api/users', {
    username,
    password: 'password-123',
    balance: opts.balance ?? 100,
    ...(opts.group ? { group: opts.group } : {}),
  });
  if (u.status !== 201) throw new Error(`user create failed: ${JSON.stringify(u.body)}`);
  const k = await s.api('POST', '/api/keys', { name: 'test-key', user_id: u.body.id, ...opts.key });
  if (k.status !== 201) throw new Error(`key create failed: ${JSON.stringify(k.body)}`);
  return { user: u.body, key: k.body, secret: k.body.key as string, username, password: 'password-123' };
}

/** Signs in through the API; returns a cookie header and the CSRF token. */
export async function login(s: TestServer, username: string, password: string) {
  const res = await fetch(s.url + '/api/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const body = (await res.json()) as { csrf_token: string; user: { id: number } };
  const setCookie = res.headers.get('set-cookie') ?? '';
  const cookie = setCookie.split(';')[0]!;
  return { status: res.status, cookie, csrf: body.csrf_token, user: body.user, setCookie };
}
