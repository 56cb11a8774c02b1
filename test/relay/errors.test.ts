// Every relay error of the contract (§4) in OpenAI's shape, through the official SDK where it
// can send the request, on SQLite and PostgreSQL; the check order; and the logging rule:
// a refused request that presented a valid key is logged with its error_code and cost 0, an
// unknown key is not logged at all.
import { describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { backends, userWithKey, type TestServer } from '../helpers/server.js';
import { relaySuite } from '../helpers/relay-suite.js';
import type { MockProvider } from '../mock-provider/server.js';
import { generateKey } from '../../src/keys/format.js';
import {
  allLogs,
  balanceNano,
  client,
  expectOpenAIError,
  keyJson,
  nanoOf,
  rawRelay,
  sdkError,
} from './relay-helpers.js';

const MAX_BODY = 4096;
const FIRST_BYTE_MS = 1500; // generous: a normal answer must never hit it on a loaded machine
const PRICE = { input: 1, output: 2 };
const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: 'user' as const, content: 'hello there' }],
  ...extra,
});

describe.each(backends())('relay errors (%s)', (backend) => {
  let s: TestServer;
  let mock: MockProvider;

  relaySuite(
    {
      backend,
      env: {
        MOLE_MAX_BODY_BYTES: String(MAX_BODY),
        MOLE_UPSTREAM_FIRST_BYTE_TIMEOUT_MS: String(FIRST_BYTE_MS),
      },
    },
    {
      apiKey: 'upstream-errors-cred',
      prices: {
        'chat-a': PRICE,
        'chat-b': PRICE,
        'fail-500': PRICE,
        'slow-model': PRICE,
        'free-model': { input: 0, output: 0 },
      },
      // The channel also serves a model that has no price.
      channel: { models: ['chat-a', 'chat-b', 'fail-500', 'slow-model', 'free-model', 'unpriced-model'] },
    },
    (started) => {
      ({ s, mock } = started);
    },
  );

  /** Refused: the answer carried x-request-id, and this key's log row with that id carries the code, status and cost 0. */
  async function expectRefusalLogged(
    keyId: number,
    code: string,
    status: number,
    requestId: string | null | undefined,
  ) {
    expect(requestId, 'x-request-id on the error answer').toMatch(/\S/);
    const rows = await allLogs(s, { key_id: keyId });
    const row = rows.find((r) => r.request_id === requestId);
    expect(row, `log row for key ${keyId}`).toBeTruthy();
    expect(row).toMatchObject({ error_code: code, status, cost: 0, completion_tokens: 0 });
    return row!;
  }

  it('no key presented → 401 missing_api_key, not logged', async () => {
    const before = (await allLogs(s)).length;
    const r = await rawRelay(s, '/chat/completions', { body: JSON.stringify(chat('chat-a')) });
    expect(r.status).toBe(401);
    expectOpenAIError(r.json, 'missing_api_key');
    expect(r.headers.get('x-request-id')).toBeTruthy();
    const m = await rawRelay(s, '/models', { method: 'GET' });
    expect(m.status).toBe(401);
    expectOpenAIError(m.json, 'missing_api_key');
    expect((await allLogs(s)).length).toBe(before);
  });

  it('malformed, unknown, deleted keys → 401 invalid_api_key (SDK AuthenticationError), never logged', async () => {
    const before = (await allLogs(s)).length;
    const wellFormedUnknown = generateKey();
    const { key, secret } = await userWithKey(s);
    const tampered = secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A');
    for (const bad of ['sk-nonsense', 'not-even-close', wellFormedUnknown, tampered]) {
      const err = await sdkError(client(s, bad).chat.completions.create(chat('chat-a')));
      expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
      expect(err.status).toBe(401);
      expect(err.code).toBe('invalid_api_key');
      expect(err.type).toBe('authentication_error');
    }
    expect((await s.api('DELETE', `/api/keys/${key.id}`)).status).toBe(200);
    const err = await sdkError(client(s, secret).chat.completions.create(chat('chat-a')));
    expect([err.status, err.code]).toEqual([401, 'invalid_api_key']);
    // Other presentation headers are checked the same way.
    const viaHeader = await rawRelay(s, '/chat/completions', {
      headers: { 'x-api-key': wellFormedUnknown },
      body: JSON.stringify(chat('chat-a')),
    });
    expect(viaHeader.status).toBe(401);
    expectOpenAIError(viaHeader.json, 'invalid_api_key');
    expect((await allLogs(s)).length, 'unknown keys leave no log rows').toBe(before);
  });

  it('disabled key → 401 key_disabled; expired key → 401 key_expired; both logged with cost 0', async () => {
    const d = await userWithKey(s);
    expect((await s.api('PATCH', `/api/keys/${d.key.id}`, { status: 'disabled' })).status).toBe(200);
    const e1 = await sdkError(client(s, d.secret).chat.completions.create(chat('chat-a')));
    expect([e1.status, e1.code]).toEqual([401, 'key_disabled']);
    expect(e1.headers?.get('x-should-retry'), 'waiting will not help').toBe('false');
    await expectRefusalLogged(d.key.id, 'key_disabled', 401, e1.requestID);

    const x = await userWithKey(s, { key: { expires_at: new Date(Date.now() - 60_000).toISOString() } });
    const e2 = await sdkError(client(s, x.secret).chat.completions.create(chat('chat-a')));
    expect([e2.status, e2.code]).toEqual([401, 'key_expired']);
    expect(e2.headers?.get('x-should-retry')).toBe('false');
    await expectRefusalLogged(x.key.id, 'key_expired', 401, e2.requestID);
  });

  it('client IP outside the allowlist → 403 ip_not_allowed (logged); inside → served', async () => {
    const { key, secret } = await userWithKey(s, { key: { allowed_ips: ['10.0.0.0/8', '2001:db8::/32'] } });
    const err = await sdkError(client(s, secret).chat.completions.create(chat('chat-a')));
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect([err.status, err.code]).toEqual([403, 'ip_not_allowed']);
    expect(err.headers?.get('x-should-retry')).toBe('false');
    await expectRefusalLogged(key.id, 'ip_not_allowed', 403, err.requestID);
    const ok = await userWithKey(s, { key: { allowed_ips: ['127.0.0.0/8'] } });
    await expect(client(s, ok.secret).chat.completions.create(chat('chat-a'))).resolves.toBeTruthy();
  });

  it('model outside the key list → 403 model_not_allowed; model not offered → 404 model_not_found; in that order', async () => {
    const { key, secret } = await userWithKey(s, { key: { models: ['chat-a'] } });
    const e1 = await sdkError(client(s, secret).chat.completions.create(chat('chat-b')));
    expect([e1.status, e1.code, e1.param]).toEqual([403, 'model_not_allowed', 'model']);
    await expectRefusalLogged(key.id, 'model_not_allowed', 403, e1.requestID);
    // An unknown model not in the key's list is refused as not allowed (list is checked first).
    const e2 = await sdkError(client(s, secret).chat.completions.create(chat('no-such-model')));
    expect([e2.status, e2.code]).toEqual([403, 'model_not_allowed']);

    const open = await userWithKey(s);
    const e3 = await sdkError(client(s, open.secret).chat.completions.create(chat('no-such-model')));
    expect(e3).toBeInstanceOf(OpenAI.NotFoundError);
    expect([e3.status, e3.code]).toEqual([404, 'model_not_found']);
    const row = await expectRefusalLogged(open.key.id, 'model_not_found', 404, e3.requestID);
    expect(row.model).toBe('no-such-model');
    const e4 = await sdkError(
      client(s, open.secret).embeddings.create({ model: 'no-such-embedder', input: 'x' }),
    );
    expect([e4.status, e4.code]).toEqual([404, 'model_not_found']);
  });

  it('a served but unpriced model is refused with a clear error (and costs nothing); priced at 0 it is served free', async () => {
    const { key, secret } = await userWithKey(s);
    const before = mock.requests.length;
    const err = await sdkError(client(s, secret).chat.completions.create(chat('unpriced-model')));
    expect(err.status).toBeGreaterThanOrEqual(400);
    expect(err.status).toBeLessThan(500);
    expect(err.code).toBe('model_not_priced');
    expect(err.message).toMatch(/pric/i);
    expect(err.message).toContain('unpriced-model');
    await expectRefusalLogged(key.id, 'model_not_priced', err.status!, err.requestID);
    expect(mock.requests.length, 'an unpriced model is never forwarded').toBe(before);

    const free = await client(s, secret).chat.completions.create(chat('free-model'));
    expect(free.usage!.completion_tokens).toBeGreaterThan(0);
    expect((await keyJson(s, key.id)).used).toBe(0);
  });

  it('key quota or account balance that cannot cover the worst case → 429 insufficient_quota + x-should-retry: false, nothing forwarded', async () => {
    const q = await userWithKey(s, { balance: 100, key: { quota: 0.000001 } });
    const upstreamBefore = mock.requests.length;
    const e1 = await sdkError(
      client(s, q.secret).chat.completions.create(chat('chat-a', { max_tokens: 1000 })),
    );
    expect(e1).toBeInstanceOf(OpenAI.RateLimitError);
    expect([e1.status, e1.code, e1.type]).toEqual([429, 'insufficient_quota', 'insufficient_quota']);
    expect(e1.headers?.get('x-should-retry')).toBe('false');
    await expectRefusalLogged(q.key.id, 'insufficient_quota', 429, e1.requestID);

    const b = await userWithKey(s, { balance: 0 });
    const e2 = await sdkError(client(s, b.secret).chat.completions.create(chat('chat-a')));
    expect([e2.status, e2.code]).toEqual([429, 'insufficient_quota']);
    expect(e2.headers?.get('x-should-retry')).toBe('false');
    await expectRefusalLogged(b.key.id, 'insufficient_quota', 429, e2.requestID);
    expect(mock.requests.length, 'refused requests never reach the upstream').toBe(upstreamBefore);
    expect((await keyJson(s, q.key.id)).used).toBe(0);
    expect(await balanceNano(s, b.user.id)).toBe(0n);
  });

  it('key rpm → 429 rate_limit_exceeded + retry-after; limits are checked before cost', async () => {
    const { key, secret } = await userWithKey(s, { key: { rpm: 2 } });
    const c = client(s, secret);
    await c.chat.completions.create(chat('chat-a'));
    await c.chat.completions.create(chat('chat-a'));
    const err = await sdkError(c.chat.completions.create(chat('chat-a')));
    expect([err.status, err.code, err.type]).toEqual([429, 'rate_limit_exceeded', 'rate_limit_error']);
    const ra = Number(err.headers?.get('retry-after'));
    expect(Number.isInteger(ra)).toBe(true);
    expect(ra).toBeGreaterThanOrEqual(1);
    expect(ra).toBeLessThanOrEqual(60);
    await expectRefusalLogged(key.id, 'rate_limit_exceeded', 429, err.requestID);

    // rpm 1 and no money: the first request fails on cost, the second on the rate limit.
    const poor = await userWithKey(s, { balance: 0, key: { rpm: 1 } });
    const p1 = await sdkError(client(s, poor.secret).chat.completions.create(chat('chat-a')));
    expect(p1.code).toBe('insufficient_quota');
    const p2 = await sdkError(client(s, poor.secret).chat.completions.create(chat('chat-a')));
    expect(p2.code).toBe('rate_limit_exceeded');
  });

  it('every upstream failed → 502 upstream_error, logged with cost 0, reservation refunded', async () => {
    const { key, user, secret } = await userWithKey(s, { balance: 3, key: { quota: 1 } });
    mock.setScenario('fail-500', { status: 500 });
    try {
      const err = await sdkError(
        client(s, secret).chat.completions.create(chat('fail-500', { max_tokens: 100 })),
      );
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      expect([err.status, err.code]).toEqual([502, 'upstream_error']);
      const row = await expectRefusalLogged(key.id, 'upstream_error', 502, err.requestID);
      expect(row.model).toBe('fail-500');
      const serr = await sdkError(
        (async () => {
          for await (const _ of await client(s, secret).chat.completions.create({
            ...chat('fail-500'),
            stream: true,
          })) {
            /* never */
          }
        })(),
      );
      expect([serr.status, serr.code]).toEqual([502, 'upstream_error']);
    } finally {
      mock.clearScenarios();
    }
    expect((await keyJson(s, key.id)).used).toBe(0);
    expect(await balanceNano(s, user.id)).toBe(3n * 1_000_000_000n);
    const k = (await (
      await fetch(s.url + '/v1/key', { headers: { authorization: `Bearer ${secret}` } })
    ).json()) as { remaining: number };
    expect(nanoOf(k.remaining)).toBe(1_000_000_000n);
  });

  it('upstream too slow to answer → 504 upstream_error, logged with cost 0', async () => {
    const { key, secret } = await userWithKey(s);
    mock.setScenario('slow-model', { firstByteDelayMs: FIRST_BYTE_MS * 3 });
    try {
      const err = await sdkError(client(s, secret).chat.completions.create(chat('slow-model')));
      expect([err.status, err.code]).toEqual([504, 'upstream_error']);
      await expectRefusalLogged(key.id, 'upstream_error', 504, err.requestID);
    } finally {
      mock.clearScenarios();
    }
    expect((await keyJson(s, key.id)).used).toBe(0);
  });

  it('body that is not JSON → 400 invalid_request; too large → 413 request_too_large; both logged for a valid key', async () => {
    const { key, secret } = await userWithKey(s);
    for (const body of ['{"model": "chat-a", "messages": [', 'null', '[1,2]', '']) {
      const r = await rawRelay(s, '/chat/completions', { key: secret, body });
      expect(r.status, body).toBe(400);
      expectOpenAIError(r.json, 'invalid_request');
    }
    const big = JSON.stringify(
      chat('chat-a', { messages: [{ role: 'user', content: 'x'.repeat(MAX_BODY * 2) }] }),
    );
    const r = await rawRelay(s, '/chat/completions', { key: secret, body: big });
    expect(r.status).toBe(413);
    expectOpenAIError(r.json, 'request_too_large');
    // Through the SDK as well.
    const e = await sdkError(
      client(s, secret).chat.completions.create(
        chat('chat-a', { messages: [{ role: 'user', content: 'y'.repeat(MAX_BODY * 2) }] }),
      ),
    );
    expect([e.status, e.code]).toEqual([413, 'request_too_large']);
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows.map((x) => x.error_code).sort()).toEqual([
      'invalid_request',
      'invalid_request',
      'invalid_request',
      'invalid_request',
      'request_too_large',
      'request_too_large',
    ]);
    for (const x of rows) expect(x.cost).toBe(0);
  });

  it('the key is checked before the body: a bad key with a bad or huge body is still a 401', async () => {
    const bad = await rawRelay(s, '/chat/completions', { key: 'sk-nonsense', body: '{oops' });
    expect(bad.status).toBe(401);
    expectOpenAIError(bad.json, 'invalid_api_key');
    const huge = await rawRelay(s, '/chat/completions', { body: 'z'.repeat(MAX_BODY * 4) });
    expect(huge.status).toBe(401);
    expectOpenAIError(huge.json, 'missing_api_key');
    // A disabled key with a model it may not use: the key check answers.
    const d = await userWithKey(s, { key: { models: ['chat-a'] } });
    await s.api('PATCH', `/api/keys/${d.key.id}`, { status: 'disabled' });
    const e = await sdkError(client(s, d.secret).chat.completions.create(chat('chat-b')));
    expect(e.code).toBe('key_disabled');
  });
});
