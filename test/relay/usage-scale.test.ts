// Usage by key over more distinct keys than SQLite takes variables in one statement (32,766):
// answered in pages, CSV too, whole-day (rollup) and partial-day (log scan) ranges alike. And
// `GET /api/logs?status=error` is served by an index, not a scan. Not timed.
// PostgreSQL takes 65,535 parameters, so 40k keys reach no limit of its own there: it gets a
// tenth of them, in pages of a tenth the size (still four pages), which keeps the paging, order
// and CSV checks and saves most of the suite's time.
import { CompiledQuery } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, startTestServer, type TestServer } from '../helpers/server.js';

const DAY_MS = 86_400_000;

describe.each(backends())('usage and logs at scale [%s]', (backend) => {
  const KEYS = backend === 'sqlite' ? 40_000 : 4_000;
  const PAGE = KEYS / 4;
  let s: TestServer;
  let day: number;
  beforeAll(async () => {
    s = await startTestServer({ backend });
    const user = await s.api('POST', '/api/users', { username: 'scale', password: 'password-123' });
    expect(user.status).toBe(201);
    const userId = user.body.id as number;
    // Test-only bulk path: KEYS keys, a rollup row and a log row each, in one transaction.
    const now = Date.now();
    day = Math.floor(now / DAY_MS) * DAY_MS - DAY_MS;
    const dayStr = new Date(day).toISOString().slice(0, 10);
    const db = s.services.storage.db;
    await db.transaction().execute(async (trx) => {
      const CHUNK = 500;
      for (let from = 1; from <= KEYS; from += CHUNK) {
        const ids = Array.from({ length: Math.min(CHUNK, KEYS - from + 1) }, (_, i) => from + i);
        const keyRows = await trx
          .insertInto('api_keys')
          .values(
            ids.map((i) => ({
              user_id: userId,
              name: `k${i}`,
              key_hash: `bulk-${i}`,
              display: 'sk-bulk…',
              status: 'active' as const,
              models: null,
              allowed_ips: null,
              quota_nano: null,
              used_nano: 0,
              group_name: null,
              rpm_limit: null,
              expires_at: null,
              prev_key_hash: null,
              prev_key_expires_at: null,
              created_at: now,
              updated_at: now,
              last_used_at: null,
              last_used_ip: null,
              deleted_at: null,
            })),
          )
          .returning('id')
          .execute();
        // Cost grows with the key's position, so the order (cost, descending) is known.
        const rows = keyRows.map((k, j) => ({ id: Number(k.id), n: ids[j]! }));
        await trx
          .insertInto('usage_daily')
          .values(
            rows.map((k) => ({
              day: dayStr,
              user_id: userId,
              key_id: k.id,
              model: 'm',
              requests: 1,
              prompt_tokens: 10,
              cached_tokens: 0,
              completion_tokens: 5,
              cost_nano: k.n * 1000,
            })),
          )
          .execute();
        await trx
          .insertInto('logs')
          .values(
            rows.map((k) => ({
              request_id: `bulk-${k.n}`,
              created_at: day + 3_600_000,
              user_id: userId,
              key_id: k.id,
              key_name: `k${k.n}`,
              model: 'm',
              upstream_model: 'm',
              channel_id: null,
              endpoint: '/v1/chat/completions',
              stream: 0,
              status: k.n % 50 === 0 ? 502 : 200,
              error_code: k.n % 50 === 0 ? 'upstream_error' : null,
              prompt_tokens: 10,
              cached_tokens: 0,
              completion_tokens: 5,
              cost_nano: k.n * 1000,
              latency_ms: 1,
              ttft_ms: null,
              ip: null,
              estimated: 0,
              attempts: null,
              protocol: 'openai',
              cache_write_tokens: 0,
              reasoning_tokens: 0,
            })),
          )
          .execute();
      }
    });
  }, 120_000);
  afterAll(async () => {
    await s?.close();
  });

  const iso = (ms: number) => new Date(ms).toISOString();
  const ranges = () => ({
    'whole days (rollup)': `from=${iso(day)}&to=${iso(day + DAY_MS)}`,
    'partial day (logs)': `from=${iso(day + 1)}&to=${iso(day + DAY_MS - 1)}`,
  });

  it('group_by=key over 40k keys (4k on PostgreSQL) answers 200 in pages, every key once, ordered by cost', async () => {
    for (const [label, range] of Object.entries(ranges())) {
      const first = await s.api('GET', `/api/usage?group_by=key&${range}`);
      expect(first.status, label).toBe(200);
      expect(first.body.data).toHaveLength(1000);
      expect(first.body.next_cursor).toBe('1000');
      expect(first.body.data[0]).toMatchObject({ key_name: `k${KEYS}`, requests: 1 });
      const seen = new Set<number>();
      let cursor: string | null = null;
      let lastCost = Number.POSITIVE_INFINITY;
      let pages = 0;
      do {
        type Page = {
          data: Array<{ key_id: number; key_name: string; cost: number }>;
          next_cursor: string | null;
        };
        const r: { status: number; body: Page } = await s.api(
          'GET',
          `/api/usage?group_by=key&${range}&limit=${PAGE}${cursor ? `&cursor=${cursor}` : ''}`,
        );
        expect(r.status, label).toBe(200);
        for (const row of r.body.data) {
          expect(row.cost).toBeLessThanOrEqual(lastCost);
          lastCost = row.cost;
          expect(row.key_name).toMatch(/^k\d+$/);
          seen.add(row.key_id);
        }
        cursor = r.body.next_cursor;
        pages++;
      } while (cursor);
      expect(pages, label).toBe(4);
      expect(seen.size, label).toBe(KEYS);
    }
  }, 120_000);

  it('the CSV export holds every key', async () => {
    for (const [label, range] of Object.entries(ranges())) {
      const r = await s.api('GET', `/api/usage?group_by=key&format=csv&${range}`);
      expect(r.status, label).toBe(200);
      const lines = (r.body as string).trim().split('\r\n');
      expect(lines).toHaveLength(KEYS + 1);
      expect(lines[0]).toBe('key_id,key_name,requests,prompt_tokens,cached_tokens,completion_tokens,cost');
      expect(lines[1]).toMatch(new RegExp(`^\\d+,k${KEYS},1,10,0,5,`));
    }
  }, 120_000);

  it('logs?status=error pages the error rows through the partial index', async () => {
    const r = await s.api('GET', '/api/logs?status=error&limit=50');
    expect(r.status).toBe(200);
    // every 50th key's row is an error: 80 of them on PostgreSQL, 800 on SQLite
    expect(r.body.data).toHaveLength(50);
    expect(r.body.data.every((l: { status: number }) => l.status >= 400)).toBe(true);
    if (backend !== 'sqlite') return;
    // The statement the route runs, as SQLite plans it: a search of logs_errors, no scan.
    const executor = s.services.storage.db.getExecutor() as {
      executeQuery: (q: CompiledQuery, ...a: unknown[]) => Promise<unknown>;
    };
    const original = executor.executeQuery;
    const seen: CompiledQuery[] = [];
    executor.executeQuery = function (this: unknown, q: CompiledQuery, ...a: unknown[]) {
      seen.push(q);
      return original.call(this, q, ...a);
    };
    try {
      await s.api('GET', '/api/logs?status=error&limit=50');
    } finally {
      executor.executeQuery = original;
    }
    const list = seen.find((q) => /from "logs"/.test(q.sql) && /order by "id" desc/.test(q.sql));
    expect(list).toBeDefined();
    const plan = await s.services.storage.db.executeQuery<{ detail: string }>(
      CompiledQuery.raw(`EXPLAIN QUERY PLAN ${list!.sql}`, [...list!.parameters]),
    );
    const detail = plan.rows.map((p) => p.detail).join('\n');
    expect(detail).toMatch(/logs_errors/);
    expect(detail).not.toMatch(/^SCAN logs$/m);
  });
});
