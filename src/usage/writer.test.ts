// The usage writer with the real ledger, keys and accounts on a real (SQLite) database: the
// spend a batch commits is exactly the spend its log rows explain, whatever happens while the
// batch is being written (issue 11, defect 8).
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createUsageWriter, insertSizes, type Contributor, LATER_LOG_COLUMNS } from './writer.js';
import { type JournalSync, openJournal } from './journal.js';
import { logRow } from '../../test/helpers/log-row.js';
import { ledgerWorld, silentLogger } from '../../test/helpers/ledger-world.js';
import type { NewLog } from '../db/schema.js';
import { sql } from 'kysely';

const logger = silentLogger;
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

let seq = 0;
async function world() {
  const { dir, storage, accounts, keys, ledger, newLedger } = await ledgerWorld('mole-writer-');
  const user = await accounts.createUser({
    username: 'u' + seq++,
    password: 'password-123',
    role: 'user',
    group: 'default',
    balanceNano: 1_000_000,
  });
  const { row: key } = await keys.create(Number(user.id), { name: 'k' });
  const ids = { keyId: Number(key.id), userId: Number(user.id) };
  const row = (cost: number) => logRow({ user_id: ids.userId, key_id: ids.keyId, cost_nano: cost });
  /** Reserve and settle `cost` as the relay does (the log row follows later). */
  const charge = async (cost: number) => {
    const r = await ledger.reserve(ids.keyId, ids.userId, null, cost);
    if (!r.ok) throw new Error('not admitted');
    expect(await ledger.settle(r.reservation, cost)).toBe(cost);
  };
  const totals = async () => {
    const k = await storage.db
      .selectFrom('api_keys')
      .select('used_nano')
      .where('id', '=', ids.keyId)
      .executeTakeFirstOrThrow();
    const u = await storage.db
      .selectFrom('users')
      .select('balance_nano')
      .where('id', '=', ids.userId)
      .executeTakeFirstOrThrow();
    const logs = await storage.db.selectFrom('logs').select('cost_nano').execute();
    return {
      used: Number(k.used_nano),
      spent: 1_000_000 - Number(u.balance_nano),
      logged: logs.reduce((a, r) => a + Number(r.cost_nano), 0),
      rows: logs.length,
    };
  };
  cleanup.push(async () => {
    await storage.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const journalDir = path.join(dir, 'journal');
  /**
   * A writer as services.ts builds it (the ledger's contributor, a journal, the worker thread);
   * `crash` leaves it running without flushing or closing.
   */
  const writer = (
    opts: { crash?: boolean; sync?: JournalSync; contributors?: Contributor[]; journal?: boolean } = {},
  ) => {
    const w = createUsageWriter({
      db: storage.db,
      dialect: storage.dialect,
      sqliteFile: storage.sqliteFile,
      logger,
      intervalMs: 60_000,
      contributors: opts.contributors ?? [ledger.flushInto],
      journal: opts.journal === false ? null : openJournal({ dir: journalDir, sync: opts.sync ?? 'always' }),
    });
    if (!opts.crash) cleanup.unshift(() => w.close());
    return w;
  };
  const journalFiles = () => fs.readdirSync(journalDir).filter((f) => f.endsWith('.jsonl'));
  /** What the rollups hold, summed over every row. */
  const rolledUp = async (table: 'usage_daily' | 'usage_hourly') => {
    const r = await storage.db
      .selectFrom(table)
      .select((eb) => [
        eb.fn.sum<number>('requests').as('requests'),
        eb.fn.sum<number>('cost_nano').as('cost'),
      ])
      .executeTakeFirstOrThrow();
    return { requests: Number(r.requests ?? 0), cost: Number(r.cost ?? 0) };
  };
  return {
    storage,
    ledger,
    keys,
    row,
    charge,
    totals,
    ids,
    writer,
    journalDir,
    journalFiles,
    newLedger,
    rolledUp,
  };
}

describe('usage writer', () => {
  it('commits the spend of the rows it writes, not spend settled while it was writing', async () => {
    const w = await world();
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let first = true;
    // Stands for a slow database: the batch's transaction is still open while requests settle.
    const slow: Contributor = async () => {
      if (!first) return;
      first = false;
      entered();
      await gate;
    };
    const writer = w.writer({ contributors: [slow, w.ledger.flushInto], journal: false });

    await w.charge(100);
    await writer.enqueue(w.row(100));
    const flushing = writer.flush();
    await inside;
    // Settled during the write; its log row is enqueued only afterwards.
    await w.charge(50);
    open();
    await flushing;
    // A crash here (kill -9) keeps only what is committed: it must explain itself.
    const t = await w.totals();
    expect(t).toEqual({ used: 100, spent: 100, logged: 100, rows: 1 });

    await writer.enqueue(w.row(50));
    await writer.flush();
    expect(await w.totals()).toEqual({ used: 150, spent: 150, logged: 150, rows: 2 });
    expect(await w.ledger.usedNano(w.ids.keyId, async () => (await w.totals()).used)).toBe(150);
  });

  it.each(['always', 'interval', 'never'] as const)(
    '%s: holds a row in the journal once enqueue resolves, and replays it after a crash with its spend, once',
    async (sync) => {
      const w = await world();
      const crashed = w.writer({ crash: true, sync });
      await w.charge(100);
      const row = w.row(100);
      await crashed.enqueue(row);
      // Durable before the answer would be released: the journal file holds the row.
      const [file] = w.journalFiles();
      const text = fs.readFileSync(path.join(w.journalDir, file!), 'utf8');
      expect(JSON.parse(text.trim())).toMatchObject({ request_id: row.request_id, cost_nano: 100 });
      expect(await w.totals()).toEqual({ used: 0, spent: 0, logged: 0, rows: 0 });

      // "kill -9" and start again on the same data dir: the row and its spend are written once.
      const copy = text;
      const restarted = w.writer();
      expect(await restarted.recover()).toEqual({ rows: 1, written: 1 });
      expect(await w.totals()).toEqual({ used: 100, spent: 100, logged: 100, rows: 1 });
      expect(w.journalFiles()).toEqual([]);

      // The same journal found again (a crash after the batch committed, before its segment was
      // deleted): nothing is charged twice.
      // A damaged record next to it is skipped, not fatal to the start.
      fs.writeFileSync(path.join(w.journalDir, 'abcdef.1.jsonl'), copy + '{"request_id":"half"}\n{"torn');
      expect(await w.writer().recover()).toEqual({ rows: 1, written: 0 });
      expect(await w.totals()).toEqual({ used: 100, spent: 100, logged: 100, rows: 1 });
    },
  );

  it("deletes a batch's journal once it commits, and leaves none on close", async () => {
    const w = await world();
    const writer = w.writer();
    await w.charge(10);
    await writer.enqueue(w.row(10));
    expect(w.journalFiles()).toHaveLength(1);
    await writer.flush();
    await new Promise((r) => setImmediate(r));
    await w.charge(20);
    await writer.enqueue(w.row(20));
    await writer.flush();
    await writer.close();
    expect(w.journalFiles()).toEqual([]);
    expect(fs.readdirSync(w.journalDir)).toEqual([]);
    expect(await w.totals()).toEqual({ used: 30, spent: 30, logged: 30, rows: 2 });
  });

  it('journals a burst of concurrent rows in a few group commits', async () => {
    const w = await world();
    const writer = w.writer();
    for (let i = 0; i < 200; i++) await w.charge(1);
    await Promise.all(Array.from({ length: 200 }, () => writer.enqueue(w.row(1))));
    const j = writer.stats().journal!;
    expect(j.rows).toBe(200);
    expect(j.writes).toBeLessThan(20);
    await writer.flush();
    expect(await w.totals()).toEqual({ used: 200, spent: 200, logged: 200, rows: 200 });
  });

  it('writes a batch in inserts of a few fixed sizes on SQLite, each row once, skipping rows already stored', async () => {
    const w = await world();
    const seen: Array<{ rows: number; written: number }> = [];
    // What each committed batch's contributors were told (on SQLite a replay is first tried
    // as if every row were new, and aborted).
    const record: Contributor = async (_trx, rows, written) => ({
      committed: () => seen.push({ rows: rows.length, written: written.length }),
      aborted() {},
    });
    const writer = w.writer({ contributors: [record], journal: false });
    const first = Array.from({ length: 150 }, () => w.row(0));
    for (const r of first) await writer.enqueue(r);
    await writer.flush();
    // A replay of the first batch among 151 new rows (and one new row twice).
    const fresh = Array.from({ length: 151 }, () => w.row(0));
    for (const r of [...fresh.slice(0, 70), ...first, ...fresh.slice(70), fresh[3]!]) await writer.enqueue(r);
    await writer.flush();
    expect(seen).toEqual([
      { rows: 150, written: 150 },
      { rows: 302, written: 151 },
    ]);
    expect((await w.totals()).rows).toBe(301);
    const daily = await w.storage.db
      .selectFrom('usage_daily')
      .select((eb) => eb.fn.sum<number>('requests').as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(daily.n)).toBe(301);
  });

  it('cuts a batch into the fixed SQLite insert sizes, largest first; PostgreSQL into 500s', () => {
    expect(insertSizes('sqlite', 0)).toEqual([]);
    expect(insertSizes('sqlite', 1)).toEqual([1]);
    expect(insertSizes('sqlite', 301)).toEqual([128, 128, 32, 8, 4, 1]);
    expect(insertSizes('postgres', 1201)).toEqual([1201]);
    expect(insertSizes('postgres', 12_001)).toEqual([5000, 5000, 2001]);
  });

  it('stores a clean row as it is and cleans each kind of unstorable text, in the journal too', async () => {
    const w = await world();
    const writer = w.writer();
    const clean = w.row(0);
    const dirty = [
      { ...w.row(0), model: 'm\u0000x' },
      { ...w.row(0), key_name: 'k'.repeat(300) },
      { ...w.row(0), attempts: 'a'.repeat(70_000) },
      { ...w.row(0), ip: '1\u0000.2' },
      // As an older release journaled it: without the columns added since.
      { ...w.row(0), ...Object.fromEntries(Object.keys(LATER_LOG_COLUMNS).map((c) => [c, undefined])) },
      { ...w.row(0), upstream_model: undefined },
      // A lone surrogate, and a pair the length limit cuts in half.
      { ...w.row(0), model: 'gpt-\ud800zz', key_name: `${'k'.repeat(255)}😀x` },
    ] as NewLog[];
    for (const r of [clean, ...dirty]) await writer.enqueue(r);
    const journaled = fs
      .readFileSync(path.join(w.journalDir, w.journalFiles()[0]!), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    await writer.flush();
    const stored = await w.storage.db.selectFrom('logs').selectAll().orderBy('id').execute();
    for (const got of [journaled, stored]) {
      expect(got[0]).toMatchObject({ ...clean });
      expect(got[1]).toMatchObject({ model: 'mx' });
      expect(got[2].key_name).toBe('k'.repeat(256));
      expect(got[3].attempts).toHaveLength(64 * 1024);
      expect(got[4]).toMatchObject({ ip: '1.2' });
      expect(got[5]).toMatchObject(LATER_LOG_COLUMNS);
      expect(got[6]).toMatchObject({ upstream_model: null });
      expect(got[7]).toMatchObject({ model: 'gpt-\ufffdzz', key_name: `${'k'.repeat(255)}\ufffd` });
    }
  });

  it('rolls a batch spanning days and hours up into each UTC day and hour', async () => {
    const w = await world();
    const writer = w.writer();
    const at = (iso: string) => Date.parse(iso);
    const times = [
      '2026-03-01T23:10:00Z',
      '2026-03-01T23:50:00Z',
      '2026-03-02T00:05:00Z',
      '2026-03-01T22:59:59.999Z',
      '2026-03-02T00:30:00Z',
    ];
    for (const t of times) await writer.enqueue({ ...w.row(0), created_at: at(t) });
    await writer.flush();
    const daily = await w.storage.db
      .selectFrom('usage_daily')
      .select(['day', 'requests'])
      .orderBy('day')
      .execute();
    expect(daily.map((r) => [r.day, Number(r.requests)])).toEqual([
      ['2026-03-01', 3],
      ['2026-03-02', 2],
    ]);
    const hourly = await w.storage.db
      .selectFrom('usage_hourly')
      .select(['hour', 'requests'])
      .orderBy('hour')
      .execute();
    expect(hourly.map((r) => [Number(r.hour), Number(r.requests)])).toEqual([
      [at('2026-03-01T22:00:00Z'), 1],
      [at('2026-03-01T23:00:00Z'), 2],
      [at('2026-03-02T00:00:00Z'), 2],
    ]);
  });

  it('adds a batch of many rollup rows (one per model) to the stored ones', async () => {
    const w = await world();
    const writer = w.writer();
    const models = Array.from({ length: 131 }, (_, i) => `model-${i}`);
    for (let round = 0; round < 2; round++) {
      for (const model of models) await writer.enqueue({ ...w.row(0), model, prompt_tokens: 3 });
      await writer.flush();
    }
    for (const table of ['usage_daily', 'usage_hourly'] as const) {
      const rows = await w.storage.db
        .selectFrom(table)
        .select(['model', 'requests', 'prompt_tokens'])
        .execute();
      expect(rows).toHaveLength(131);
      for (const r of rows) expect([Number(r.requests), Number(r.prompt_tokens)]).toEqual([2, 6]);
    }
  });
});

describe('usage writer on SQLite: batches in a worker thread', () => {
  it("charges a replayed row's spend once: tried as all new, rolled back, written again with the new rows", async () => {
    const w = await world();
    // A first life wrote A (and its spend), then crashed before deleting A's journal segment,
    // which also held B: settled, not written.
    await w.charge(100);
    const a = w.row(100);
    const first = w.writer();
    await first.enqueue(a);
    await first.close();
    const b = w.row(50);
    fs.writeFileSync(
      path.join(w.journalDir, 'abcdef.1.jsonl'),
      `${JSON.stringify(a)}\n${JSON.stringify(b)}\n`,
    );

    // The next life: its ledger holds nothing yet; the contributors' tries are traced.
    const ledger = w.newLedger();
    const tries: string[] = [];
    const trace: Contributor = async (_trx, rows, written) => ({
      committed: () => tries.push(`committed ${written.length}/${rows.length}`),
      aborted: () => tries.push(`aborted ${written.length}/${rows.length}`),
    });
    const restarted = w.writer({ contributors: [ledger.flushInto, trace] });
    expect(await restarted.recover()).toEqual({ rows: 2, written: 1 });
    expect(tries).toEqual(['aborted 2/2', 'committed 1/2']);
    expect(await w.totals()).toEqual({ used: 150, spent: 150, logged: 150, rows: 2 });
    expect(await w.rolledUp('usage_daily')).toEqual({ requests: 2, cost: 150 });
    expect(await w.rolledUp('usage_hourly')).toEqual({ requests: 2, cost: 150 });
    expect(await ledger.usedNano(w.ids.keyId, async () => -1)).toBe(-1);
  });

  it('rolls the whole batch back when a contributor statement fails, and keeps its rows queued', async () => {
    const w = await world();
    let broken = true;
    const failing: Contributor = async (trx) => {
      if (broken) await sql`update "no_such_table" set "x" = 1`.execute(trx);
    };
    const writer = w.writer({ contributors: [w.ledger.flushInto, failing] });
    await w.charge(100);
    await writer.enqueue(w.row(100));
    await expect(writer.flush()).rejects.toThrow(/no_such_table/);
    // Nothing of the batch committed: no row, no rollup, no spend; the row waits, journaled.
    expect(await w.totals()).toEqual({ used: 0, spent: 0, logged: 0, rows: 0 });
    expect(await w.rolledUp('usage_daily')).toEqual({ requests: 0, cost: 0 });
    expect(writer.stats()).toMatchObject({ failures: 1, queued: 1 });
    expect(w.journalFiles()).toHaveLength(1);
    // The ledger's part was aborted: the spend is still pending here, not lost or moved.
    expect(await w.ledger.usedNano(w.ids.keyId, async () => (await w.totals()).used)).toBe(100);

    broken = false;
    await writer.flush();
    expect(await w.totals()).toEqual({ used: 100, spent: 100, logged: 100, rows: 1 });
    expect(await w.rolledUp('usage_daily')).toEqual({ requests: 1, cost: 100 });
    expect(await w.ledger.usedNano(w.ids.keyId, async () => (await w.totals()).used)).toBe(100);
  });

  it('refuses a contributor that reads, loudly, and keeps the rows', async () => {
    const w = await world();
    const reading: Contributor = async (trx) => {
      await trx.selectFrom('api_keys').select('used_nano').execute();
    };
    const writer = w.writer({ contributors: [reading], journal: false });
    await writer.enqueue(w.row(0));
    await expect(writer.flush()).rejects.toThrow(/recording db: refused a query that answers rows/);
    expect(writer.pending()).toBe(1);
    expect((await w.totals()).rows).toBe(0);
  });

  it('starts its worker thread with the first batch and stops it on close', async () => {
    const w = await world();
    const writer = w.writer();
    expect(writer.stats().workerThread).toBe(false);
    await writer.enqueue(w.row(0));
    await writer.flush();
    expect(writer.stats().workerThread).toBe(true);
    // close() resolves once the thread has exited (it closes its connection first).
    await writer.close();
    expect(writer.stats().workerThread).toBe(false);
    expect((await w.totals()).rows).toBe(1);
  });

  it('keeps the rows of a batch its worker died in, and starts a new worker for the next flush', async () => {
    const w = await world();
    let slow = false;
    // A statement that runs for a while: the worker is killed while it is inside the batch.
    const slowly: Contributor = async (trx) => {
      if (slow)
        await sql`update "api_keys" set "last_used_ip" = (with recursive c(x) as (select 1 union all select x + 1 from c where x < 3000000) select count(*) from c) where "id" = ${w.ids.keyId}`.execute(
          trx,
        );
    };
    const writer = w.writer({ contributors: [w.ledger.flushInto, slowly] });
    await w.charge(10);
    await writer.enqueue(w.row(10));
    await writer.flush();
    expect(writer.stats().workerThread).toBe(true);

    slow = true;
    await w.charge(20);
    await writer.enqueue(w.row(20));
    const flushing = writer.flush();
    await writer.killWorker();
    await expect(flushing).rejects.toThrow(/worker exited/);
    expect(writer.stats()).toMatchObject({ queued: 1, failures: 1, workerThread: false });
    expect(await w.totals()).toEqual({ used: 10, spent: 10, logged: 10, rows: 1 });
    expect(await w.ledger.usedNano(w.ids.keyId, async () => (await w.totals()).used)).toBe(30);

    slow = false;
    await writer.flush();
    expect(writer.stats().workerThread).toBe(true);
    expect(await w.totals()).toEqual({ used: 30, spent: 30, logged: 30, rows: 2 });
    expect(await w.ledger.usedNano(w.ids.keyId, async () => (await w.totals()).used)).toBe(30);
  });
});
