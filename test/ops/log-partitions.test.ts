// Call logs at scale (issue 12, item 3): on PostgreSQL `logs` is partitioned by UTC day
// (migration 0015), partitions are made ahead, a row for a day without one is kept (DEFAULT)
// and moves into its day's partition once that is made, MOLE_LOG_RETENTION_DAYS drops whole
// old days (PostgreSQL) or deletes their rows in batches (SQLite) and never touches the daily
// rollup, a replayed row is still written once, and the upgrade of a populated table keeps
// every row, its id and the cursor order.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pino from 'pino';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../src/db/open.js';
import {
  DAY_MS,
  dayPartitionName,
  dayStart,
  ensureDayPartitions,
  listPartitions,
} from '../../src/db/partitions.js';
import type { Db } from '../../src/db/index.js';
import { createLogUpkeep } from '../../src/usage/retention.js';
import { createUsageQueries } from '../../src/usage/queries.js';
import { pgOnce } from '../helpers/pg-once.js';
import { backends, pgUrl } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import { logRow } from '../helpers/log-row.js';

const logger = pino({ level: 'silent' });

/** The partition each of the given request ids' rows is stored in. */
async function partitionOf(db: Db, requestId: string): Promise<string> {
  const r = await sql<{
    part: string;
  }>`SELECT tableoid::regclass::text AS part FROM logs WHERE request_id = ${requestId}`.execute(db);
  return r.rows.map((x) => x.part.replace(/^.*\./, '')).join(',');
}

