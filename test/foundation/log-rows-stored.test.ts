// Every log row reaches the database exactly as the relay wrote it, on SQLite and PostgreSQL
// (whose batch travels as one array a column: usage/batch.ts): text that array literals must
// escape (quotes, backslashes, commas, braces, "NULL", empty strings, non-ASCII), nulls and
// large integers in any column, and a request_id repeated in a batch or already stored (kept
// once). One batch moves every key's spend and last use and every account's balance (on
// PostgreSQL one statement each for all of them). Not timed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewLog } from '../../src/db/schema.js';
import { logRow } from '../helpers/log-row.js';
import { backends, startTestServer, type TestServer, userWithKey } from '../helpers/server.js';

const AWKWARD = [
  'say "hi"',
  'back\\slash',
  'a,b',
  '{braces}',
  'NULL',
  '',
  ' padded ',
  'emoji 🦫 ünïcödé 中文',
  '{"json": ["x", "y\\"z"]}',
  "it's",
];

describe.each(backends())('log rows stored as written [%s]', (backend) => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ backend });
  });
  afterAll(() => s.close());

  const stored = async (ids: string[]) =>
    s.services.storage.db
      .selectFrom('logs')
      .selectAll()
      .where('request_id', 'in', ids)
      .orderBy('id')
      .execute();

  it('keeps every awkward text, null and large integer to the letter', async () => {
    const rows: NewLog[] = AWKWARD.map((text, i) =>
      logRow({
        user_id: 1,
        key_id: 2 ** 40 + i,
        key_name: text,
        model: text || 'm',
        upstream_model: i % 2 ? null : text,
        error_code: i % 3 ? null : text,
        ip: text,
        attempts: i % 2 ? JSON.stringify([{ channel_id: 1, error: text }]) : null,
        cost_nano: 9_007_199_254_740_991 - i,
        ttft_ms: i % 2 ? null : i,
        ephemeral_id: i % 2 ? 7 : null,
      }),
    );
    await Promise.all(rows.map((r) => s.services.usageWriter.enqueue(r)));
    await s.services.usageWriter.flush();
    const got = await stored(rows.map((r) => r.request_id));
    expect(got).toHaveLength(rows.length);
    for (const [i, r] of rows.entries()) {
      const g = got[i]!;
      for (const [column, value] of Object.entries(r))
        expect(
          Number.isInteger(value) ? Number(g[column as keyof typeof g]) : g[column as keyof typeof g],
          column,
        ).toEqual(value ?? null);
    }
  });

  it('stores a request_id once, whether repeated in one batch or already stored', async () => {
    const first = logRow({ user_id: 1, key_id: 1, key_name: 'first' });
    await s.services.usageWriter.enqueue(first);
    await s.services.usageWriter.flush();
    const again = { ...first, key_name: 'again' };
    const other = logRow({ user_id: 1, key_id: 1 });
    await Promise.all(
      [again, other, { ...other, key_name: 'twice' }].map((r) => s.services.usageWriter.enqueue(r)),
    );
    await s.services.usageWriter.flush();
    const got = await stored([first.request_id, other.request_id]);
    expect(got.map((g) => [g.request_id, g.key_name])).toEqual([
      [first.request_id, 'first'],
      [other.request_id, other.key_name],
    ]);
  });

  it("moves every key's spend and last use and every account's balance in one batch", async () => {
    const owners = await Promise.all([1, 2, 3].map(() => userWithKey(s, { balance: 10 })));
    const keys = owners.map((o) => ({ userId: o.user.id as number, keyId: o.key.id as number }));
    // Two more keys for the first account.
    for (let i = 0; i < 2; i++) {
      const k = await s.api('POST', '/api/keys', { name: `more-${i}`, user_id: owners[0]!.user.id });
      keys.push({ userId: owners[0]!.user.id as number, keyId: k.body.id as number });
    }
    const t0 = Date.now();
    const rows: NewLog[] = [];
    for (let i = 0; i < 60; i++) {
      const k = keys[i % keys.length]!;
      rows.push(
        logRow({
          user_id: k.userId,
          key_id: k.keyId,
          cost_nano: 1_000 + i,
          created_at: t0 + i,
          ip: `10.0.${k.keyId % 250}.${i}`,
        }),
      );
    }
    // The relay notes each key's last use as it verifies it (keys/verify.ts); the batch writes them.
    for (const r of rows) s.services.verifier.touch(r.key_id, r.ip!, r.created_at);
    await Promise.all(rows.map((r) => s.services.usageWriter.enqueue(r)));
    await s.services.usageWriter.flush();
    const db = s.services.storage.db;
    for (const k of keys) {
      const mine = rows.filter((r) => r.key_id === k.keyId);
      const row = await db
        .selectFrom('api_keys')
        .select(['used_nano', 'last_used_at', 'last_used_ip'])
        .where('id', '=', k.keyId)
        .executeTakeFirstOrThrow();
      expect(Number(row.used_nano), `key ${k.keyId} spend`).toBe(mine.reduce((a, r) => a + r.cost_nano, 0));
      const newest = mine.at(-1)!;
      expect(Number(row.last_used_at), `key ${k.keyId} last use`).toBe(newest.created_at);
      expect(row.last_used_ip).toBe(newest.ip);
    }
    for (const o of owners) {
      const spent = rows.filter((r) => r.user_id === o.user.id).reduce((a, r) => a + r.cost_nano, 0);
      const u = await db
        .selectFrom('users')
        .select('balance_nano')
        .where('id', '=', o.user.id as number)
        .executeTakeFirstOrThrow();
      expect(Number(u.balance_nano), `account ${o.user.id}`).toBe(10_000_000_000 - spent);
    }
  });
});
