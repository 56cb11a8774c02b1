// events.emit: one row per occurrence (a repeated dedupeKey is a no-op), secrets never kept,
// newest first, on both backends.
import { describe, expect, it } from 'vitest';
import { backends } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';

describe.each(backends())('events.emit (%s)', (backend) => {
  const s = suiteServer({ backend });

  it('stores an event once per dedupeKey', async () => {
    const dedupeKey = `budget.threshold:key:7:daily:2026-12-05:0.8:${backend}`;
    const e = {
      type: 'budget.threshold' as const,
      userId: 42,
      keyId: 7,
      dedupeKey,
      data: { threshold: 0.8, period: 'daily' },
    };
    await s.services.events.emit(e);
    await s.services.events.emit(e);
    await s.services.events.emit({ ...e, data: { threshold: 0.8, again: true } });
    const page = await s.services.events.list({ limit: 50, userId: 42 });
    expect(page.data).toHaveLength(1);
    expect(page.data[0]).toMatchObject({
      type: 'budget.threshold',
      user_id: 42,
      key_id: 7,
      data: { threshold: 0.8, period: 'daily' },
    });
    expect(page.data[0]!.id).toMatch(/^evt_[0-9a-f]{24}$/);
  });

  it('stores events without a dedupeKey every time, newest first', async () => {
    await s.services.events.emit({ type: 'channel.disabled', userId: null, data: { n: 1 } });
    await s.services.events.emit({ type: 'channel.disabled', userId: null, data: { n: 2 } });
    const page = await s.services.events.list({ limit: 50, type: 'channel.disabled' });
    expect(page.data.map((e) => e.data.n)).toEqual([2, 1]);
    expect(page.data.every((e) => e.user_id === null && e.key_id === null)).toBe(true);
  });

  it('drops fields named like secrets, at any depth', async () => {
    await s.services.events.emit({
      type: 'key.leaked',
      userId: 43,
      keyId: 9,
      data: { url: 'https://example.test', key: 'sk-secret', nested: { token: 't', ok: 1 } },
    });
    const page = await s.services.events.list({ limit: 50, userId: 43 });
    expect(page.data[0]!.data).toEqual({ url: 'https://example.test', nested: { ok: 1 } });
  });

  it('commits with the transaction it is given', async () => {
    const db = s.services.storage.db;
    await expect(
      db.transaction().execute(async (trx) => {
        await s.services.events.emit({ type: 'key.auto_disabled', userId: 44, keyId: 1, data: {} }, trx);
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    await db.transaction().execute(async (trx) => {
      await s.services.events.emit({ type: 'key.auto_disabled', userId: 44, keyId: 2, data: {} }, trx);
    });
    const page = await s.services.events.list({ limit: 50, userId: 44 });
    expect(page.data.map((e) => e.key_id)).toEqual([2]);
  });
});