const countLogs = async (db: Db) =>
  Number(
    (
      await db
        .selectFrom('logs')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );

describe.each(backends())('call-log partitions and retention (%s)', (backend) => {
  const s = suiteServer({ backend, env: { MOLE_LOG_RETENTION_DAYS: '3' } });
  const write = async (fields: Parameters<typeof logRow>[0]) => {
    const row = logRow(fields);
    await s.services.usageWriter.enqueue(row);
    await s.services.usageWriter.flush();
    return row;
  };

  it('reads MOLE_LOG_RETENTION_DAYS; refuses a negative one', async () => {
    expect(s.services.config.logRetentionDays).toBe(3);
    const { loadConfig } = await import('../../src/config.js');
    expect(() => loadConfig({ MOLE_LOG_RETENTION_DAYS: '-1' })).toThrow(/MOLE_LOG_RETENTION_DAYS/);
    expect(loadConfig({}).logRetentionDays).toBe(0);
  });

  it.skipIf(backend === 'sqlite')(
    "has today's and the next days' partitions ahead, and a DEFAULT",
    async () => {
      const parts = await listPartitions(s.services.storage.db, 'logs');
      const today = dayStart(s.clock.now());
      const names = parts.map((p) => p.name);
      for (let d = 0; d <= 3; d++) expect(names).toContain(dayPartitionName('logs', today + d * DAY_MS));
      expect(parts.find((p) => p.isDefault)?.name).toBe('logs_default');
      // Running it again (as every instance does, concurrently) makes nothing twice.
      const again = await Promise.all([
        s.services.logUpkeep.ensurePartitions(),
        s.services.logUpkeep.ensurePartitions(),
      ]);
      expect(again.flat()).toEqual([]);
    },
  );

  it("keeps a row for a day with no partition, and moves it into the day's partition once made", async () => {
    const db = s.services.storage.db;
    const ids = { user_id: 1, key_id: 1 };
    const later = dayStart(s.clock.now()) + 40 * DAY_MS + 5_000;
    const row = await write({ ...ids, created_at: later, cost_nano: 7 });
    if (backend === 'postgres') expect(await partitionOf(db, row.request_id)).toBe('logs_default');
    const made = await s.services.logUpkeep.run(later);
    if (backend === 'postgres') {
      expect(made.partitionsCreated).toContain(dayPartitionName('logs', dayStart(later)));
      expect(await partitionOf(db, row.request_id)).toBe(dayPartitionName('logs', dayStart(later)));
    }
    const iso = (ms: number) => new Date(ms).toISOString();
    const listed = await s.api('GET', `/api/logs?from=${iso(later - 1)}&to=${iso(later + 1)}`);
    expect(listed.status).toBe(200);
    expect(listed.body.data.map((r: { request_id: string }) => r.request_id)).toEqual([row.request_id]);
    // The same row again (a journal replay keeps request_id and created_at): written once.
    await s.services.usageWriter.enqueue(row);
    await s.services.usageWriter.flush();
    const n = await db
      .selectFrom('logs')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('request_id', '=', row.request_id)
      .executeTakeFirstOrThrow();
    expect(Number(n.n)).toBe(1);
    const daily = await db
      .selectFrom('usage_daily')
      .select(['requests', 'cost_nano'])
      .where('day', '=', new Date(later).toISOString().slice(0, 10))
      .executeTakeFirstOrThrow();
    expect([Number(daily.requests), Number(daily.cost_nano)]).toEqual([1, 7]);
  });

  it('retention removes the days before the last N, keeps newer rows and the daily rollup', async () => {
    const db = s.services.storage.db;
    const { dialect } = s.services.storage;
    // A fresh user and key: this test counts only its own rows.
    const ids = { user_id: 900_001, key_id: 900_001 };
    const now = s.clock.now();
    const today = dayStart(now);
    // Partitions for the past days too (on PostgreSQL), so some whole days get dropped.
    if (dialect === 'postgres') await ensureDayPartitions(db, 'logs', 'created_at', today - 10 * DAY_MS, 10);
    const at = (days: number) => today - days * DAY_MS + 1_000;
    const kept = [await write({ ...ids, created_at: at(3) }), await write({ ...ids, created_at: now })];
    const gone = [
      await write({ ...ids, created_at: at(4), cost_nano: 11 }),
      await write({ ...ids, created_at: at(10), cost_nano: 13 }),
      // No partition that far back on PostgreSQL: a DEFAULT row, deleted in batches.
      await write({ ...ids, created_at: at(60), cost_nano: 17 }),
    ];
    // More old rows than a few batches hold, written straight to the table.
    const bulk = Array.from({ length: 250 }, (_, i) => logRow({ ...ids, created_at: at(5) + i }));
    for (let i = 0; i < bulk.length; i += 100)
      await db
        .insertInto('logs')
        .values(bulk.slice(i, i + 100))
        .execute();
    const dailyBefore = await db
      .selectFrom('usage_daily')
      .selectAll()
      .where('key_id', '=', ids.key_id)
      .execute();

    const upkeep = createLogUpkeep({ db, dialect, retentionDays: 3, now: () => now, logger, batch: 40 });
    const r = await upkeep.run();
    expect(r.rowsDeleted).toBeGreaterThanOrEqual(backend === 'postgres' ? 1 : 253);
    if (backend === 'postgres') {
      expect(r.partitionsDropped).toEqual(
        expect.arrayContaining([4, 5, 10].map((d) => dayPartitionName('logs', today - d * DAY_MS))),
      );
      expect(r.partitionsDropped).not.toContain(dayPartitionName('logs', today - 3 * DAY_MS));
    }
    const left = await db.selectFrom('logs').select('request_id').where('key_id', '=', ids.key_id).execute();
    expect(left.map((x) => x.request_id).sort()).toEqual(kept.map((k) => k.request_id).sort());
    expect(gone.every((g) => !left.some((x) => x.request_id === g.request_id))).toBe(true);
    const dailyAfter = await db
      .selectFrom('usage_daily')
      .selectAll()
      .where('key_id', '=', ids.key_id)
      .execute();
    expect(dailyAfter).toEqual(dailyBefore);
    expect(dailyAfter.length).toBeGreaterThanOrEqual(4);
    // A second pass finds nothing left to remove.
    expect(await upkeep.run()).toMatchObject({ partitionsDropped: [], rowsDeleted: 0 });
  });
});

describe.skipIf(!pgUrl())('migration 0015 of a populated PostgreSQL logs table', () => {
  const schema = 't_mig_' + randomBytes(5).toString('hex');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-mig-'));
  afterAll(async () => {
    await pgOnce(pgUrl()!, `DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every row, its id and the cursor order; ids go on; replays still dedupe', async () => {
    const open = (upTo?: string) =>
      openStorage({
        databaseUrl: pgUrl(),
        dataDir: dir,
        pgSchema: schema,
        ...(upTo ? { migrateUpTo: upTo } : {}),
      });
    const now = Date.now();
    const old = await open('0014_management_tokens');
    // 3,000 rows over 6 days, ids not in created_at order within a day, one in ten an error.
    await sql`INSERT INTO logs (request_id, created_at, user_id, key_id, key_name, endpoint, stream, status,
        prompt_tokens, cached_tokens, completion_tokens, cost_nano, latency_ms, estimated)
      SELECT 'mig-' || g, ${now}::bigint - (g % 6) * ${DAY_MS}::bigint - (g * 7919) % 3600000, 1 + g % 3, 1 + g % 5,
        'k', '/v1/chat/completions', 0, CASE WHEN g % 10 = 0 THEN 502 ELSE 200 END, 1, 0, 1, g, 1, 0
      FROM generate_series(1, 3000) g`.execute(old.db);
    const before = await old.db.selectFrom('logs').selectAll().orderBy('id', 'desc').execute();
    const newest = Math.max(...before.map((r) => Number(r.created_at)));
    await old.close();

    const s = await open();
    try {
      const parts = await listPartitions(s.db, 'logs');
      expect(parts[0]).toMatchObject({ name: 'logs_before', from: null, to: dayStart(newest) + DAY_MS });
      expect(parts.at(-1)).toMatchObject({ name: 'logs_default', isDefault: true });
      expect(parts.map((p) => p.name)).toContain(dayPartitionName('logs', dayStart(now) + 3 * DAY_MS));

      const q = createUsageQueries(s.db, 'postgres', { namesOf: async () => new Map() });
      const paged: number[] = [];
      let cursor: number | undefined;
      for (;;) {
        const page = await q.listLogs({}, { limit: 700, ...(cursor ? { cursor } : {}) });
        paged.push(...page.data.map((r) => r.id));
        if (!page.next_cursor) break;
        cursor = Number(page.next_cursor);
      }
      expect(paged).toEqual(before.map((r) => Number(r.id)));
      const errors = await q.listLogs({ status: 'error' }, { limit: 1000 });
      expect(errors.data.map((r) => r.id)).toEqual(
        before.filter((r) => Number(r.status) >= 400).map((r) => Number(r.id)),
      );
      const after = await s.db.selectFrom('logs').selectAll().orderBy('id', 'desc').execute();
      // Every row as it was, with the columns later migrations add at their defaults.
      expect(after).toEqual(
        before.map((r) => ({ ...r, web_searches: 0, service_tier: null, cache_write_1h_tokens: 0 })),
      );

      // New rows take ids after the old ones; a replayed old row is skipped.
      const fresh = logRow({ user_id: 1, key_id: 1, created_at: now });
      const replay = { ...logRow({ user_id: 1, key_id: 1 }), ...before[0], id: undefined };
      const got = await s.db
        .insertInto('logs')
        .values([fresh, replay])
        .onConflict((oc) => oc.doNothing())
        .returning(['id', 'request_id'])
        .execute();
      expect(got.map((g) => g.request_id)).toEqual([fresh.request_id]);
      expect(Number(got[0]!.id)).toBeGreaterThan(Number(before[0]!.id));
      expect(await countLogs(s.db)).toBe(3001);

      // Once every row of the old table is past retention, it goes in one drop.
      const upkeep = createLogUpkeep({
        db: s.db,
        dialect: 'postgres',
        retentionDays: 1,
        now: () => dayStart(now) + 30 * DAY_MS,
        logger,
      });
      const r = await upkeep.run();
      expect(r.partitionsDropped).toContain('logs_before');
      expect(await countLogs(s.db)).toBe(0);
    } finally {
      await s.close();
    }
  });
});
