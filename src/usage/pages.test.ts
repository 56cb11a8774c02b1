// Usage pages over a stand-in for the queries: when a walk's first page keeps a snapshot, when
// later pages are its slices, and what bounds the snapshots (expiry, a walk's size, the total).
import { describe, expect, it } from 'vitest';
import { createUsagePages, parseUsageCursor, type UsagePages } from './pages.js';
import type { LogFilter, UsageGroup, UsageSums } from './queries.js';

/** Groups 1…n, dearest first, and how often the "database" grouped them. */
function queries(n: number) {
  const all: UsageSums[] = Array.from({ length: n }, (_, i) => ({
    grp: i + 1,
    requests: 1,
    prompt_tokens: 0,
    cached_tokens: 0,
    completion_tokens: 0,
    cost_nano: (n - i) * 1000,
  }));
  const calls: Array<{ limit: number; offset: number } | undefined> = [];
  const groups = async (
    _g: UsageGroup,
    _f: Omit<LogFilter, 'status'>,
    page?: { limit: number; offset: number },
  ) => {
    calls.push(page);
    return page ? all.slice(page.offset, page.offset + page.limit) : all;
  };
  const present = async (_g: UsageGroup, rows: readonly UsageSums[]) =>
    rows.map((r) => ({
      key_id: Number(r.grp),
      key_name: null,
      key_display: null,
      requests: r.requests,
      prompt_tokens: 0,
      cached_tokens: 0,
      completion_tokens: 0,
      cost: r.cost_nano / 1e9,
    }));
  const usage = async (
    g: UsageGroup,
    f: Omit<LogFilter, 'status'>,
    page?: { limit: number; offset: number },
  ) => {
    const rows = await groups(g, f, page && { limit: page.limit + 1, offset: page.offset });
    const more = page !== undefined && rows.length > page.limit;
    return {
      data: await present(g, more ? rows.slice(0, page!.limit) : rows),
      next_cursor: more ? String(page!.offset + page!.limit) : null,
    };
  };
  return { q: { groups, present, usage }, calls };
}

/** Every key id a walk lists, following next_cursor from the first page. */
async function walk(
  pages: ReturnType<typeof createUsagePages>,
  limit: number,
  f: Omit<LogFilter, 'status'> = {},
) {
  const ids: number[] = [];
  let cursor: string | null = null;
  do {
    const p: Awaited<ReturnType<UsagePages['page']>> = await pages.page(
      'key',
      f,
      limit,
      cursor === null ? undefined : parseUsageCursor(cursor)!,
    );
    ids.push(...p.data.map((r) => ('key_id' in r ? r.key_id : -1)));
    cursor = p.next_cursor;
  } while (cursor);
  return ids;
}

describe('usage pages', () => {
  it('groups once per walk; later pages are slices of the first', async () => {
    const { q, calls } = queries(10);
    const pages = createUsagePages(q, { now: () => 0 });
    expect(await walk(pages, 3)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(calls).toHaveLength(1);
    expect(pages.stats()).toEqual({ snapshots: 1, groups: 10 });
  });

  it('keeps no snapshot when one page holds everything', async () => {
    const { q } = queries(3);
    const pages = createUsagePages(q, { now: () => 0 });
    const p = await pages.page('key', {}, 3);
    expect(p.next_cursor).toBeNull();
    expect(pages.stats().snapshots).toBe(0);
  });

  it('a snapshot answers only the query that made it', async () => {
    const { q, calls } = queries(4);
    const pages = createUsagePages(q, { now: () => 0 });
    const first = await pages.page('key', { userId: 1 }, 2);
    const cursor = parseUsageCursor(first.next_cursor!)!;
    await pages.page('key', { userId: 2 }, 2, cursor);
    await pages.page('model', { userId: 1 }, 2, cursor);
    await pages.page('key', { userId: 1, from: 5 }, 2, cursor);
    expect(calls).toHaveLength(4);
    await pages.page('key', { userId: 1 }, 2, cursor);
    expect(calls).toHaveLength(4);
  });

  it('expires: an old cursor pages by offset, grouping again', async () => {
    let t = 0;
    const { q, calls } = queries(4);
    const pages = createUsagePages(q, { now: () => t, ttlMs: 1000 });
    const first = await pages.page('key', {}, 2);
    t = 1000;
    const next = await pages.page('key', {}, 2, parseUsageCursor(first.next_cursor!)!);
    expect(next.data.map((r) => ('key_id' in r ? r.key_id : -1))).toEqual([3, 4]);
    expect(calls[1]).toEqual({ limit: 3, offset: 2 });
    expect(pages.stats().snapshots).toBe(0);
  });

  it('holds at most maxTotalGroups: the oldest snapshots go first', async () => {
    const { q, calls } = queries(10);
    const pages = createUsagePages(q, { now: () => 0, maxTotalGroups: 25 });
    const cursors = [];
    for (let i = 1; i <= 3; i++)
      cursors.push(parseUsageCursor((await pages.page('key', { userId: i }, 2)).next_cursor!)!);
    expect(pages.stats()).toEqual({ snapshots: 2, groups: 20 });
    expect(calls).toHaveLength(3);
    // The newest is kept: its next page groups nothing. The oldest is gone: grouped again.
    expect((await pages.page('key', { userId: 3 }, 2, cursors[2])).next_cursor).toBe(
      `4.${cursors[2]!.snapshot}`,
    );
    expect(calls).toHaveLength(3);
    await pages.page('key', { userId: 1 }, 2, cursors[0]);
    expect(calls).toHaveLength(4);
  });

  it('past maxGroups: no snapshot; the first page from one capped grouping, the rest by offset', async () => {
    const { q, calls } = queries(10);
    const pages = createUsagePages(q, { now: () => 0, maxGroups: 6 });
    expect(await walk(pages, 4)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(pages.stats().snapshots).toBe(0);
    expect(calls).toEqual([
      { limit: 7, offset: 0 },
      { limit: 5, offset: 4 },
      { limit: 5, offset: 8 },
    ]);
  });

  it('a cursor whose snapshot is not here pages the rest of its walk by offset', async () => {
    const { q, calls } = queries(7);
    const pages = createUsagePages(q, { now: () => 0 });
    const p = await pages.page('key', {}, 3, parseUsageCursor('3.AAAAAAAAAAAAAAAA')!);
    expect(p.next_cursor).toBe('6');
    const last = await pages.page('key', {}, 3, parseUsageCursor(p.next_cursor!)!);
    expect(last.next_cursor).toBeNull();
    expect(calls).toEqual([
      { limit: 4, offset: 3 },
      { limit: 4, offset: 6 },
    ]);
    expect(pages.stats().snapshots).toBe(0);
  });

  it('reads cursors as next_cursor spells them', () => {
    expect(parseUsageCursor('1000')).toEqual({ offset: 1000 });
    expect(parseUsageCursor('2.abcdefghijklmnop')).toEqual({ offset: 2, snapshot: 'abcdefghijklmnop' });
    for (const bad of ['0', '-1', '01', '1.', '1.abc', '1.abcdefghijklmnopq', 'a', '1e3', '12345678901'])
      expect(parseUsageCursor(bad), bad).toBeNull();
  });
});
