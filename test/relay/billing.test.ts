// Exact billing, on SQLite and PostgreSQL: every logged cost equals the upstream's usage ×
// the prices set × the group multiplier to the nano-USD (expected values computed here in
// BigInt from the mock's usage, independently of the gateway); after a mixed run the key's
// `used` and the account's balance moved by exactly the sum of logged costs, and /api/usage
// agrees with the logs. Then bursts: 30 concurrent requests against a key quota, and against
// an account balance shared by two keys, that cover exactly three worst cases.
import { beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { backends, redisUrl, userWithKey, type TestServer } from '../helpers/server.js';
import { relaySuite } from '../helpers/relay-suite.js';
import { countChatPromptTokens, countTextTokens, type MockProvider } from '../mock-provider/server.js';
import { countChatPrompt } from '../../src/relay/tokens.js';
import {
  allLogs,
  balanceNano,
  client,
  expectedCostNano,
  keyJson,
  NANO,
  nanoOf,
  sdkError,
  setGroup,
  sumCost,
  type LogRow,
  type PriceUsd,
  type UsageCount,
} from './relay-helpers.js';

const MULT = 1.5;
const PRICES: Record<string, PriceUsd> = {
  'mx-chat': { input: 2.5, output: 10, cached_input: 1.25 },
  'mx-cmp': { input: 0.3, output: 0.9 }, // no cached price: cached tokens bill at the input price
  'mx-emb': { input: 0.13, output: 0 },
  'mx-odd': { input: 0.000001, output: 0.000003 }, // sub-nano per token: rounding up must hold exactly
  'mx-fail': { input: 1, output: 1 },
};

describe.each(backends())('exact billing (%s)', (backend) => {
  let s: TestServer;
  let mock: MockProvider;

  relaySuite({ backend }, { apiKey: 'billing-upstream', prices: PRICES }, (started) => {
    ({ s, mock } = started);
  });
  beforeAll(async () => {
    await setGroup(s, 'gold', MULT);
  });

  it('a mixed run: each logged cost = usage × price × 1.5 to the nano-USD; key used and balance moved by the sum of logs; usage totals agree', async () => {
    const BALANCE = 50;
    const QUOTA = 20;
    const { key, user, secret } = await userWithKey(s, {
      balance: BALANCE,
      group: 'gold',
      key: { quota: QUOTA },
    });
    const c = client(s, secret);
    mock.setScenario('mx-chat', { cachedTokens: 6 });
    mock.setScenario('mx-cmp', { cachedTokens: 2 });
    /** request id → the usage the mock reported (computed here from its documented rules). */
    const expected = new Map<string, { model: string; usage: UsageCount }>();

    // chat, plain, several sizes
    for (const [i, maxTokens] of [3, 9, 16, 40].entries()) {
      const messages = [
        { role: 'system' as const, content: 'Be brief.' },
        { role: 'user' as const, content: `question number ${i}: ${'why '.repeat(i * 7)}` },
      ];
      const { data, response } = await c.chat.completions
        .create({ model: 'mx-chat', messages, max_tokens: maxTokens })
        .withResponse();
      const prompt = countChatPromptTokens(messages);
      const usage = { prompt, cached: Math.min(6, prompt), completion: Math.min(16, maxTokens) };
      expect(data.usage).toMatchObject({
        prompt_tokens: usage.prompt,
        completion_tokens: usage.completion,
        prompt_tokens_details: { cached_tokens: usage.cached },
      });
      expected.set(response.headers.get('x-request-id')!, { model: 'mx-chat', usage });
    }
    // chat, streams with and without include_usage
    for (const includeUsage of [false, true]) {
      const messages = [{ role: 'user' as const, content: `stream, include_usage=${includeUsage}` }];
      const { data: stream, response } = await c.chat.completions
        .create({
          model: 'mx-chat',
          messages,
          stream: true,
          max_completion_tokens: 11,
          ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
        })
        .withResponse();
      let contentChunks = 0;
      for await (const ch of stream) if (ch.choices[0]?.delta?.content) contentChunks++;
      expect(contentChunks).toBe(11);
      const prompt = countChatPromptTokens(messages);
      expected.set(response.headers.get('x-request-id')!, {
        model: 'mx-chat',
        usage: { prompt, cached: Math.min(6, prompt), completion: 11 },
      });
    }
    // completions, plain and stream; cached tokens bill at the input price here
    for (const stream of [false, true]) {
      const prompt = `complete this ${stream ? 'streamed' : 'plain'} sentence about burrows`;
      const p = countTextTokens(prompt);
      if (stream) {
        const { data, response } = await c.completions
          .create({ model: 'mx-cmp', prompt, max_tokens: 12, stream: true })
          .withResponse();
        for await (const _ of data) {
          /* drain */
        }
        expected.set(response.headers.get('x-request-id')!, {
          model: 'mx-cmp',
          usage: { prompt: p, cached: Math.min(2, p), completion: 12 },
        });
      } else {
        const { response } = await c.completions
          .create({ model: 'mx-cmp', prompt, max_tokens: 12 })
          .withResponse();
        expected.set(response.headers.get('x-request-id')!, {
          model: 'mx-cmp',
          usage: { prompt: p, cached: Math.min(2, p), completion: 12 },
        });
      }
    }
    // embeddings (SDK default base64)
    {
      const input = ['one vector', 'two vectors please', 'three'];
      const { response } = await c.embeddings.create({ model: 'mx-emb', input }).withResponse();
      expected.set(response.headers.get('x-request-id')!, {
        model: 'mx-emb',
        usage: { prompt: input.reduce((a, x) => a + countTextTokens(x), 0), completion: 0 },
      });
    }
    // tiny prices: each request costs a fraction of a nano-USD per token, rounded up once
    {
      const messages = [{ role: 'user' as const, content: 'tiny' }];
      const { response } = await c.chat.completions
        .create({ model: 'mx-odd', messages, max_tokens: 5 })
        .withResponse();
      expected.set(response.headers.get('x-request-id')!, {
        model: 'mx-odd',
        usage: { prompt: countChatPromptTokens(messages), completion: 5 },
      });
    }
    // failures and refusals cost nothing
    mock.setScenario('mx-fail', { status: 503 });
    const failed = await sdkError(
      c.chat.completions.create({ model: 'mx-fail', messages: [{ role: 'user', content: 'x' }] }),
    );
    expect(failed.status).toBe(502);
    const refused = await sdkError(
      c.chat.completions.create({ model: 'not-served', messages: [{ role: 'user', content: 'x' }] }),
    );
    expect(refused.status).toBe(404);
    mock.clearScenarios();

    // The key's own view (a logged relay request too, at cost 0).
    const kv = (await (
      await fetch(s.url + '/v1/key', { headers: { authorization: `Bearer ${secret}` } })
    ).json()) as { used: number; remaining: number };

    const rows = await allLogs(s, { key_id: key.id });
    expect(rows).toHaveLength(expected.size + 3);
    for (const row of rows) {
      const e = expected.get(row.request_id);
      if (!e) {
        expect(row.status === 200 ? row.endpoint : row.error_code).toMatch(
          row.status === 200 ? /^\/v1\/key$/ : /^(upstream_error|model_not_found)$/,
        );
        expect(row.cost).toBe(0);
        continue;
      }
      expect(row.model).toBe(e.model);
      expect(row.estimated, row.request_id).toBe(false);
      expect({
        prompt: row.prompt_tokens,
        cached: row.cached_tokens,
        completion: row.completion_tokens,
      }).toEqual({ prompt: e.usage.prompt, cached: e.usage.cached ?? 0, completion: e.usage.completion });
      const want = expectedCostNano(e.usage, PRICES[e.model]!, MULT);
      expect(nanoOf(row.cost), `${row.model} ${row.request_id}`).toBe(want);
      expect(want).toBeGreaterThan(0n);
    }
    // Cached pricing really applied: the same usage at the plain input price would cost more.
    const cachedRow = rows.find((r) => r.model === 'mx-chat' && r.cached_tokens > 0)!;
    expect(nanoOf(cachedRow.cost)).toBeLessThan(
      expectedCostNano(
        { prompt: cachedRow.prompt_tokens, completion: cachedRow.completion_tokens },
        PRICES['mx-chat']!,
        MULT,
      ),
    );

    const total = sumCost(rows);
    expect(total).toBeGreaterThan(0n);
    expect(nanoOf((await keyJson(s, key.id)).used)).toBe(total);
    expect(BigInt(BALANCE) * NANO - (await balanceNano(s, user.id))).toBe(total);
    expect(nanoOf(kv.used)).toBe(total);
    expect(nanoOf(kv.remaining)).toBe(BigInt(QUOTA) * NANO - total);

    // /api/usage agrees with the logs, grouped by key, by model and by day.
    const byKey = (await s.api('GET', `/api/usage?group_by=key&key_id=${key.id}`)).body.data;
    expect(byKey).toHaveLength(1);
    expect(byKey[0]).toMatchObject({
      key_id: key.id,
      requests: rows.length,
      prompt_tokens: rows.reduce((a, r) => a + r.prompt_tokens, 0),
      completion_tokens: rows.reduce((a, r) => a + r.completion_tokens, 0),
    });
    expect(nanoOf(byKey[0].cost)).toBe(total);
    const byModel = (await s.api('GET', `/api/usage?group_by=model&key_id=${key.id}`)).body.data as Array<{
      model: string;
      cost: number;
      requests: number;
    }>;
    for (const m of byModel) {
      const mine = rows.filter((r) => r.model === m.model);
      expect(m.requests, m.model).toBe(mine.length);
      expect(nanoOf(m.cost), m.model).toBe(sumCost(mine));
    }
    expect(byModel.reduce((a, m) => a + nanoOf(m.cost), 0n)).toBe(total);
    const byDay = (await s.api('GET', `/api/usage?group_by=day&key_id=${key.id}`)).body.data as Array<{
      cost: number;
      requests: number;
    }>;
    expect(byDay.reduce((a, d) => a + nanoOf(d.cost), 0n)).toBe(total);
    expect(byDay.reduce((a, d) => a + d.requests, 0)).toBe(rows.length);
    const totals = (await s.api('GET', `/api/logs?key_id=${key.id}&totals=1&limit=1`)).body.totals;
    expect(totals.requests).toBe(rows.length);
    expect(nanoOf(totals.cost)).toBe(total);
  });

  it('account balance equals the sum of logs across several keys of one user', async () => {
    const { user, secret } = await userWithKey(s, { balance: 7 });
    const k2 = await s.api('POST', '/api/keys', { name: 'second', user_id: user.id });
    const secrets = [secret, k2.body.key as string];
    for (let i = 0; i < 6; i++) {
      await client(s, secrets[i % 2]!).chat.completions.create({
        model: 'mx-chat',
        messages: [{ role: 'user', content: `round ${i}` }],
        max_tokens: 4 + i,
      });
    }
    const rows = await allLogs(s, { user_id: user.id });
    expect(rows).toHaveLength(6);
    const total = sumCost(rows);
    for (const r of rows)
      expect(nanoOf(r.cost)).toBe(
        expectedCostNano(
          { prompt: r.prompt_tokens, cached: r.cached_tokens, completion: r.completion_tokens },
          PRICES['mx-chat']!,
          1,
        ),
      );
    expect(7n * NANO - (await balanceNano(s, user.id))).toBe(total);
    const perKey = await Promise.all(
      rows
        .map((r) => r.key_id)
        .filter((v, i, a) => a.indexOf(v) === i)
        .map(async (id) => nanoOf((await keyJson(s, id)).used)),
    );
    expect(perKey.reduce((a, b) => a + b, 0n)).toBe(total);
  });
});

// ── bursts: concurrency can never spend past a key quota or an account balance ─────────────
// The shared (Redis) ledger is for several instances on one PostgreSQL database; its Redis
// names are scoped by the PostgreSQL schema, so it is exercised on PostgreSQL only.
const burstCases = backends().flatMap(
  (b) =>
    (b === 'postgres' && redisUrl()
      ? [
          [b, 'memory'],
          [b, 'redis'],
        ]
      : [[b, 'memory']]) as Array<[typeof b, 'memory' | 'redis']>,
);

describe.each(burstCases)('burst admission (%s, %s ledger)', (backend, ledger) => {
  let s: TestServer;
  let mock: MockProvider;
  const PRICE = { input: 3, output: 15 };
  const MAX_TOKENS = 50;
  const messages = [{ role: 'user' as const, content: 'burst request with a fixed prompt' }];

  relaySuite({ backend, redis: ledger === 'redis' }, { prices: { burst: PRICE } }, (started) => {
    ({ s, mock } = started);
  });
  beforeAll(async () => {
    await setGroup(s, 'burst-gold', MULT);
    // Slow first byte: all 30 reservations are taken before any request settles. Every answer
    // uses exactly max_tokens, so a settled request costs its full reservation.
    mock.setScenario('burst', { firstByteDelayMs: 300, completionTokens: MAX_TOKENS });
  });

  /** The reservation the gateway takes: local prompt count + max_tokens, priced, multiplied, rounded up. */
  const worstCase = (mult: number) =>
    expectedCostNano({ prompt: countChatPrompt(messages), completion: MAX_TOKENS }, PRICE, mult);
  const usd = (nano: bigint) => Number(nano) / 1e9;

  async function fire(secrets: string[], n: number) {
    const results = await Promise.allSettled(
      Array.from({ length: n }, (_, i) => {
        const c = client(s, secrets[i % secrets.length]!);
        if (i % 2 === 0)
          return c.chat.completions.create({ model: 'burst', messages, max_tokens: MAX_TOKENS });
        return (async () => {
          for await (const _ of await c.chat.completions.create({
            model: 'burst',
            messages,
            max_tokens: MAX_TOKENS,
            stream: true,
          })) {
            /* drain */
          }
        })();
      }),
    );
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    const errors = results
      .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      .map((r) => r.reason);
    for (const e of errors) {
      expect(e).toBeInstanceOf(OpenAI.RateLimitError);
      expect((e as InstanceType<typeof OpenAI.APIError>).code).toBe('insufficient_quota');
    }
    return { ok, refused: errors.length };
  }

  it('30 concurrent requests on a key whose quota covers exactly 3 worst cases: at most 3 succeed, never overspent', async () => {
    const worst = worstCase(1);
    // Sanity: the mock's prompt count is the gateway's local count, so a request costs exactly its hold.
    expect(countChatPromptTokens(messages)).toBe(countChatPrompt(messages));
    const quota = 3n * worst;
    const { key, secret } = await userWithKey(s, { balance: 1000, key: { quota: usd(quota) } });
    expect(nanoOf((await keyJson(s, key.id)).quota!)).toBe(quota);
    const { ok, refused } = await fire([secret], 30);
    expect(ok).toBeLessThanOrEqual(3);
    expect(ok).toBe(3);
    expect(refused).toBe(27);
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows).toHaveLength(30);
    expect(rows.filter((r) => r.status === 200)).toHaveLength(ok);
    const refusedRows = rows.filter((r: LogRow) => r.error_code === 'insufficient_quota');
    expect(refusedRows).toHaveLength(27);
    for (const r of refusedRows) expect([r.status, r.cost]).toEqual([429, 0]);
    const used = nanoOf((await keyJson(s, key.id)).used);
    expect(used).toBe(sumCost(rows));
    expect(used).toBeLessThanOrEqual(quota);
    expect(used).toBe(3n * worst);
    expect((await keyJson(s, key.id)).status).toBe('exhausted');
    // Nothing more gets through.
    const again = await sdkError(
      client(s, secret).chat.completions.create({ model: 'burst', messages, max_tokens: 1 }),
    );
    expect(again.code).toBe('insufficient_quota');
  });

  it('30 concurrent requests over two keys sharing an account balance that covers exactly 3 worst cases (1.5× group)', async () => {
    const worst = worstCase(MULT);
    const balance = 3n * worst;
    const { user, secret } = await userWithKey(s, { balance: usd(balance), group: 'burst-gold' });
    const k2 = await s.api('POST', '/api/keys', { name: 'second', user_id: user.id });
    expect(await balanceNano(s, user.id)).toBe(balance);
    const { ok, refused } = await fire([secret, k2.body.key], 30);
    expect(ok).toBeLessThanOrEqual(3);
    expect(ok).toBe(3);
    expect(refused).toBe(27);
    const rows = await allLogs(s, { user_id: user.id });
    expect(rows).toHaveLength(30);
    const spent = sumCost(rows);
    expect(spent).toBe(3n * worst);
    const after = await balanceNano(s, user.id);
    expect(after).toBeGreaterThanOrEqual(0n);
    expect(balance - after).toBe(spent);
  });
});

