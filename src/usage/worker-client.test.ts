// The usage writer's worker thread on a real SQLite file: batches, replays, failures, and a
// thread that dies.
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { createWorkerClient } from './worker-client.js';
import { ledgerWorld } from '../../test/helpers/ledger-world.js';
import { logRow } from '../../test/helpers/log-row.js';

const cleanup: Array<() => Promise<void>> = [];
/** A row as the writer sends it to the worker. */
const json = (row: object) => JSON.stringify(row);
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

async function world() {
  const { dir, storage, accounts, keys } = await ledgerWorld('mole-writer-worker-');
  const user = await accounts.createUser({
    username: 'u',
    password: 'password-123',
    role: 'user',
    group: 'default',
    balanceNano: 1000,
  });
  const { row: key } = await keys.create(Number(user.id), { name: 'k' });
  const row = () => logRow({ user_id: Number(user.id), key_id: Number(key.id), cost_nano: 10 });
  const client = createWorkerClient(storage.sqliteFile!);
  cleanup.push(async () => {
    await client.close();
    await storage.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const logged = async () => (await storage.db.selectFrom('logs').select('request_id').execute()).length;
  const balance = async () =>
    Number(
      (
        await storage.db
          .selectFrom('users')
          .select('balance_nano')
          .where('id', '=', Number(user.id))
          .executeTakeFirstOrThrow()
      ).balance_nano,
    );
  const spend = (nano: number) => ({
    sql: 'update "users" set "balance_nano" = "balance_nano" - ? where "id" = ?',
    parameters: [nano, Number(user.id)],
  });
  return { client, row, logged, balance, spend };
}

/** This process's threads (Linux tasks) by their nice value. */
function niceOfThreads(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      // nice is the 19th field; the command (field 2) may hold spaces, so count from its ')'.
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      out.set(tid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

describe('usage writer worker thread', () => {
  it.runIf(process.platform === 'linux')(
    "runs 10 steps of CPU priority (nice) below the process's event loop",
    async () => {
      const before = niceOfThreads();
      const w = await world();
      await w.client.write({ rows: [json(w.row())], written: null, statements: [] });
      const after = niceOfThreads();
      const main = after.get(String(process.pid))!;
      const started = [...after].filter(([tid]) => !before.has(tid)).map(([, nice]) => nice);
      expect(started).toContain(Math.min(19, main + 10));
      expect(main).toBe(before.get(String(process.pid)));
    },
  );

  it("writes a batch with the contributors' statements in one transaction", async () => {
    const w = await world();
    const rows = [w.row(), w.row()];
    expect(await w.client.write({ rows: rows.map(json), written: null, statements: [w.spend(20)] })).toEqual({
      committed: true,
      written: 2,
    });
    expect([await w.logged(), await w.balance()]).toEqual([2, 980]);
  });

  it('answers which rows are new when some were stored already, committing nothing', async () => {
    const w = await world();
    const stored = w.row();
    await w.client.write({ rows: [stored].map(json), written: null, statements: [] });
    const fresh = w.row();
    const replay = { rows: [stored, fresh].map(json), statements: [w.spend(20)] };
    expect(await w.client.write({ ...replay, written: null })).toEqual({
      committed: false,
      inserted: [fresh.request_id],
    });
    expect([await w.logged(), await w.balance()]).toEqual([1, 1000]);
    // Told which rows are new, it commits.
    expect(
      await w.client.write({ ...replay, written: [fresh.request_id], statements: [w.spend(10)] }),
    ).toEqual({
      committed: true,
      written: 1,
    });
    expect([await w.logged(), await w.balance()]).toEqual([2, 990]);
  });

  it('rolls back a batch whose statement fails, and stays up', async () => {
    const w = await world();
    const bad = { sql: 'update "no_such_table" set "x" = 1', parameters: [] };
    await expect(
      w.client.write({ rows: [w.row()].map(json), written: null, statements: [bad] }),
    ).rejects.toThrow(/no_such_table/);
    expect(await w.logged()).toBe(0);
    expect(w.client.running()).toBe(true);
    await w.client.write({ rows: [w.row()].map(json), written: null, statements: [] });
    expect(await w.logged()).toBe(1);
  });

  it('starts again at the next batch after its thread died', async () => {
    const w = await world();
    await w.client.write({ rows: [w.row()].map(json), written: null, statements: [] });
    await w.client.terminate();
    expect(w.client.running()).toBe(false);
    expect(
      await w.client.write({ rows: [w.row()].map(json), written: null, statements: [w.spend(5)] }),
    ).toEqual({
      committed: true,
      written: 1,
    });
    expect([await w.logged(), await w.balance()]).toEqual([2, 995]);
    await w.client.close();
    expect(w.client.running()).toBe(false);
    // Closed for good: no thread starts again.
    await expect(
      w.client.write({ rows: [w.row()].map(json), written: null, statements: [] }),
    ).rejects.toThrow(/closed/);
    expect(w.client.running()).toBe(false);
  });
});
