// Ephemeral keys (contract §8) through their whole life: minted by a key (POST
// /v1/keys/ephemeral), used with the openai SDK, never more than the parent (models, origins,
// expiry), max_cost exact under parallel requests, billed and logged as the parent with an
// ephemeral_id, expired by the clock, dead with the parent (disable, rotate, delete), unable to
// mint, revocable by itself.
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { hashKey, isWellFormedKey } from '../../src/keys/format.js';
import { backends, type TestServer, userWithKey } from '../helpers/server.js';
import type { AuditPage } from '../../web/src/api-types.js';
import { offlineSuite } from '../helpers/relay-suite.js';
import { expectRelayError, relay, type Res } from '../foundation/util.js';
import { allLogs, client, expectOriginRefused, nanoOf, relayFrom, uniq } from './relay-helpers.js';

async function mint(
  s: TestServer,
  parentSecret: string,
  body: Record<string, unknown> = {},
  headers = {},
): Promise<Res> {
  return relay(s, parentSecret, { method: 'POST', path: '/v1/keys/ephemeral', body, headers });
}

describe.each(backends())('ephemeral keys [%s]', (backend) => {
  let s: TestServer;
  const model = uniq('eph-model');
  const other = uniq('eph-other');
  const chat = (c: OpenAI, max_tokens = 10, m = model) =>
    c.chat.completions.create({ model: m, messages: [{ role: 'user', content: 'hi' }], max_tokens });

  // 0.001 USD per output token, prompts free: a call with max_tokens n costs exactly n/1000 USD.
  const price = { input: 0, output: 1000 };
  offlineSuite({ backend }, { [model]: price, [other]: price }, (started) => {
    s = started;
  });

  it('mints a key of the contract format, shown once; it works with the openai SDK and bills to its parent', async () => {
    const parent = await userWithKey(s, { balance: 10 });
    const before = s.clock.now();
    const r = await mint(s, parent.secret, { ttl_seconds: 120, max_cost: 1, models: [model] });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const e = r.body;
    expect(isWellFormedKey(e.key)).toBe(true);
    expect(e.key).not.toBe(parent.secret);
    expect(e).toMatchObject({
      object: 'ephemeral_key',
      parent_id: parent.key.id,
      status: 'active',
      models: [model],
      allowed_origins: null,
      max_cost: 1,
      display: `${e.key.slice(0, 7)}…${e.key.slice(-4)}`,
    });
    expect(typeof e.id).toBe('number');
    // The mint's log row is the parent's, with the status the client got.
    await s.services.flush();
    const mintRow = (await allLogs(s, { key_id: parent.key.id })).find(
      (l) => l.request_id === r.headers.get('x-request-id'),
    );
    expect(mintRow).toMatchObject({ status: 201, cost: 0, error_code: null });
    const exp = Date.parse(e.expires_at);
    expect(exp).toBeGreaterThanOrEqual(before + 120_000);
    expect(exp).toBeLessThanOrEqual(s.clock.now() + 120_000);
    // Defaults: 600 s.
    const d = await mint(s, parent.secret);
    expect(d.status).toBe(201);
    expect(Date.parse(d.body.expires_at) - Date.parse(d.body.created_at)).toBe(600_000);

    const c = client(s, e.key);
    const answer = await chat(c, 7);
    expect(answer.usage!.completion_tokens).toBe(7);
    // It sees itself, not its parent.
    const self = await relay(s, e.key);
    expect(self.status).toBe(200);
    expect(self.body).toMatchObject({ object: 'ephemeral_key', id: e.id, used: 0.007, remaining: 0.993 });
    expect(JSON.stringify(self.body)).not.toContain(parent.key.name);

    await s.services.flush();
    const rows = await allLogs(s, { key_id: parent.key.id });
    const call = rows.find((l) => l.endpoint === '/v1/chat/completions')!;
    expect(call).toMatchObject({ key_id: parent.key.id, user_id: parent.user.id, status: 200 });
    expect(call.ephemeral_id).toBe(e.id);
    expect(nanoOf(call.cost)).toBe(7_000_000n);
    const minting = rows.filter((l) => l.endpoint === '/v1/keys/ephemeral');
    expect(minting.every((l) => l.ephemeral_id === null)).toBe(true);
    // The parent paid.
    const p = await s.api('GET', `/api/keys/${parent.key.id}`);
    expect(nanoOf(p.body.used)).toBe(7_000_000n);
    // Stored only as a hash.
    const stored = await s.services.storage.db
      .selectFrom('ephemeral_keys')
      .selectAll()
      .where('id', '=', e.id)
      .executeTakeFirstOrThrow();
    expect(stored.key_hash).toBe(hashKey(e.key));
    expect(JSON.stringify(stored)).not.toContain(e.key);
  });

  it('never more than its parent: models, origins, expiry; refused body fields answer 400', async () => {
    const parent = await userWithKey(s, {
      key: { models: [model, 'gpt-4o*'], allowed_origins: ['https://*.example.com'] },
    });
    const sub = await mint(s, parent.secret, {
      models: [model, 'gpt-4o-mini', 'gpt-4o-*'],
      allowed_origins: ['https://app.example.com'],
    });
    expect(sub.status, JSON.stringify(sub.body)).toBe(201);
    expectRelayError(await mint(s, parent.secret, { models: [other] }), 403, 'model_not_allowed');
    expectRelayError(await mint(s, parent.secret, { models: ['gpt-*'] }), 403, 'model_not_allowed');
    expectRelayError(await mint(s, parent.secret, { models: ['*'] }), 403, 'model_not_allowed');
    expectRelayError(
      await mint(s, parent.secret, { allowed_origins: ['https://evil.com'] }),
      403,
      'browser_origin_not_allowed',
    );
    expectRelayError(
      await mint(s, parent.secret, { allowed_origins: ['not an origin'] }),
      400,
      'invalid_request',
    );
    for (const body of [
      { ttl_seconds: 0 },
      { ttl_seconds: 3601 },
      { ttl_seconds: 1.5 },
      { max_cost: -1 },
      { what: 1 },
    ])
      expectRelayError(await mint(s, parent.secret, body), 400, 'invalid_request');

    // A model outside its own list is refused even though the parent allows it.
    const narrow = await mint(s, parent.secret, { models: [model] });
    const narrowKey = narrow.body.key as string;
    const err = await chat(client(s, narrowKey), 3, 'gpt-4o-mini').catch((x) => x);
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(err.code).toBe('model_not_allowed');
    expect((await chat(client(s, narrowKey), 3)).choices.length).toBe(1);

    // Origins: its own list, inside the parent's; without one, the parent's.
    const own = sub.body.key as string;
    expect((await relayFrom(s, own, 'https://app.example.com')).status).toBe(200);
    await expectOriginRefused(s, own, 'https://b.example.com');
    expect((await relayFrom(s, narrowKey, 'https://b.example.com')).status).toBe(200);
    // The parent narrowed later: the child narrows with it.
    await s.api('PATCH', `/api/keys/${parent.key.id}`, { allowed_origins: ['https://b.example.com'] });
    await expectOriginRefused(s, own, 'https://app.example.com');

    // A parent without origins: the ephemeral key's own list applies.
    const server = await userWithKey(s);
    const forPage = await mint(s, server.secret, { allowed_origins: ['http://localhost:5173'] });
    expect(forPage.status).toBe(201);
    const page = forPage.body.key as string;
    expect((await relayFrom(s, page, 'http://localhost:5173')).status).toBe(200);
    await expectOriginRefused(s, page, 'http://localhost:5174');
    await expectOriginRefused(s, server.secret, 'http://localhost:5173');
  });

  it('TTL over the parent expiry is refused; expiry follows the injected clock', async () => {
    const expires = new Date(s.clock.now() + 300_000).toISOString();
    const parent = await userWithKey(s, { key: { expires_at: expires } });
    const over = await mint(s, parent.secret, { ttl_seconds: 600 });
    expectRelayError(over, 400, 'invalid_request');
    expect(over.body.error.param).toBe('ttl_seconds');
    const ok = await mint(s, parent.secret, { ttl_seconds: 60 });
    expect(ok.status).toBe(201);
    const key = ok.body.key as string;
    expect((await relay(s, key)).status).toBe(200);
    s.clock.advance(61_000);
    const r = await relay(s, key);
    expectRelayError(r, 401, 'key_expired');
    expect(r.headers.get('x-should-retry')).toBe('false');
    // The parent lives on.
    expect((await relay(s, parent.secret)).status).toBe(200);
  });

  it('max_cost holds exactly under parallel requests', async () => {
    const parent = await userWithKey(s, { balance: 10 });
    // Each call's worst case is 0.01 USD and it spends exactly that: room for three, not four.
    const e = await mint(s, parent.secret, { max_cost: 0.035 });
    const c = client(s, e.body.key);
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => chat(c, 10)));
    const ok = results.filter((x) => x.status === 'fulfilled');
    const refused = results.filter((x) => x.status === 'rejected') as PromiseRejectedResult[];
    expect(ok).toHaveLength(3);
    for (const x of refused) {
      expect(x.reason.status).toBe(429);
      expect(x.reason.code).toBe('insufficient_quota');
      expect(x.reason.message).toContain('max_cost');
    }
    // What is left (0.005) admits a call of that worst case exactly, then nothing.
    expect((await chat(c, 5)).usage!.completion_tokens).toBe(5);
    const last = await chat(c, 1).catch((x) => x);
    expect(last.status).toBe(429);
    await s.services.flush();
    const rows = (await allLogs(s, { key_id: parent.key.id })).filter((l) => l.ephemeral_id === e.body.id);
    const spent = rows.reduce((sum, l) => sum + nanoOf(l.cost), 0n);
    expect(spent).toBe(35_000_000n);
    expect(spent).toBeLessThanOrEqual(nanoOf(0.035));
    const stored = await s.services.storage.db
      .selectFrom('ephemeral_keys')
      .select('used_nano')
      .where('id', '=', e.body.id)
      .executeTakeFirstOrThrow();
    expect(Number(stored.used_nano)).toBe(35_000_000);
    // The parent's quota also bounds it: the tighter of the two wins.
    const tight = await userWithKey(s, { balance: 10, key: { quota: 0.015 } });
    const t = client(s, (await mint(s, tight.secret, { max_cost: 1 })).body.key);
    expect((await chat(t, 10)).choices.length).toBe(1);
    const q = await chat(t, 10).catch((x) => x);
    expect(q.status).toBe(429);
    expect(q.message).toContain('quota');
  });

  it('dies with its parent: disabled (for good), rotated, deleted; and cannot mint', async () => {
    const parent = await userWithKey(s);
    const a = (await mint(s, parent.secret)).body.key as string;
    expectRelayError(await mint(s, a), 403, 'forbidden');
    await s.api('PATCH', `/api/keys/${parent.key.id}`, { status: 'disabled' });
    expectRelayError(await relay(s, a), 401, 'key_disabled');
    await s.api('PATCH', `/api/keys/${parent.key.id}`, { status: 'active' });
    expect((await relay(s, parent.secret)).status).toBe(200);
    expectRelayError(await relay(s, a), 401, 'key_disabled');

    const b = (await mint(s, parent.secret)).body.key as string;
    expect((await relay(s, b)).status).toBe(200);
    const rotated = await s.api('POST', `/api/keys/${parent.key.id}/rotate`, { grace_seconds: 300 });
    expect(rotated.status).toBe(200);
    // Like a rotated-out secret (no grace for children, whatever the parent's grace).
    expectRelayError(await relay(s, b), 401, 'invalid_api_key');
    expect((await relay(s, parent.secret)).status).toBe(200);
    // Minted under the new secret: alive; the parent deleted: dead.
    const c = (await mint(s, rotated.body.key)).body.key as string;
    expect((await relay(s, c)).status).toBe(200);
    await s.api('DELETE', `/api/keys/${parent.key.id}`);
    expectRelayError(await relay(s, c), 401, 'invalid_api_key');
  });

  it("minted with a rotated-out secret, it cannot outlive that secret's grace", async () => {
    const parent = await userWithKey(s);
    await s.api('POST', `/api/keys/${parent.key.id}/rotate`, { grace_seconds: 300 });
    const over = await mint(s, parent.secret, { ttl_seconds: 600 });
    expectRelayError(over, 400, 'invalid_request');
    expect(over.body.error.param).toBe('ttl_seconds');
    expect(over.body.error.message).toContain('rotated-out secret');
    const ok = await mint(s, parent.secret, { ttl_seconds: 290 });
    expect(ok.status).toBe(201);
    expect((await relay(s, ok.body.key)).status).toBe(200);
    s.clock.advance(301_000);
    expectRelayError(await relay(s, parent.secret), 401, 'invalid_api_key');
    expectRelayError(await relay(s, ok.body.key), 401, 'key_expired');
  });

  it('dies when its parent expires: a later expiry of the parent does not bring it back', async () => {
    const parent = await userWithKey(s);
    const child = (await mint(s, parent.secret, { ttl_seconds: 600 })).body.key as string;
    const soon = new Date(s.clock.now() + 60_000).toISOString();
    await s.api('PATCH', `/api/keys/${parent.key.id}`, { expires_at: soon });
    expect((await relay(s, child)).status).toBe(200);
    s.clock.advance(61_000);
    expectRelayError(await relay(s, child), 401, 'key_expired');
    await s.api('PATCH', `/api/keys/${parent.key.id}`, { expires_at: null });
    expect((await relay(s, parent.secret)).status).toBe(200);
    expectRelayError(await relay(s, child), 401, 'key_disabled');
    // Moved before it passed, an expiry leaves the children alive.
    const next = (await mint(s, parent.secret, { ttl_seconds: 600 })).body.key as string;
    await s.api('PATCH', `/api/keys/${parent.key.id}`, {
      expires_at: soon.replace(/^\d{4}/, (y) => String(Number(y) + 1)),
    });
    expect((await relay(s, next)).status).toBe(200);
  });

  it('a lock-down of its parent (leak report, anomaly guard, kill switch) kills it for good', async () => {
    const parent = await userWithKey(s);
    const child = (await mint(s, parent.secret)).body.key as string;
    expect((await relay(s, child)).status).toBe(200);
    await s.services.keys.lockDown(parent.key.id);
    expectRelayError(await relay(s, child), 401, 'key_disabled');
    expect((await s.api('PATCH', `/api/keys/${parent.key.id}`, { status: 'active' })).status).toBe(200);
    expect((await relay(s, parent.secret)).status).toBe(200);
    expectRelayError(await relay(s, child), 401, 'key_disabled');
    // The parent's own kill switch, likewise.
    const next = (await mint(s, parent.secret)).body.key as string;
    expect((await relay(s, parent.secret, { method: 'POST', path: '/v1/key/revoke' })).status).toBe(200);
    await s.api('PATCH', `/api/keys/${parent.key.id}`, { status: 'active' });
    expectRelayError(await relay(s, next), 401, 'key_disabled');
  });

  it('revokes itself without touching its parent or siblings', async () => {
    const parent = await userWithKey(s);
    const one = (await mint(s, parent.secret)).body;
    const two = (await mint(s, parent.secret)).body;
    const r = await relay(s, one.key, { method: 'POST', path: '/v1/key/revoke' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ object: 'ephemeral_key', id: one.id, status: 'disabled' });
    expect(JSON.stringify(r.body)).not.toContain(one.key);
    expectRelayError(await relay(s, one.key), 401, 'key_disabled');
    expect((await relay(s, two.key)).status).toBe(200);
    expect((await relay(s, parent.secret)).status).toBe(200);
    const audit = await s.api<AuditPage>('GET', `/api/audit?key_id=${parent.key.id}`);
    const row = audit.body.data.find((a) => a.action === 'key.revoke');
    expect(row).toMatchObject({ actor: `ephemeral:${one.id}`, changes: { ephemeral_id: one.id } });
  });

  it('expired rows are purged', async () => {
    const parent = await userWithKey(s);
    const old = (await mint(s, parent.secret, { ttl_seconds: 1 })).body;
    s.clock.advance(2 * 3600_000);
    await s.services.ephemeralKeys.purgeExpired();
    const left = await s.services.storage.db
      .selectFrom('ephemeral_keys')
      .select('id')
      .where('id', '=', old.id)
      .executeTakeFirst();
    expect(left).toBeUndefined();
    expectRelayError(await relay(s, old.key), 401, 'invalid_api_key');
  });
});
