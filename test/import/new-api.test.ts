// `mole import new-api` (contract §10), run as a function against a started gateway's own
// storage: new-api databases built from new-api's own table definitions (SQLite, and MySQL on
// the local MariaDB), and a one-api one, imported into SQLite and PostgreSQL MoleAPI; every
// mapped field checked through the management API and the relay.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey } from '../../src/keys/format.js';
import { type ImportReport, importNewApi } from '../../src/import/new-api.js';
import { openSource } from '../../src/import/source.js';
import { startMockProvider, type MockProvider } from '../mock-provider/server.js';
import { waitFor } from '../helpers/process.js';
import {
  backends,
  login,
  pgUrl,
  type TestJson,
  startTestServer,
  type TestServer,
} from '../helpers/server.js';
import type {
  ApiKey,
  ApiKeyPage,
  Channel,
  Group,
  LogPage,
  Price,
  UserPage,
} from '../../web/src/api-types.js';
import {
  buildMysql,
  buildPostgres,
  buildSqlite,
  mysqlUrl,
  NEW_API_SQLITE,
  newApiData,
  newApiKey,
  ONE_API_SQLITE,
} from './fixtures.js';
import { countQueries } from '../helpers/queries.js';

const UPSTREAM_KEY = 'sk-upstream-mock-credential-0005';

/** What importing newApiData() reports per table: [imported, skipped]. */
const FIXTURE_COUNTS = {
  users: [3, 2],
  tokens: [7, 2],
  channels: [6, 1],
  prices: [2, 1],
  groups: [2, 0],
};

/** Alice and her keys as every source imports them; her main key answers once the verifier sees it. Returns her keys. */
async function expectAliceImported(s: TestServer, data: ReturnType<typeof newApiData>): Promise<ApiKey[]> {
  const users = (await s.api<UserPage>('GET', '/api/users?limit=100')).body.data;
  const alice = users.find((u) => u.username === 'alice')!;
  expect(alice).toMatchObject({ role: 'user', group: 'vip', balance: 5 });
  const keys = (await s.api<ApiKeyPage>('GET', `/api/keys?user_id=${alice.id}`)).body.data;
  expect(keys.find((k) => k.name === 'alice-main')).toMatchObject({
    quota: 1.5,
    used: 0.5,
    models: ['mole-mini', 'gpt-4o'],
  });
  expect(keys.find((k) => k.name === 'alice-unlimited')).toMatchObject({ quota: null, models: null });
  await waitFor(
    async () => (await relay(s, `sk-${data.keys.good}`, '/v1/key')).status === 200,
    10_000,
    'key',
  );
  return keys;
}

async function runImport(s: TestServer, from: string, dryRun = false): Promise<ImportReport> {
  const source = await openSource(from);
  try {
    return await importNewApi({
      source,
      db: s.services.storage.db,
      box: s.services.secretBox,
      dryRun,
      publish: (msg) => s.services.bus.publish(msg),
    });
  } finally {
    await source.close();
  }
}

/** A list answer: `{data: […]}` or a bare array. */
const listOf = <T>(body: T[] | { data: T[] }): T[] => (Array.isArray(body) ? body : body.data);

const counts = (r: ImportReport) =>
  Object.fromEntries(r.tables.map((t) => [t.table, [t.imported, t.skipped]]));

async function relay(s: TestServer, key: string, p: string, body?: unknown) {
  const res = await fetch(s.url + p, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: TestJson = text;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, body: json, headers: res.headers };
}

const chat = (s: TestServer, key: string, model = 'mole-mini') =>
  relay(s, key, '/v1/chat/completions', {
    model,
    messages: [{ role: 'user', content: 'hello' }],
    max_tokens: 8,
  });

/** Everything MoleAPI stored, as text: the SQLite files' bytes, or every PostgreSQL table's rows. */
async function storedText(s: TestServer): Promise<string> {
  await s.services.flush();
  if (s.backend === 'sqlite') {
    const base = path.join(s.dataDir, 'mole.sqlite');
    return ['', '-wal', '-shm', '-journal']
      .map((suffix) => base + suffix)
      .filter((f) => fs.existsSync(f))
      .map((f) => fs.readFileSync(f).toString('latin1'))
      .join('\n');
  }
  const c = new pg.Client({ connectionString: pgUrl(), options: `-c search_path=${s.pgSchema}` });
  await c.connect();
  try {
    const tables = await c.query('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [
      s.pgSchema,
    ]);
    let out = '';
    for (const { table_name } of tables.rows)
      out += (await c.query(`SELECT t::text AS r FROM "${table_name}" t`)).rows.map((r) => r.r).join('\n');
    return out;
  } finally {
    await c.end();
  }
}

