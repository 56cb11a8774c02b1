// Periodic budgets (contract §7) on keys, accounts and as a group default: exact admission
// under a burst, the 429 budget_exceeded answer (which the openai SDK must not retry), resets
// at each period boundary on the injected clock, threshold events once per period, spend that
// survives a restart, GET /v1/key `limits.budget`, and 422 limit_above_group.
import http from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  backends,
  pgUrl,
  redisUrl,
  startTestServer,
  type TestServer,
  userWithKey,
} from '../helpers/server.js';
import { offerMockModel } from '../helpers/priced-model.js';
import { uniq } from '../relay/relay-helpers.js';

// Input is free and output costs 1 USD per 1M tokens; the mock answers min(max_tokens, 12)
// tokens, so with max_tokens 5 a request's real cost equals its worst case: 5000 nano-USD.
const MAX_TOKENS = 5;
const COST = 5_000; // nano-USD
const usd = (nano: number) => nano / 1e9;

async function chat(s: TestServer, secret: string, headers: Record<string, string> = {}) {
  const r = await fetch(`${s.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({
      model: 'mole-mini',
      messages: [{ role: 'user', content: 'dig' }],
      max_tokens: MAX_TOKENS,
    }),
  });
  const body = (await r.json()) as { error?: { code: string; message: string; type: string } };
  return { status: r.status, body, headers: r.headers };
}

/** Moves the server's clock to `iso` (which must be ahead of it). */
function moveTo(s: TestServer, iso: string) {
  const ms = Date.parse(iso) - s.clock.now();
  if (ms < 0) throw new Error(`${iso} is in the clock's past`);
  s.clock.advance(ms);
}

async function budgetEvents(s: TestServer, userId: number) {
  const page = await s.services.events.list({ limit: 100, userId, type: 'budget.threshold' });
  return page.data;
}

/** Spend while a key's budget was off counts once it is set again in the same period. */
async function spendWhileOffCounts(s: TestServer) {
  const budget = { amount: usd(10 * COST), period: 'daily' as const };
  const { key, secret } = await userWithKey(s, { key: { budget } });
  const remaining = async () => {
    const r = await fetch(`${s.url}/v1/key`, { headers: { authorization: `Bearer ${secret}` } });
    return ((await r.json()) as { limits: { budget: { remaining: number } } }).limits.budget.remaining;
  };
  for (let i = 0; i < 2; i++) expect((await chat(s, secret)).status).toBe(200);
  await s.api('PATCH', `/api/keys/${key.id}`, { budget: null });
  for (let i = 0; i < 3; i++) expect((await chat(s, secret)).status).toBe(200);
  // Some written before the budget comes back, some after.
  await s.services.flush();
  expect((await chat(s, secret)).status).toBe(200);
  await s.api('PATCH', `/api/keys/${key.id}`, { budget });
  expect(await remaining()).toBe(usd(4 * COST));
  await s.services.flush();
  expect(await remaining()).toBe(usd(4 * COST));
  const results = [];
  for (let i = 0; i < 6; i++) results.push((await chat(s, secret)).status);
  expect(results).toEqual([200, 200, 200, 200, 429, 429]);
  await s.services.flush();
  expect(await remaining()).toBe(0);
}

/** A budget's period changed and changed back keeps counting the spend in between. */
async function periodChangedAndBack(s: TestServer) {
  const daily = { amount: usd(10 * COST), period: 'daily' as const };
  const { key, secret } = await userWithKey(s, { key: { budget: daily } });
  expect((await chat(s, secret)).status).toBe(200);
  await s.api('PATCH', `/api/keys/${key.id}`, { budget: { ...daily, period: 'monthly' } });
  for (let i = 0; i < 4; i++) expect((await chat(s, secret)).status).toBe(200);
  await s.api('PATCH', `/api/keys/${key.id}`, { budget: daily });
  await s.services.flush();
  const results = [];
  for (let i = 0; i < 6; i++) results.push((await chat(s, secret)).status);
  expect(results).toEqual([200, 200, 200, 200, 200, 429]);
}

describe.each(backends())('periodic budgets (%s)', (backend) => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ backend, keep: true });
    await offerMockModel(s, { input: 0, output: 1 });
  });
  afterAll(async () => {
    await s?.close();
  });
  // A test's requests and the reads after them must share one budget period: a UTC day, week or
  // month starting between them (or just after a moveTo) would start its spend afresh.
  beforeEach(() => s.clock.freeze());

  it('admits exactly what a key budget covers under a burst of parallel requests, none over', async () => {
    const { key, secret } = await userWithKey(s, {
      key: { budget: { amount: usd(10 * COST), period: 'daily' } },
    });
    expect(key.budget).toEqual({ amount: usd(10 * COST), period: 'daily' });
    const answers = await Promise.all(Array.from({ length: 40 }, () => chat(s, secret)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(10);
    const refused = answers.filter((a) => a.status !== 200);
    expect(refused).toHaveLength(30);
    for (const a of refused) {
      expect(a.status).toBe(429);
      expect(a.body.error!.code).toBe('budget_exceeded');
      expect(a.headers.get('x-should-retry')).toBe('false');
    }
    const got = await s.api('GET', `/api/keys/${key.id}`);
    expect(got.body.used).toBe(usd(10 * COST));
    expect(got.body.budget_usage).toMatchObject({ spent: usd(10 * COST), remaining: 0, period: 'daily' });
  });

  it('an account budget holds across its keys; the message names the budget and its reset', async () => {
    const { user, secret } = await userWithKey(s);
    const patched = await s.api('PATCH', `/api/users/${user.id}`, {
      budget: { amount: usd(4 * COST), period: 'weekly' },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body.budget).toEqual({ amount: usd(4 * COST), period: 'weekly' });
    const second = await s.api('POST', '/api/keys', { name: 'second', user_id: user.id });
    const secrets = [secret, second.body.key as string];
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => chat(s, secrets[i % 2]!)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(4);
    const refusal = answers.find((a) => a.status === 429)!;
    expect(refusal.body.error!.code).toBe('budget_exceeded');
    expect(refusal.body.error!.message).toMatch(/account's weekly budget/);
    expect(refusal.body.error!.message).toMatch(/resets at \d{4}-\d\d-\d\dT00:00:00\.000Z/);
    const u = await s.api('GET', `/api/users/${user.id}`);
    expect(u.body.budget_usage).toMatchObject({ spent: usd(4 * COST), remaining: 0 });
  });

  it('a group default budget applies to each key of the group; a key may not exceed it (422)', async () => {
    const group = uniq('bg');
    const g = await s.api('PUT', `/api/groups/${group}`, {
      budget: { amount: usd(3 * COST), period: 'daily' },
    });
    expect(g.status, JSON.stringify(g.body)).toBe(200);
    expect(g.body).toMatchObject({
      name: group,
      multiplier: 1,
      budget: { amount: usd(3 * COST), period: 'daily' },
    });
    // The mock channel serves every group.
    const { user, key, secret } = await userWithKey(s, { group });
    const answers = await Promise.all(Array.from({ length: 10 }, () => chat(s, secret)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(3);
    expect(answers.find((a) => a.status === 429)!.body.error!.message).toMatch(/group default daily budget/);

    const above = await s.api('PATCH', `/api/keys/${key.id}`, {
      budget: { amount: usd(4 * COST), period: 'daily' },
    });
    expect(above.status).toBe(422);
    expect(above.body.error.code).toBe('limit_above_group');
    const created = await s.api('POST', '/api/keys', {
      name: 'too-big',
      user_id: user.id,
      budget: { amount: usd(3 * COST + 1), period: 'daily' },
    });
    expect(created.status).toBe(422);
    expect(created.body.error.code).toBe('limit_above_group');
    const within = await s.api('PATCH', `/api/keys/${key.id}`, {
      budget: { amount: usd(2 * COST), period: 'daily' },
    });
    expect(within.status).toBe(200);
    // The multiplier survives a budget-only change.
    const groups = await s.api('GET', '/api/groups');
    expect(groups.body.data.find((x: { name: string }) => x.name === group).multiplier).toBe(1);
  });

  it('the openai SDK does not retry a budget refusal (one request reaches the server)', async () => {
    const { secret } = await userWithKey(s, { key: { budget: { amount: 0, period: 'monthly' } } });
    let seen = 0;
    // A counting proxy in front of the gateway: every request the SDK sends passes here.
    const proxy = http.createServer((req, res) => {
      seen++;
      const up = http.request(`${s.url}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode!, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (proxy.address() as { port: number }).port;
      const sdk = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: secret, maxRetries: 2 });
      const err = await sdk.chat.completions
        .create({ model: 'mole-mini', messages: [{ role: 'user', content: 'dig' }], max_tokens: MAX_TOKENS })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      expect((err as InstanceType<typeof OpenAI.RateLimitError>).code).toBe('budget_exceeded');
      expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('x-should-retry')).toBe(
        'false',
      );
      expect(seen).toBe(1);
    } finally {
      await new Promise((r) => proxy.close(r));
    }
  });

  it('GET /v1/key shows limits.budget: limit, remaining, resets_at', async () => {
    const { secret } = await userWithKey(s, {
      key: { budget: { amount: usd(10 * COST), period: 'weekly' } },
    });
    expect((await chat(s, secret)).status).toBe(200);
    const r = await fetch(`${s.url}/v1/key`, { headers: { authorization: `Bearer ${secret}` } });
    const body = (await r.json()) as { limits: { budget: Record<string, unknown> } };
    expect(body.limits.budget).toMatchObject({
      limit: usd(10 * COST),
      remaining: usd(9 * COST),
      period: 'weekly',
    });
    const resets = Date.parse(body.limits.budget.resets_at as string);
    expect(new Date(resets).getUTCDay()).toBe(1); // a Monday
    expect(new Date(resets).toISOString()).toMatch(/T00:00:00\.000Z$/);
    expect(resets).toBeGreaterThan(s.clock.now());
  });

  it('spend while a budget was off still counts when it is set again in the period', () =>
    spendWhileOffCounts(s));

  it('a budget period changed and changed back keeps counting the spend in between', () =>
    periodChangedAndBack(s));

  it('resets at each period boundary: a day, a week on Monday, a month on the 1st', async () => {
    const daily = await userWithKey(s, { key: { budget: { amount: usd(COST), period: 'daily' } } });
    const weekly = await userWithKey(s, { key: { budget: { amount: usd(COST), period: 'weekly' } } });
    const monthly = await userWithKey(s, { key: { budget: { amount: usd(COST), period: 'monthly' } } });
    const status = async (k: { secret: string }) => (await chat(s, k.secret)).status;

    // Sunday 2031-02-23, one minute before midnight (later than any real "now" of this suite).
    moveTo(s, '2031-02-23T23:59:00Z');
    for (const k of [daily, weekly, monthly]) expect(await status(k)).toBe(200);
    for (const k of [daily, weekly, monthly]) expect(await status(k)).toBe(429);
    // Monday 00:00: a new day and a new week, the same month.
    moveTo(s, '2031-02-24T00:00:00Z');
    expect(await status(daily)).toBe(200);
    expect(await status(weekly)).toBe(200);
    expect(await status(monthly)).toBe(429);
    // Tuesday: a new day only.
    moveTo(s, '2031-02-25T00:00:00Z');
    expect(await status(daily)).toBe(200);
    expect(await status(weekly)).toBe(429);
    // February 2031 has 28 days: the month resets on March 1st (a Saturday), the week does not.
    moveTo(s, '2031-02-28T23:59:59Z');
    expect(await status(monthly)).toBe(429);
    moveTo(s, '2031-03-01T00:00:00Z');
    expect(await status(monthly)).toBe(200);
    expect(await status(weekly)).toBe(429);
    expect(await status(daily)).toBe(200);
  });

  it('raises budget.threshold once per threshold per period, for the key and the account', async () => {
    const { user, key, secret } = await userWithKey(s, {
      key: { budget: { amount: usd(10 * COST), period: 'daily' }, alert_thresholds: [0.5, 1] },
    });
    const u = await s.api('PATCH', `/api/users/${user.id}`, {
      budget: { amount: usd(25 * COST), period: 'monthly' },
      alert_thresholds: [0.4],
    });
    expect(u.body.alert_thresholds).toEqual([0.4]);
    moveTo(s, '2031-06-10T08:00:00Z');
    for (let i = 0; i < 12; i++) await chat(s, secret);
    await expect.poll(async () => (await budgetEvents(s, user.id)).length).toBe(3);
    const events = await budgetEvents(s, user.id);
    const byKey = events.filter((e) => e.key_id === key.id).map((e) => e.data.threshold);
    expect(byKey.sort()).toEqual([0.5, 1]);
    const account = events.filter((e) => e.key_id === null);
    expect(account.map((e) => e.data.threshold)).toEqual([0.4]);
    expect(account[0]!.data).toMatchObject({ scope: 'account', period: 'monthly', limit: usd(25 * COST) });
    // The next day the key's budget starts again, and so do its thresholds.
    moveTo(s, '2031-06-11T00:00:00Z');
    for (let i = 0; i < 5; i++) await chat(s, secret);
    await expect.poll(async () => (await budgetEvents(s, user.id)).length).toBe(4);
    const next = (await budgetEvents(s, user.id)).filter(
      (e) => e.data.period_start === '2031-06-11T00:00:00.000Z',
    );
    expect(next.map((e) => e.data.threshold)).toEqual([0.5]);
  });

  it('a refusal announces the 100% threshold once when spend stopped short of the budget', async () => {
    const { user, key, secret } = await userWithKey(s, {
      key: { budget: { amount: usd(2 * COST + COST / 2), period: 'daily' } },
    });
    moveTo(s, '2031-06-12T08:00:00Z');
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await chat(s, secret)).status);
    expect(codes).toEqual([200, 200, 429, 429, 429]);
    await expect.poll(async () => (await budgetEvents(s, user.id)).length).toBe(2);
    const events = await budgetEvents(s, user.id);
    expect(events.map((e) => [e.key_id, e.data.threshold]).sort()).toEqual([
      [key.id, 0.8],
      [key.id, 1],
    ]);
    expect(events.find((e) => e.data.threshold === 1)!.data).toMatchObject({
      refused: true,
      spent: usd(2 * COST),
    });
  });

  it("keeps a period's spend across a restart", async () => {
    const { key, secret } = await userWithKey(s, {
      key: { budget: { amount: usd(3 * COST), period: 'monthly' } },
    });
    moveTo(s, '2031-07-15T00:00:00Z');
    for (let i = 0; i < 2; i++) expect((await chat(s, secret)).status).toBe(200);
    const offset = s.clock.now() - Date.now();
    await s.close();
    s = await startTestServer({ restartOf: s });
    s.clock.advance(offset + 60_000);
    expect((await chat(s, secret)).status).toBe(200);
    expect((await chat(s, secret)).status).toBe(429);
    const got = await s.api('GET', `/api/keys/${key.id}`);
    expect(got.body.budget_usage).toMatchObject({ spent: usd(3 * COST), remaining: 0 });
  });
});

// With Redis the shared counter counts only while a budget is in force; each instance's own
// count (which counts all the time) raises it when the budget is back.
describe.skipIf(!pgUrl() || !redisUrl())('periodic budgets switched off and on (postgres + redis)', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ backend: 'postgres', redis: true, keep: true });
    await offerMockModel(s, { input: 0, output: 1 });
  });
  afterAll(async () => {
    await s?.close();
  });
  beforeEach(() => s.clock.freeze());

  it('spend while a budget was off still counts when it is set again in the period', () =>
    spendWhileOffCounts(s));

  it('a budget period changed and changed back keeps counting the spend in between', () =>
    periodChangedAndBack(s));
});
