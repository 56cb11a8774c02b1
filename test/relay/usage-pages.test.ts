// GET /api/usage in pages while traffic goes on: a walk's later pages come from the sums as
// of its first page (usage/pages.ts), so every key is listed once even when spend moves keys
// across a page boundary between two pages; a fresh walk sees the new sums. A cursor answers
// only the query (and the caller) it came from, bare offsets still page, and a page after the
// first groups nothing again. On SQLite and PostgreSQL; not timed.
import { beforeAll, describe, expect, it } from 'vitest';
import { countQueries } from '../helpers/queries.js';
import { backends, login, userWithKey } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';

const DAY_MS = 86_400_000;

type Row = { key_id: number; key_name: string; requests: number; cost: number };
type Page = { data: Row[]; next_cursor: string | null };

describe.each(backends())('usage pages [%s]', (backend) => {
  const s = suiteServer({ backend });
  /** Yesterday (UTC), a whole day: answered from usage_daily, which the test fills. */
  let day: string;
  let range: string;
  let alice: { userId: number; keys: number[]; cookie: string };
  let bob: { userId: number; keys: number[]; cookie: string };

  /** Spend on a key for the day, as a batch of the usage writer would roll it up. */
  async function spend(userId: number, keyId: number, nano: number): Promise<void> {
    const db = s.services.storage.db;
    const row = { day, user_id: userId, key_id: keyId, model: 'm' };
    const found = await db
      .selectFrom('usage_daily')
      .select('requests')
      .where('key_id', '=', keyId)
      .executeTakeFirst();
    if (found)
      await db
        .updateTable('usage_daily')
        .set((eb) => ({ requests: eb('requests', '+', 1), cost_nano: eb('cost_nano', '+', nano) }))
        .where('key_id', '=', keyId)
        .execute();
    else
      await db
        .insertInto('usage_daily')
        .values({
          ...row,
          requests: 1,
          prompt_tokens: 10,
          cached_tokens: 0,
          completion_tokens: 5,
          cost_nano: nano,
        })
        .execute();
  }

  async function account(name: string, keys: number) {
    const { user, key, password } = await userWithKey(s, { username: name, key: { name: `${name}-0` } });
    const ids = [key.id as number];
    for (let i = 1; i < keys; i++) {
      const k = await s.api('POST', '/api/keys', { name: `${name}-${i}`, user_id: user.id });
      ids.push(k.body.id as number);
    }
    const { cookie } = await login(s, name, password);
    return { userId: user.id as number, keys: ids, cookie };
  }

  const page = async (query: string, cursor: string | null, cookie?: string): Promise<Page> => {
    const r = await s.api(
      'GET',
      `/api/usage?group_by=key&${range}&${query}${cursor ? `&cursor=${cursor}` : ''}`,
      undefined,
      cookie ? { cookie } : undefined,
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body as Page;
  };

  beforeAll(async () => {
    const d = Math.floor(Date.now() / DAY_MS) * DAY_MS - DAY_MS;
    day = new Date(d).toISOString().slice(0, 10);
    range = `from=${new Date(d).toISOString()}&to=${new Date(d + DAY_MS).toISOString()}`;
    alice = await account('alice-pages', 5);
    bob = await account('bob-pages', 3);
    // Alice's keys cost 5, 4, 3, 2, 1 µUSD: listed in that order. Bob's 30, 20, 10.
    for (const [i, id] of alice.keys.entries()) await spend(alice.userId, id, (5 - i) * 1000);
    for (const [i, id] of bob.keys.entries()) await spend(bob.userId, id, (3 - i) * 10_000);
  });

  it('a walk lists every key once while spend reorders them; a new walk sees the new sums', async () => {
    const query = `user_id=${alice.userId}&limit=2`;
    const first = await page(query, null);
    expect(first.data.map((r) => r.key_name)).toEqual(['alice-pages-0', 'alice-pages-1']);
    expect(first.next_cursor).toMatch(/^2\.[A-Za-z0-9_-]{16}$/);
    // Traffic: the two cheapest keys become the dearest. Paged by offset, the next page would
    // now hold the first page's keys again and never list these two.
    await spend(alice.userId, alice.keys[3]!, 100_000);
    await spend(alice.userId, alice.keys[4]!, 90_000);
    const walked = [...first.data];
    let cursor = first.next_cursor;
    while (cursor) {
      const p = await page(query, cursor);
      walked.push(...p.data);
      cursor = p.next_cursor;
    }
    expect(walked.map((r) => r.key_name)).toEqual([0, 1, 2, 3, 4].map((i) => `alice-pages-${i}`));
    // As of the first page: key 3 still cost 2 µUSD and had one request.
    expect(walked[3]).toMatchObject({ requests: 1, cost: 0.000002 });
    const fresh = await page(query, null);
    expect(fresh.data.map((r) => r.key_name)).toEqual(['alice-pages-3', 'alice-pages-4']);
    expect(fresh.data[0]).toMatchObject({ requests: 2, cost: 0.000102 });
  });

  it("a cursor answers only its own query: another filter or another user's scope is paged afresh", async () => {
    const mine = await page(`user_id=${alice.userId}&limit=2`, null);
    const offset = mine.next_cursor!.split('.')[0];
    // Bob, signed in, with Alice's cursor: his own keys at that offset, never hers.
    const bobs = await page('limit=2', mine.next_cursor, bob.cookie);
    expect(bobs.data.map((r) => r.key_name)).toEqual(['bob-pages-2']);
    expect(bobs.next_cursor).toBeNull();
    // The admin under another filter: that filter's rows at that offset.
    const other = await page(`user_id=${bob.userId}&limit=2`, mine.next_cursor);
    expect(other.data.map((r) => r.key_name)).toEqual(['bob-pages-2']);
    // Alice herself, with her own cursor: her next page.
    const hers = await page('limit=2', mine.next_cursor, alice.cookie);
    expect(hers.data.map((r) => r.key_name)).toEqual(
      (await page(`user_id=${alice.userId}&limit=2`, offset!)).data.map((r) => r.key_name),
    );
  });

  it('bare offsets and unknown snapshots page by offset; malformed cursors are refused', async () => {
    const byOffset = await page(`user_id=${bob.userId}&limit=1`, '1');
    expect(byOffset.data.map((r) => r.key_name)).toEqual(['bob-pages-1']);
    expect(byOffset.next_cursor).toBe('2');
    const unknown = await page(`user_id=${bob.userId}&limit=1`, '1.AAAAAAAAAAAAAAAA');
    expect(unknown.data.map((r) => r.key_name)).toEqual(['bob-pages-1']);
    expect(unknown.next_cursor).toBe('2');
    const last = await page(`user_id=${bob.userId}&limit=1`, unknown.next_cursor);
    expect(last.data.map((r) => r.key_name)).toEqual(['bob-pages-2']);
    expect(last.next_cursor).toBeNull();
    for (const bad of [
      '0',
      '1.',
      '1.short',
      `1.${'A'.repeat(17)}`,
      'x.AAAAAAAAAAAAAAAA',
      '1.AAAAAAAAAAAAAAA%21',
    ]) {
      const r = await s.api('GET', `/api/usage?group_by=key&cursor=${bad}`);
      expect(r.status, bad).toBe(422);
      expect(r.body.error.code).toBe('validation_error');
    }
  });

  it('the pages after the first group nothing again: they are slices of the first', async () => {
    const query = `user_id=${alice.userId}&limit=1`;
    const first = await page(query, null);
    const seen = countQueries(s);
    try {
      let cursor = first.next_cursor;
      let pages = 1;
      while (cursor) {
        cursor = (await page(query, cursor)).next_cursor;
        pages++;
      }
      expect(pages).toBe(5);
      expect(seen.seen.filter((q) => /group by/i.test(q))).toEqual([]);
    } finally {
      seen.restore();
    }
  });
});
