// Small helpers shared by the foundation suites (contract §2–4, authentication part).
import { beforeAll, expect } from 'vitest';
import { login, type TestJson, type TestServer } from '../helpers/server.js';
import { standIn } from '../helpers/suite.js';

export interface Res {
  status: number;
  /** Parsed JSON, else the text. */
  body: TestJson;
  headers: Headers;
}

async function toRes(r: Response): Promise<Res> {
  const text = await r.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: r.status, body, headers: r.headers };
}

/** Raw HTTP call with exactly the given headers (no master key added). */
export async function raw(
  s: TestServer,
  method: string,
  p: string,
  opts: { headers?: Record<string, string>; body?: string } = {},
): Promise<Res> {
  return toRes(
    await fetch(s.url + p, {
      method,
      headers: opts.headers ?? {},
      ...(opts.body !== undefined ? { body: opts.body } : {}),
    }),
  );
}

/** GET /v1/key (or another relay path) presenting `secret` the given way. */
export async function relay(
  s: TestServer,
  secret: string | undefined,
  opts: {
    how?: 'bearer' | 'x-api-key' | 'api-key' | 'x-goog-api-key';
    path?: string;
    headers?: Record<string, string>;
    method?: string;
    body?: unknown;
  } = {},
): Promise<Res> {
  const headers: Record<string, string> = { ...opts.headers };
  if (secret !== undefined) {
    const how = opts.how ?? 'bearer';
    if (how === 'bearer') headers.authorization = `Bearer ${secret}`;
    else headers[how] = secret;
  }
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  return toRes(
    await fetch(s.url + (opts.path ?? '/v1/key'), {
      method: opts.method ?? 'GET',
      headers,
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
    }),
  );
}

/** OpenAI error shape {"error":{"message","type","param","code"}} plus x-request-id. */
export function expectRelayError(res: Res, status: number, code: string): void {
  expect({ status: res.status, code: res.body?.error?.code }, JSON.stringify(res.body)).toEqual({
    status,
    code,
  });
  const e = res.body.error;
  expect(Object.keys(e).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof e.message).toBe('string');
  expect(e.message.length).toBeGreaterThan(0);
  expect(typeof e.type).toBe('string');
  expect(e.param === null || typeof e.param === 'string').toBe(true);
  expect(res.headers.get('x-request-id')).toMatch(/^req_[0-9a-z]{12,}$/);
}

/** Management API error {"error":{"code","message"}} with the given status. */
export function expectApiError(res: Res, status: number, code?: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(typeof res.body?.error?.code, JSON.stringify(res.body)).toBe('string');
  expect(typeof res.body.error.message).toBe('string');
  if (code) expect(res.body.error.code).toBe(code);
}

/** A signed-in console user: calls the management API with the cookie (and CSRF on writes unless told not to). */
export async function session(s: TestServer, username: string, password: string) {
  const l = await login(s, username, password);
  if (l.status !== 200) throw new Error(`login failed: ${l.status}`);
  const call = (method: string, p: string, body?: unknown, extra: Record<string, string> = {}) =>
    s.api(method, p, body, {
      cookie: l.cookie,
      ...(method === 'GET' ? {} : { 'x-csrf-token': l.csrf }),
      ...extra,
    });
  return { ...l, call };
}

let seq = 0;
/** A unique, valid username. */
export const uname = (prefix = 'u') => `${prefix}${process.pid}x${Date.now().toString(36)}x${seq++}`;

/** Creates a user with the master key; returns its JSON and password. */
export async function createUser(
  s: TestServer,
  opts: { role?: 'user' | 'admin'; group?: string; balance?: number; username?: string } = {},
) {
  const username = opts.username ?? uname();
  const password = 'password-' + username;
  const r = await s.api('POST', '/api/users', { ...opts, username, password });
  if (r.status !== 201) throw new Error(`user create failed: ${JSON.stringify(r.body)}`);
  return {
    user: r.body as { id: number; username: string; role: string; group: string; balance: number },
    username,
    password,
  };
}

/** A user (see createUser) the describe block creates before its tests, as a stand-in for them. */
export function suiteUser(s: TestServer, opts: Parameters<typeof createUser>[1] = {}) {
  const user = standIn<Awaited<ReturnType<typeof createUser>>['user']>('suite user');
  beforeAll(async () => user.bind((await createUser(s, opts)).user));
  return user.ref;
}

/** Creates a key with the master key. */
export async function createKey(s: TestServer, userId: number, fields: Record<string, unknown> = {}) {
  const r = await s.api('POST', '/api/keys', { name: 'k-' + seq++, user_id: userId, ...fields });
  if (r.status !== 201) throw new Error(`key create failed: ${JSON.stringify(r.body)}`);
  return { key: r.body, secret: r.body.key as string, id: r.body.id as number };
}

export const KEY_FIELDS = [
  'id',
  'name',
  'user_id',
  'status',
  'display',
  'models',
  'allowed_ips',
  'quota',
  'used',
  'group',
  'expires_at',
  'created_at',
  'last_used_at',
  'last_used_ip',
];