describe.each(backends())('mole import new-api into %s', { timeout: 60_000 }, (backend) => {
  let s: TestServer;
  let mock: MockProvider;
  let dir: string;
  let file: string;
  let data: ReturnType<typeof newApiData>;
  let dry: ImportReport;
  let first: ImportReport;
  const userByName = async (name: string) =>
    (await s.api<UserPage>('GET', '/api/users?limit=100')).body.data.find((u) => u.username === name)!;
  const keysOf = async (userId: number) =>
    (await s.api<ApiKeyPage>('GET', `/api/keys?user_id=${userId}&limit=100`)).body.data;

  beforeAll(async () => {
    mock = await startMockProvider({ apiKey: UPSTREAM_KEY });
    s = await startTestServer({ backend });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-newapi-'));
    file = path.join(dir, 'new-api.db');
    data = newApiData({ mockOrigin: mock.url.replace(/\/v1$/, '') });
    buildSqlite(file, NEW_API_SQLITE, data.rows);
    dry = await runImport(s, file, true);
    first = await runImport(s, file);
    // The gateway hears of the import on its bus and reloads keys, channels and prices.
    await waitFor(
      async () => {
        const r = await relay(s, `sk-${data.keys.good}`, '/v1/models');
        return r.status === 200 && JSON.stringify(r.body).includes('mole-mini');
      },
      10_000,
      'imported key and channel to be served',
    );
  });
  afterAll(async () => {
    await s?.close();
    await mock?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reports imported and skipped rows per table, with reasons', () => {
    expect(counts(first)).toEqual(FIXTURE_COUNTS);
    const why = Object.fromEntries(first.tables.map((t) => [t.table, t.reasons]));
    expect(why.users).toEqual({ deleted: 1, 'username not allowed (letters, digits, . _ @ - only)': 1 });
    expect(why.tokens).toEqual({ deleted: 1, 'owner not imported': 1 });
    expect(why.channels).toEqual({ 'type 3 (Azure) not supported': 1 });
    expect(why.prices).toEqual({ 'per-request price (ModelPrice) not supported': 1 });
    expect(first.quotaPerUnit).toBe(500000);
  });

  it('a dry run reports the same counts and wrote nothing', async () => {
    expect(dry.dryRun).toBe(true);
    expect(counts(dry)).toEqual(counts(first));
    // Dry-running again after the import: nothing left to import.
    const again = await runImport(s, file, true);
    expect(again.tables.every((t) => t.imported === 0)).toBe(true);
  });

  it('users: roles, status, group, balance from quota units', async () => {
    const root = await userByName('root');
    const alice = await userByName('alice');
    const bob = await userByName('bob');
    expect(root).toMatchObject({ role: 'admin', status: 'active', group: 'default', balance: 2 });
    expect(alice).toMatchObject({ role: 'user', status: 'active', group: 'vip', balance: 5 });
    expect(bob).toMatchObject({ role: 'admin', status: 'disabled', group: 'default', balance: 0 });
    expect(await userByName('gone')).toBeUndefined();
    expect(await userByName('bad name!')).toBeUndefined();
  });

  it('keys: status, quota and used in USD, unlimited, expiry, models, IPs, group', async () => {
    const alice = await userByName('alice');
    const root = await userByName('root');
    const byName = Object.fromEntries(
      [...(await keysOf(alice.id)), ...(await keysOf(root.id))].map((k) => [k.name, k]),
    );
    expect(Object.keys(byName).sort()).toEqual(
      [
        'alice-main',
        'alice-unlimited',
        'alice-off',
        'alice-expired',
        'alice-exhausted',
        'root-30d',
        'imported-9',
      ].sort(),
    );
    expect(byName['alice-main']).toMatchObject({
      status: 'active',
      display: `sk-${data.keys.good.slice(0, 4)}…${data.keys.good.slice(-4)}`,
      quota: 1.5,
      used: 0.5,
      remaining: 1,
      models: ['mole-mini', 'gpt-4o'],
      allowed_ips: ['127.0.0.1', '::1'],
      group: null,
      expires_at: null,
    });
    expect(byName['alice-unlimited']).toMatchObject({
      status: 'active',
      quota: null,
      used: 0.2,
      models: null,
      allowed_ips: null,
      group: 'vip',
    });
    expect(byName['alice-off']!.status).toBe('disabled');
    expect(byName['alice-expired']!.status).toBe('expired');
    expect(byName['alice-exhausted']).toMatchObject({
      status: 'exhausted',
      quota: 0.2,
      used: 0.2,
      remaining: 0,
    });
    const future = data.rows.tokens!.find((t) => t.name === 'root-30d')!;
    expect(byName['root-30d']).toMatchObject({
      quota: 10,
      allowed_ips: ['10.0.0.0/8'],
      expires_at: new Date(Number(future.expired_time) * 1000).toISOString(),
      created_at: new Date(Number(future.created_time) * 1000).toISOString(),
    });
    // A group other than the owner's, chosen for the key in new-api: it applies to the key.
    expect(byName['imported-9']).toMatchObject({ group: 'vip', quota: null });
  });

  it('an imported key answers GET /v1/key and relays a call through the imported channel', async () => {
    const key = `sk-${data.keys.good}`;
    const me = await relay(s, key, '/v1/key');
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({
      name: 'alice-main',
      status: 'active',
      quota: 1.5,
      used: 0.5,
      remaining: 1,
    });
    expect(JSON.stringify(me.body)).not.toContain(data.keys.good);
    mock.reset();
    const r = await chat(s, key);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.choices[0].message.content).toBeTruthy();
    // The imported channel: base URL gained /v1, the credential was decrypted and sent.
    expect(mock.requests).toHaveLength(1);
    expect(mock.requests[0]!.path).toBe('/v1/chat/completions');
    expect(mock.requests[0]!.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
    // Billed at the imported price (0.075 ratio → 0.15 USD per 1M, completion ratio 1) × vip's 0.8.
    const alice = await userByName('alice');
    const logs = (await s.api<LogPage>('GET', `/api/logs?user_id=${alice.id}`)).body.data;
    const log = logs.find((l) => l.request_id === r.headers.get('x-request-id'))!;
    expect(log).toMatchObject({ status: 200, model: 'mole-mini', key_name: 'alice-main' });
    const nano = Math.ceil(((log.prompt_tokens + log.completion_tokens) * 150_000_000 * 800_000) / 1e12);
    expect(log.cost).toBeCloseTo(nano / 1e9, 12);
    // Other headers the key may arrive in work too.
    const viaXApiKey = await fetch(s.url + '/v1/key', { headers: { 'x-api-key': key } });
    expect(viaXApiKey.status).toBe(200);
  });

  it('disabled, expired, exhausted and IP-restricted imported keys are refused with their codes', async () => {
    const off = await chat(s, `sk-${data.keys.disabled}`);
    expect([off.status, off.body.error.code]).toEqual([401, 'key_disabled']);
    const expired = await chat(s, `sk-${data.keys.expired}`);
    expect([expired.status, expired.body.error.code]).toEqual([401, 'key_expired']);
    const exhausted = await chat(s, `sk-${data.keys.exhausted}`);
    expect([exhausted.status, exhausted.body.error.code]).toEqual([429, 'insufficient_quota']);
    expect(exhausted.headers.get('x-should-retry')).toBe('false');
    const elsewhere = await chat(s, `sk-${data.keys.future}`);
    expect([elsewhere.status, elsewhere.body.error.code]).toEqual([403, 'ip_not_allowed']);
    // Deleted rows and keys of users who were not imported do not exist here.
    for (const k of [data.keys.deleted, data.keys.orphan]) {
      const r = await relay(s, `sk-${k}`, '/v1/key');
      expect([r.status, r.body.error.code]).toEqual([401, 'invalid_api_key']);
    }
  });

  it('a random 48-character string is refused without any storage lookup', async () => {
    const v = s.services.verifier;
    const q = countQueries(s);
    try {
      const lookups = v.stats.dbLookups;
      for (let i = 0; i < 20; i++) {
        const r = await relay(s, `sk-${newApiKey()}`, '/v1/key');
        expect([r.status, r.body.error.code]).toEqual([401, 'invalid_api_key']);
      }
      expect(v.stats.dbLookups).toBe(lookups);
      expect(q.seen.filter((sql) => /api_keys/.test(sql))).toEqual([]);
      // Whereas a string that passes our checksum but is unknown costs one lookup: the counter counts.
      const r = await relay(s, generateKey(), '/v1/key');
      expect(r.status).toBe(401);
      expect(v.stats.dbLookups).toBe(lookups + 1);
    } finally {
      q.restore();
    }
  });

  it('channels: type, base URL, models, groups, model map, priority, weight, status', async () => {
    const data2 = listOf<Channel>((await s.api('GET', '/api/channels')).body);
    const byName = Object.fromEntries(data2.map((c) => [c.name, c]));
    expect(Object.keys(byName).sort()).toEqual([
      'claude',
      'gemini',
      'mock-upstream',
      'multi #1',
      'multi #2',
      'openai-main',
    ]);
    expect(byName['openai-main']).toMatchObject({
      type: 'openai',
      base_url: 'https://api.openai.com/v1',
      models: ['gpt-4o', 'gpt-4o-mini'],
      groups: ['default', 'vip'],
      model_map: { 'gpt-4o': 'gpt-4o-2024-08-06' },
      priority: 5,
      weight: 13,
      status: 'active',
    });
    expect(byName.claude).toMatchObject({
      type: 'anthropic',
      base_url: 'https://proxy.example.com',
      status: 'disabled',
      weight: 10,
      model_map: null,
    });
    expect(byName.gemini).toMatchObject({
      type: 'gemini',
      base_url: 'https://generativelanguage.googleapis.com',
      status: 'disabled',
      groups: ['vip'],
      priority: 1,
    });
    expect(byName['mock-upstream']).toMatchObject({ base_url: `${mock.url}`, priority: 10, model_map: null });
    expect(byName['multi #2']).toMatchObject({ base_url: 'https://api.example.com/v1', weight: 11 });
    for (const c of data2) expect(c).not.toHaveProperty('api_key');
    // The source's URL held a user name and password: not kept (requests never sent them).
    const stored = await s.services.storage.db.selectFrom('channels').select('base_url').execute();
    expect(stored.map((c) => c.base_url)).toContain('https://proxy.example.com');
    expect(JSON.stringify(stored)).not.toContain('proxy-pass');
  });

  it('prices from ModelRatio × CompletionRatio, groups from GroupRatio', async () => {
    const list = listOf<Price>((await s.api('GET', '/api/prices')).body);
    expect(list.find((p) => p.model === 'gpt-4o')).toMatchObject({ input: 2.5, output: 10 });
    expect(list.find((p) => p.model === 'mole-mini')).toMatchObject({ input: 0.15, output: 0.15 });
    expect(list.find((p) => p.model === 'dall-e-3')).toBeUndefined();
    const glist = listOf<Group>((await s.api('GET', '/api/groups')).body);
    expect(glist.find((g) => g.name === 'vip')).toMatchObject({ multiplier: 0.8 });
    expect(glist.find((g) => g.name === 'default')).toMatchObject({ multiplier: 1 });
  });

  it('bcrypt passwords sign in, and are re-hashed with scrypt on first sign-in', async () => {
    const hashOf = async (name: string) =>
      (
        await s.services.storage.db
          .selectFrom('users')
          .select('password_hash')
          .where('username', '=', name)
          .executeTakeFirstOrThrow()
      ).password_hash;
    expect(await hashOf('root')).toMatch(/^\$2a\$/);
    expect((await login(s, 'root', 'wrong-password')).status).toBe(401);
    expect(await hashOf('root')).toMatch(/^\$2a\$/);
    const ok = await login(s, 'root', 'root-password-1');
    expect(ok.status).toBe(200);
    expect(await hashOf('root')).toMatch(/^scrypt\$/);
    expect((await login(s, 'root', 'root-password-1')).status).toBe(200);
    // The admin role came across: the session may list users.
    const users = await s.api('GET', '/api/users', undefined, { cookie: ok.cookie });
    expect(users.status).toBe(200);
    // A disabled account stays out.
    expect((await login(s, 'bob', 'bob-password-9')).status).toBe(401);
  });

  it('stores no plaintext token or channel credential', async () => {
    const text = await storedText(s);
    expect(text.length).toBeGreaterThan(1000);
    for (const k of Object.values(data.keys)) expect(text.includes(k)).toBe(false);
    for (const c of data.rows.channels!)
      for (const cred of String(c.key).split('\n')) expect(text.includes(cred), cred).toBe(false);
  });

  it('audits every row it created, by actor import, with no secret', async () => {
    const rows = (await s.api('GET', '/api/audit?limit=500')).body.data as {
      actor: string;
      action: string;
      key_id: number | null;
      user_id: number | null;
      changes: Record<string, unknown>;
    }[];
    const imported = rows.filter((r) => r.actor === 'import');
    const made = Object.fromEntries(first.tables.map((t) => [t.table, t.imported]));
    const count = (action: string) => imported.filter((r) => r.action === action).length;
    expect([count('user.create'), count('key.create'), count('channel.create')]).toEqual([
      made.users,
      made.tokens,
      made.channels,
    ]);
    expect([count('price.set'), count('group.set')]).toEqual([made.prices, made.groups]);
    const alice = await userByName('alice');
    const aliceKeys = await keysOf(alice.id);
    const keyRows = imported.filter((r) => r.action === 'key.create' && r.user_id === alice.id);
    expect(keyRows.map((r) => r.key_id).sort()).toEqual(aliceKeys.map((k) => k.id).sort());
    expect(keyRows[0]!.changes.source).toMatch(/^new-api:tokens:\d+$/);
    const text = JSON.stringify(imported);
    for (const k of Object.values(data.keys)) expect(text.includes(k)).toBe(false);
    for (const c of data.rows.channels!)
      for (const cred of String(c.key).split('\n')) expect(text.includes(cred), cred).toBe(false);
  });

  it('imported keys rotate (old secret through its grace period) and delete like any key', async () => {
    const alice = await userByName('alice');
    const root = await userByName('root');
    const unlimited = (await keysOf(alice.id)).find((k) => k.name === 'alice-unlimited')!;
    const old = `sk-${data.keys.unlimited}`;
    const r1 = await s.api('POST', `/api/keys/${unlimited.id}/rotate`, { grace_seconds: 60 });
    expect(r1.status).toBe(200);
    expect((await relay(s, r1.body.key, '/v1/key')).status).toBe(200);
    expect((await relay(s, old, '/v1/key')).status).toBe(200);
    const r2 = await s.api('POST', `/api/keys/${unlimited.id}/rotate`, { grace_seconds: 0 });
    expect(r2.status).toBe(200);
    await waitFor(
      async () => (await relay(s, old, '/v1/key')).status === 401,
      5_000,
      'rotated-out secret refused',
    );
    expect((await relay(s, r2.body.key, '/v1/key')).status).toBe(200);
    const granted = (await keysOf(root.id)).find((k) => k.name === 'imported-9')!;
    expect((await s.api('DELETE', `/api/keys/${granted.id}`)).status).toBe(200);
    const gone = await relay(s, `sk-${data.keys.granted}`, '/v1/key');
    expect([gone.status, gone.body.error.code]).toEqual([401, 'invalid_api_key']);
    // An imported user deleted here stays deleted when the import runs again (next test).
    const bob = await userByName('bob');
    expect((await s.api('DELETE', `/api/users/${bob.id}`)).status).toBe(200);
  });

  it('re-running imports nothing twice', async () => {
    const before = {
      users: (await s.api('GET', '/api/users?limit=100')).body.data.length,
      channels: listOf((await s.api('GET', '/api/channels')).body).length,
    };
    const again = await runImport(s, file);
    expect(again.tables.map((t) => t.imported)).toEqual([0, 0, 0, 0, 0]);
    expect(
      Object.fromEntries(
        again.tables.map((t) => [
          t.table,
          t.reasons['already imported'] ?? t.reasons['already priced'] ?? t.reasons['already present'],
        ]),
      ),
    ).toEqual({
      users: 2,
      tokens: 7,
      channels: 6,
      prices: 2,
      groups: 2,
    });
    expect(again.tables[0]!.reasons['imported before, since deleted here']).toBe(1);
    expect(await userByName('bob')).toBeUndefined();
    expect((await s.api('GET', '/api/users?limit=100')).body.data.length).toBe(before.users);
    expect(listOf((await s.api('GET', '/api/channels')).body).length).toBe(before.channels);
    // The imported key still works after the re-run; rotated-out and deleted ones stay gone.
    expect((await relay(s, `sk-${data.keys.good}`, '/v1/key')).status).toBe(200);
    expect((await relay(s, `sk-${data.keys.unlimited}`, '/v1/key')).status).toBe(401);
    expect((await relay(s, `sk-${data.keys.granted}`, '/v1/key')).status).toBe(401);
  });

  it("a second database's user with a known id but another name is not taken for the first one", async () => {
    // Another new-api instance: its user 2 is carol, not alice, and has a key of her own.
    const other = path.join(dir, 'other-new-api.db');
    const carolKey = newApiKey();
    const alice = data.rows.users!.find((u) => u.id === 2)!;
    const aliceToken = data.rows.tokens!.find((t) => t.user_id === 2)!;
    buildSqlite(other, NEW_API_SQLITE, {
      users: [{ ...alice, username: 'carol', aff_code: 'c1' }],
      tokens: [{ ...aliceToken, id: 901, key: carolKey, name: 'carol-main' }],
    });
    const aliceKeys = (await keysOf((await userByName('alice')).id)).length;
    const r = await runImport(s, other);
    const [users, tokens] = r.tables;
    expect(users).toMatchObject({
      imported: 0,
      reasons: { 'its id was imported before for another username': 1 },
    });
    expect(tokens).toMatchObject({ imported: 0, reasons: { 'owner not imported': 1 } });
    expect((await keysOf((await userByName('alice')).id)).length).toBe(aliceKeys);
    expect((await relay(s, `sk-${carolKey}`, '/v1/key')).status).toBe(401);
  });
});