// ── the worst case when the client sets no max_tokens ───────────────────────────────────────
describe.each(backends())('admission without max_tokens (%s)', (backend) => {
  let s: TestServer;
  let mock: MockProvider;
  const PRICE = { input: 1, output: 10 };
  const DEFAULT_CAP = 50;
  const messages = [{ role: 'user' as const, content: 'no max_tokens here' }];

  relaySuite(
    { backend, env: { MOLE_DEFAULT_MAX_OUTPUT_TOKENS: String(DEFAULT_CAP) } },
    { prices: { nocap: PRICE } },
    (started) => {
      ({ s, mock } = started);
    },
  );

  it('the configured default output cap is the worst case: a quota below it refuses the request', async () => {
    const worst = expectedCostNano({ prompt: countChatPrompt(messages), completion: DEFAULT_CAP }, PRICE);
    const { key, secret } = await userWithKey(s, { key: { quota: Number(worst - 1n) / 1e9 } });
    const err = await sdkError(client(s, secret).chat.completions.create({ model: 'nocap', messages }));
    expect(err.code).toBe('insufficient_quota');
    expect((await keyJson(s, key.id)).used).toBe(0);
  });

  // With no max_tokens, admission assumes the default output cap; the relay sends that cap
  // upstream, so a long answer stops there and spend stays within the hold (and the quota).
  // (An upstream that ignores the cap is covered in src/billing/ledger.test.ts: the charge
  // then stops at what the quota and balance still cover.)
  it('spend never passes the key quota, even when the answer would be longer than the default cap', async () => {
    mock.setScenario('nocap', { completionTokens: DEFAULT_CAP * 4 });
    const worst = expectedCostNano({ prompt: countChatPrompt(messages), completion: DEFAULT_CAP }, PRICE);
    const { key, secret } = await userWithKey(s, { key: { quota: Number(worst) / 1e9 } });
    const r = await client(s, secret).chat.completions.create({ model: 'nocap', messages });
    expect((mock.requests.at(-1)!.body as { max_completion_tokens?: number }).max_completion_tokens).toBe(
      DEFAULT_CAP,
    );
    expect(r.usage!.completion_tokens).toBe(DEFAULT_CAP);
    expect(nanoOf((await keyJson(s, key.id)).used)).toBeLessThanOrEqual(worst);
  });
});

