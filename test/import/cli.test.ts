// `mole import new-api` with the server's own environment (MOLE_DATA_DIR), against a new-api
// SQLite database built from new-api's table definitions: the count table, --dry-run, --json,
// idempotency, progress lines, exit codes, and a gateway on the same data dir serving the
// imported keys — live over Redis when the gateway is already running, or after its start.
// The import itself runs as the real CLI process (src/cli/index.ts, see builtEntry): it must exit
// on its own once done, its storage and Redis closed. The other calls run the CLI's own
// `run()` in this process, as test/cli/cli.test.ts does, which saves a node start-up
// (seconds of CPU) each.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/program.js';
import { openStorage } from '../../src/db/open.js';
import { type CliResult, moleProcess, scratchDatabase, waitFor } from '../helpers/process.js';
import { pgUrl, redisUrl, startTestServer } from '../helpers/server.js';
import { startMockProvider, type MockProvider } from '../mock-provider/server.js';
import { buildSqlite, NEW_API_SQLITE, newApiData, newApiKey } from './fixtures.js';

const UPSTREAM_KEY = 'sk-upstream-mock-credential-0005';
const EXTRA_TOKENS = 1100;

/** Runs `mole <args>` in this process, as src/cli/index.ts would in its own. */
async function mole(args: string[], env: Record<string, string>): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    env: { NO_COLOR: '1', ...env },
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
    stdin: Readable.from(['']),
  });
  return { code, stdout, stderr };
}

const keyStatus = (url: string, key: string) =>
  fetch(`${url}/v1/key`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.status);