describe.each(backends())('dry run into an empty %s gateway', { timeout: 60_000 }, (backend) => {
  it('reports what it would import and writes nothing', async () => {
    const s = await startTestServer({ backend });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-newapi-'));
    try {
      const file = path.join(dir, 'new-api.db');
      const data = newApiData({ mockOrigin: 'http://127.0.0.1:9' });
      buildSqlite(file, NEW_API_SQLITE, data.rows);
      const r = await runImport(s, file, true);
      expect(r.tables.map((t) => t.imported)).toEqual([3, 7, 6, 2, 2]);
      expect((await s.api('GET', '/api/users')).body.data).toEqual([]);
      expect((await s.api('GET', '/api/keys')).body.data).toEqual([]);
      expect(listOf((await s.api('GET', '/api/channels')).body)).toEqual([]);
      expect(listOf((await s.api('GET', '/api/prices')).body)).toEqual([]);
      expect(listOf((await s.api('GET', '/api/groups')).body)).toEqual([]);
      expect((await relay(s, `sk-${data.keys.good}`, '/v1/key')).status).toBe(401);
    } finally {
      await s.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

const mysqlDescribe = mysqlUrl() ? describe.each(backends()) : describe.skip.each(backends());
if (!mysqlUrl())
  console.warn('[moleapi tests] SKIPPING new-api MySQL source: no MariaDB (MOLE_TEST_MYSQL_URL)');
mysqlDescribe('mole import new-api from MySQL (MariaDB) into %s', { timeout: 60_000 }, (backend) => {
  let s: TestServer;
  let src: Awaited<ReturnType<typeof buildMysql>>;
  let data: ReturnType<typeof newApiData>;
  let report: ImportReport;
  beforeAll(async () => {
    s = await startTestServer({ backend });
    data = newApiData({ mockOrigin: 'http://127.0.0.1:9' });
    src = await buildMysql(data.rows);
    report = await runImport(s, src.url);
  });
  afterAll(async () => {
    await s?.close();
    await src?.drop();
  });

  it('imports the same rows as from SQLite', async () => {
    expect(counts(report)).toEqual(FIXTURE_COUNTS);
    const keys = await expectAliceImported(s, data);
    expect(keys.find((k) => k.name === 'alice-main')).toMatchObject({ allowed_ips: ['127.0.0.1', '::1'] });
    const off = await relay(s, `sk-${data.keys.disabled}`, '/v1/key');
    expect(off.body.error.code).toBe('key_disabled');
    const channels = listOf<Channel>((await s.api('GET', '/api/channels')).body);
    expect(channels.find((c) => c.name === 'openai-main')).toMatchObject({
      weight: 13,
      priority: 5,
      base_url: 'https://api.openai.com/v1',
    });
  });

  it('re-running from MySQL imports nothing twice', async () => {
    const again = await runImport(s, src.url);
    expect(again.tables.map((t) => t.imported)).toEqual([0, 0, 0, 0, 0]);
  });
});

const pgSourceDescribe = pgUrl() ? describe : describe.skip;
pgSourceDescribe('mole import new-api from a PostgreSQL new-api database', { timeout: 60_000 }, () => {
  it('reads the same rows through pg and imports them into SQLite', async () => {
    const s = await startTestServer();
    const data = newApiData({ mockOrigin: 'http://127.0.0.1:9' });
    const src = await buildPostgres(pgUrl()!, data.rows);
    try {
      const r = await runImport(s, src.url);
      expect(counts(r)).toEqual(FIXTURE_COUNTS);
      await expectAliceImported(s, data);
      expect((await runImport(s, src.url)).tables.map((t) => t.imported)).toEqual([0, 0, 0, 0, 0]);
    } finally {
      await s.close();
      await src.drop();
    }
  });
});

describe('mole import new-api from a one-api database (SQLite)', { timeout: 60_000 }, () => {
  it('maps one-api tokens (models, subnet) and keys keep working', async () => {
    const s = await startTestServer();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-oneapi-'));
    try {
      const file = path.join(dir, 'one-api.db');
      const key = newApiKey();
      const now = Math.floor(Date.now() / 1000);
      buildSqlite(file, ONE_API_SQLITE, {
        users: [
          {
            id: 1,
            username: 'carol',
            password: '$2a$10$' + 'a'.repeat(53),
            role: 100,
            status: 1,
            quota: 1_000_000,
            group: 'default',
            access_token: 'x'.repeat(32),
            aff_code: 'c1',
          },
        ],
        tokens: [
          {
            id: 1,
            user_id: 1,
            key,
            status: 1,
            name: 'carol-key',
            created_time: now,
            accessed_time: now,
            expired_time: -1,
            remain_quota: 250_000,
            used_quota: 0,
            unlimited_quota: 0,
            models: 'gpt-4o-mini, mole-mini',
            subnet: '127.0.0.1/32,::1/128',
          },
        ],
        channels: [
          {
            id: 1,
            type: 24,
            key: 'AIzaOneApiGemini',
            status: 1,
            name: 'g',
            base_url: '',
            models: 'gemini-2.5-flash',
            group: 'default',
            model_mapping: '',
            priority: 0,
          },
        ],
        options: [{ key: 'QuotaPerUnit', value: '250000' }],
      });
      const r = await runImport(s, file);
      expect(counts(r)).toMatchObject({ users: [1, 0], tokens: [1, 0], channels: [1, 0] });
      expect(r.quotaPerUnit).toBe(250000);
      const users = (await s.api<UserPage>('GET', '/api/users')).body.data;
      expect(users[0]).toMatchObject({ username: 'carol', role: 'admin', balance: 4 });
      await waitFor(async () => (await relay(s, `sk-${key}`, '/v1/key')).status === 200, 10_000, 'key');
      const me = await relay(s, `sk-${key}`, '/v1/key');
      expect(me.body).toMatchObject({ quota: 1, used: 0, models: ['gpt-4o-mini', 'mole-mini'] });
      const keys = (await s.api<ApiKeyPage>('GET', '/api/keys')).body.data;
      expect(keys[0]!.allowed_ips).toEqual(['127.0.0.1/32', '::1/128']);
      const ch = listOf((await s.api('GET', '/api/channels')).body);
      expect(ch[0]).toMatchObject({ type: 'gemini', base_url: 'https://generativelanguage.googleapis.com' });
    } finally {
      await s.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