// ── legacy completions: each prompt of a list is answered n times, best_of candidates billed ─
describe.each(backends())('legacy completions with several prompts, n and best_of (%s)', (backend) => {
  let s: TestServer;
  let mock: MockProvider;
  // Output only: a worst case is its output tokens × 10 USD per 1M.
  const PRICE = { input: 0, output: 10 };
  const outputUsd = (tokens: number) => (tokens * PRICE.output) / 1e6;

  relaySuite({ backend }, { prices: { multi: PRICE } }, (started) => {
    ({ s, mock } = started);
  });
  beforeAll(() => mock.setScenario('multi', { completionTokens: 16 }));

  it('admission holds every prompt × n × best_of worst case; billing counts every token produced', async () => {
    // The quota covers 100 output tokens.
    const { key, secret } = await userWithKey(s, { key: { quota: outputUsd(100) } });
    const c = client(s, secret);
    const prompts = (k: number) => Array.from({ length: k }, (_, i) => `prompt ${i}`);

    // 10 prompts × 16 tokens: 160 is past the quota, though one prompt's 16 is not.
    const refused = await sdkError(
      c.completions.create({ model: 'multi', prompt: prompts(10), max_tokens: 16 }),
    );
    expect(refused.code).toBe('insufficient_quota');
    // 2 prompts × best_of 4 × 16 = 128: the candidates count, though one answer per prompt comes back.
    const bestOf = await sdkError(
      c.completions.create({ model: 'multi', prompt: prompts(2), max_tokens: 16, best_of: 4 }),
    );
    expect(bestOf.code).toBe('insufficient_quota');
    expect((await keyJson(s, key.id)).used).toBe(0);

    // 3 prompts × n 2 × 16 = 96 fits, and all 96 produced tokens are billed.
    const r = await c.completions.create({ model: 'multi', prompt: prompts(3), max_tokens: 16, n: 2 });
    expect(r.choices).toHaveLength(6);
    expect(r.usage!.completion_tokens).toBe(96);
    // One prompt as token ids is one prompt: 16 tokens fit in the 4 left.
    const ids = await sdkError(c.completions.create({ model: 'multi', prompt: [1, 2, 3], max_tokens: 16 }));
    expect(ids.code).toBe('insufficient_quota');
    const ok = await c.completions.create({ model: 'multi', prompt: [1, 2, 3], max_tokens: 4 });
    expect(ok.usage!.completion_tokens).toBe(4);

    const rows = (await allLogs(s, { key_id: key.id })).filter((x) => x.status === 200);
    expect(rows.map((x) => x.completion_tokens).sort((a, b) => a - b)).toEqual([4, 96]);
    expect(nanoOf((await keyJson(s, key.id)).used)).toBe(nanoOf(outputUsd(100)));
  });

  it('best_of candidates are billed: the log holds the usage the upstream reported', async () => {
    const { key, secret } = await userWithKey(s);
    const r = await client(s, secret).completions.create({
      model: 'multi',
      prompt: ['one', 'two'],
      max_tokens: 16,
      n: 2,
      best_of: 3,
    });
    expect(r.choices).toHaveLength(4);
    expect(r.usage!.completion_tokens).toBe(2 * 3 * 16);
    const [row] = await allLogs(s, { key_id: key.id });
    expect(row).toMatchObject({ status: 200, completion_tokens: 96, estimated: false });
    expect(nanoOf(row!.cost)).toBe(nanoOf(outputUsd(96)));
  });
});