describe('mole import new-api (CLI process)', { timeout: 180_000 }, () => {
  let dir: string;
  let file: string;
  let dataDir: string;
  let mock: MockProvider;
  let data: ReturnType<typeof newApiData>;
  const rows = (sql: string) => {
    const db = new SQLite(path.join(dataDir, 'mole.sqlite'), { readonly: true });
    try {
      return db.prepare(sql).all() as Record<string, unknown>[];
    } finally {
      db.close();
    }
  };

  beforeAll(async () => {
    mock = await startMockProvider({ apiKey: UPSTREAM_KEY });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-import-cli-'));
    file = path.join(dir, 'new-api.db');
    dataDir = path.join(dir, 'data');
    data = newApiData({ mockOrigin: mock.url.replace(/\/v1$/, '') });
    // A large tokens table, for the progress line.
    for (let i = 0; i < EXTRA_TOKENS; i++)
      data.rows.tokens!.push({
        id: 100 + i,
        user_id: 1,
        key: newApiKey(),
        status: 1,
        name: `bulk-${i}`,
        created_time: 1,
        accessed_time: 1,
        expired_time: -1,
        remain_quota: 0,
        used_quota: 0,
        unlimited_quota: 1,
        model_limits_enabled: 0,
        model_limits: '',
        allow_ips: '',
        group: '',
      });
    buildSqlite(file, NEW_API_SQLITE, data.rows);
  });
  afterAll(async () => {
    await mock?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('bad usage exits 2, an unreadable source 1, each with one line on stderr', async () => {
    const env = { MOLE_DATA_DIR: dataDir };
    const missing = await mole(['import', 'new-api'], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--from/);
    const nothing = await mole(['import', 'new-api', '--from', path.join(dir, 'nope.db')], env);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(nothing.stderr).toMatch(/cannot open .*nope\.db/);
    const help = await mole(['import', 'new-api', '--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--dry-run/);
  });

  it('--dry-run prints the count table and writes nothing: no data dir, database or secret', async () => {
    // Its own data dir, not made yet (the calls above may have generated dataDir's secret).
    const fresh = path.join(dir, 'dry-run-data');
    const r = await moleProcess(['import', 'new-api', '--from', file, '--dry-run'], {
      env: { MOLE_DATA_DIR: fresh },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(fs.existsSync(fresh), 'the dry run made the data dir').toBe(false);
    expect(r.stdout).toMatch(/Dry run: nothing was written/);
    expect(r.stdout).toMatch(/^users\s+3\s+2\s+1 deleted; 1 username not allowed/m);
    expect(r.stdout).toMatch(
      new RegExp(`^tokens\\s+${7 + EXTRA_TOKENS}\\s+2\\s+1 deleted; 1 owner not imported`, 'm'),
    );
    expect(r.stdout).toMatch(/^channels\s+6\s+1\s+1 type 3 \(Azure\) not supported/m);
    expect(r.stdout).toMatch(/^prices\s+2\s+1/m);
    expect(r.stdout).toMatch(/^groups\s+2\s+0/m);
    // A progress line for the large table.
    expect(r.stderr).toMatch(new RegExp(`tokens: 500/${EXTRA_TOKENS + 9}`));
  });

  it('--dry-run on a database at an older schema version reports against it, unchanged', async () => {
    const older = path.join(dir, 'older-data');
    const s = await openStorage({ dataDir: older, migrateUpTo: '0001_initial' });
    await s.close();
    const before = snapshot(older);
    const r = await mole(['import', 'new-api', '--from', file, '--dry-run', '--json'], {
      MOLE_DATA_DIR: older,
    });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.dryRun).toBe(true);
    expect(report.tables.map((t: { imported: number }) => t.imported)).toEqual([
      3,
      7 + EXTRA_TOKENS,
      6,
      2,
      2,
    ]);
    expect(snapshot(older)).toEqual(before);
    const db = new SQLite(path.join(older, 'mole.sqlite'), { readonly: true });
    try {
      expect(db.prepare('SELECT name FROM kysely_migration').all()).toEqual([{ name: '0001_initial' }]);
    } finally {
      db.close();
    }
  });

  it('imports, and a gateway on the same data dir serves the imported keys and channels', async () => {
    // With Redis the running gateway hears of the import at once; without it, it starts after.
    const live = Boolean(redisUrl());
    const env = { MOLE_DATA_DIR: dataDir, ...(live ? { REDIS_URL: redisUrl()! } : {}) };
    const before = live ? await startTestServer({ redis: true, env: { MOLE_DATA_DIR: dataDir } }) : null;
    try {
      if (before) expect(await keyStatus(before.url, `sk-${data.keys.good}`)).toBe(401);
      const r = await moleProcess(['import', 'new-api', '--from', file], { env });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^Imported:/);
      expect(r.stdout).toMatch(new RegExp(`^tokens\\s+${7 + EXTRA_TOKENS}\\s+2`, 'm'));
      const s = before ?? (await startTestServer({ env: { MOLE_DATA_DIR: dataDir } }));
      try {
        await waitFor(
          async () => (await keyStatus(s.url, `sk-${data.keys.good}`)) === 200,
          10_000,
          'imported key',
        );
        const res = await fetch(`${s.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer sk-${data.keys.good}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            model: 'mole-mini',
            messages: [{ role: 'user', content: 'hi' }],
            max_tokens: 4,
          }),
        });
        expect(res.status, await res.clone().text()).toBe(200);
        expect(mock.requests.at(-1)!.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
      } finally {
        if (!before) await s.close();
      }
    } finally {
      await before?.close();
    }
    // The secret is only hashed, the credentials only sealed.
    const stored = fs.readFileSync(path.join(dataDir, 'mole.sqlite')).toString('latin1');
    expect(stored.includes(data.keys.good)).toBe(false);
    expect(stored.includes(UPSTREAM_KEY)).toBe(false);
  });

  it('re-running imports nothing twice (--json)', async () => {
    const r = await mole(['import', 'new-api', '--from', file, '--json'], { MOLE_DATA_DIR: dataDir });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.tables.map((t: { imported: number }) => t.imported)).toEqual([0, 0, 0, 0, 0]);
    expect(report.tables[1].reasons['already imported']).toBe(7 + EXTRA_TOKENS);
    expect(rows('SELECT COUNT(*) AS n FROM api_keys')[0]!.n).toBe(7 + EXTRA_TOKENS);
    expect(rows('SELECT COUNT(*) AS n FROM users')[0]!.n).toBe(3);
  });

  it('refuses, writing nothing, a source without new-api tables and a secret its channels do not open', async () => {
    const counts = () =>
      rows('SELECT (SELECT COUNT(*) FROM users) AS u, (SELECT COUNT(*) FROM channels) AS c')[0];
    const before = counts();
    const foreign = path.join(dir, 'foreign.db');
    const db = new SQLite(foreign);
    db.exec('CREATE TABLE x (a)');
    db.close();
    const notNewApi = await mole(['import', 'new-api', '--from', foreign], { MOLE_DATA_DIR: dataDir });
    expect(notNewApi.code).toBe(1);
    expect(notNewApi.stderr).toMatch(/no new-api or one-api tables/);
    // The data dir's channels were sealed with its generated secret, not this one.
    for (const dry of [[], ['--dry-run']]) {
      const r = await mole(['import', 'new-api', '--from', file, ...dry], {
        MOLE_DATA_DIR: dataDir,
        MOLE_SECRET: 'not-the-secret-of-this-data-dir',
      });
      expect(r.code, r.stdout).toBe(1);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/MOLE_SECRET is not the secret this database's channels are sealed with/);
    }
    expect(counts()).toEqual(before);
  });

  it('--dry-run on the imported database reads it as it is and leaves every file as it was', async () => {
    // As a stopped gateway leaves it: rows()' read-only connections leave the -wal and -shm
    // files behind, which the last read-write connection to close removes.
    const settle = new SQLite(path.join(dataDir, 'mole.sqlite'));
    settle.prepare('SELECT COUNT(*) FROM sqlite_master').get();
    settle.close();
    const before = snapshot(dataDir);
    expect(Object.keys(before).sort()).toEqual(['mole.sqlite', 'secret']);
    const r = await mole(['import', 'new-api', '--from', file, '--dry-run'], { MOLE_DATA_DIR: dataDir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Dry run: nothing was written/);
    expect(r.stdout).toMatch(/^users\s+0\s+5\s+3 already imported/m);
    expect(r.stdout).toMatch(
      new RegExp(`^tokens\\s+0\\s+${9 + EXTRA_TOKENS}\\s.*${7 + EXTRA_TOKENS} already imported`, 'm'),
    );
    expect(snapshot(dataDir)).toEqual(before);
  });
});

/** Every file in `dir` with its size, modification time and content hash. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort()) {
    const st = fs.statSync(path.join(dir, f));
    if (!st.isFile()) continue;
    const hash = createHash('sha256')
      .update(fs.readFileSync(path.join(dir, f)))
      .digest('hex');
    out[f] = `${st.size} ${st.mtimeMs} ${hash}`;
  }
  return out;
}

const pgDescribe = pgUrl() ? describe : describe.skip;

pgDescribe('mole import new-api --dry-run on PostgreSQL (CLI process)', { timeout: 180_000 }, () => {
  let dir: string;
  let file: string;
  let target: { url: string; drop: () => Promise<void> };
  const SECRET = 'dry-run-test-secret-0123456789';
  /** The target's tables and the migrations it recorded. */
  const state = async () => {
    const c = new pg.Client({ connectionString: target.url });
    await c.connect();
    try {
      const tables = (
        await c.query(
          "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        )
      ).rows.map((r) => r.table_name as string);
      const migrated = tables.includes('kysely_migration')
        ? (await c.query('SELECT name FROM kysely_migration ORDER BY name')).rows.map((r) => r.name as string)
        : [];
      const users = tables.includes('users')
        ? Number((await c.query('SELECT COUNT(*) AS n FROM users')).rows[0].n)
        : 0;
      return { tables, migrated, users };
    } finally {
      await c.end();
    }
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-import-pg-dry-'));
    file = path.join(dir, 'new-api.db');
    buildSqlite(file, NEW_API_SQLITE, newApiData({ mockOrigin: 'http://127.0.0.1:9' }).rows);
    target = await scratchDatabase(pgUrl()!, 'mole_dry_run');
  });
  afterAll(async () => {
    await target?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a database not migrated yet: reports what would be imported, creates no table', async () => {
    const env = { DATABASE_URL: target.url, MOLE_SECRET: SECRET };
    // MOLE_SECRET is still required with DATABASE_URL, as for the import itself.
    const noSecret = await moleProcess(['import', 'new-api', '--from', file, '--dry-run'], {
      env: { DATABASE_URL: target.url },
    });
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toMatch(/MOLE_SECRET is required/);

    const r = await moleProcess(['import', 'new-api', '--from', file, '--dry-run'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Dry run: nothing was written/);
    expect(r.stdout).toMatch(/^users\s+3\s+2\s/m);
    expect(r.stdout).toMatch(/^tokens\s+7\s+2\s/m);
    expect(r.stdout).toMatch(/^channels\s+6\s+1\s/m);
    expect(await state()).toEqual({ tables: [], migrated: [], users: 0 });
  });

  it('an older schema version: reports against it, migrates nothing', async () => {
    const s = await openStorage({ databaseUrl: target.url, dataDir: dir, migrateUpTo: '0001_initial' });
    await s.close();
    const before = await state();
    expect(before.migrated).toEqual(['0001_initial']);
    const r = await moleProcess(['import', 'new-api', '--from', file, '--dry-run', '--json'], {
      env: { DATABASE_URL: target.url, MOLE_SECRET: SECRET },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).tables.map((t: { imported: number }) => t.imported)).toEqual([3, 7, 6, 2, 2]);
    expect(await state()).toEqual(before);
  });

  it('a migrated database with the import done: read as it is', async () => {
    const env = { DATABASE_URL: target.url, MOLE_SECRET: SECRET };
    const done = await mole(['import', 'new-api', '--from', file], env);
    expect(done.code, done.stderr).toBe(0);
    const before = await state();
    expect(before.users).toBe(3);
    const r = await moleProcess(['import', 'new-api', '--from', file, '--dry-run', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.tables.map((t: { imported: number }) => t.imported)).toEqual([0, 0, 0, 0, 0]);
    expect(report.tables[1].reasons['already imported']).toBe(7);
    expect(await state()).toEqual(before);
  });
});
