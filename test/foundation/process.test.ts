// The real process (contract §1): on an empty data dir with no MOLE_MASTER_KEY it prints the
// startup line (the one line naming the URL it serves) and a generated master key once, keeps
// only its hash, and the key keeps working after a restart (which does not print it again).
// SIGTERM exits 0 promptly.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { gatewayEnv } from '../helpers/gateway-env.js';
import { builtEntry, freePort, REPO_ROOT as ROOT } from '../helpers/process.js';

interface Running {
  child: ChildProcess;
  port: number;
  base: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];

/** The node flags of package.json's start script: this suite runs the gateway as `npm start` does. */
const START_FLAGS = (
  JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }
).scripts.start
  .split(/\s+/)
  .filter((w) => w.startsWith('--'));

/**
 * Starts src/main.ts (builtEntry) with npm start's node flags on `dataDir`, with no storage,
 * key or proxy settings but `extra`'s.
 */
async function start(dataDir: string, extra: NodeJS.ProcessEnv = {}): Promise<Running> {
  const port = await freePort();
  const env = gatewayEnv(port, {
    MOLE_DATA_DIR: dataDir,
    MOLE_LOG_LEVEL: 'info',
    MOLE_MASTER_KEY: undefined,
    ...extra,
  });
  const child = spawn(process.execPath, [...START_FLAGS, builtEntry('main.ts')], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const until = Date.now() + 45_000;
  while (!/MoleAPI listening on /.test(out)) {
    if (child.exitCode !== null) throw new Error(`exited early (${child.exitCode}): ${out}\n${err}`);
    if (Date.now() > until) throw new Error(`no startup line within 45 s: ${out}\n${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, port, base: `http://127.0.0.1:${port}`, stdout: () => out, stderr: () => err, exited };
}

async function stop(p: Running): Promise<{ code: number | null; ms: number }> {
  const t0 = Date.now();
  p.child.kill('SIGTERM');
  const timeout = new Promise<never>((_, rej) =>
    setTimeout(() => rej(new Error('did not exit within 10 s of SIGTERM')), 10_000),
  );
  const { code } = await Promise.race([p.exited, timeout]);
  return { code, ms: Date.now() - t0 };
}

const sha256hex = (s: string) => createHash('sha256').update(s).digest('hex');

/** How many master key hashes the data dir's database holds. */
function storedMasterKeys(dataDir: string): number {
  const db = new Database(path.join(dataDir, 'mole.sqlite'), { readonly: true });
  try {
    return (
      db.prepare("select count(*) as n from meta where name = 'master_key_sha256'").get() as { n: number }
    ).n;
  } finally {
    db.close();
  }
}

describe('the real process', () => {
  let dir = '';
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('first start generates and prints a master key once; only its hash is stored; restart keeps it; SIGTERM exits 0', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-process-'));
    const dataDir = path.join(dir, 'data'); // does not exist yet

    // ── first start ──
    const first = await start(dataDir);
    const out1 = first.stdout();
    const startup = out1.split('\n').filter((l) => l.startsWith('MoleAPI listening on '));
    expect(startup).toEqual([`MoleAPI listening on http://127.0.0.1:${first.port} (storage: sqlite)`]);
    // That is the one line naming where it serves (contract §1): not Fastify's own "Server
    // listening at …" log lines besides (the log level here is info).
    expect(
      out1.split('\n').filter((l) => l.includes(`:${first.port}`)),
      out1,
    ).toEqual(startup);
    expect(first.stderr()).not.toContain(`:${first.port}`);
    const m = /Generated master key[^\n]*\n\s*(mk-[0-9A-Za-z]{48})\s*\n/.exec(out1);
    expect(m, out1).not.toBeNull();
    const masterKey = m![1]!;
    // Printed exactly once, and never through the logger (stderr or the JSON log lines).
    expect(out1.split(masterKey).length - 1).toBe(1);
    expect(first.stderr()).not.toContain(masterKey);
    for (const line of out1.split('\n').filter((l) => l.startsWith('{')))
      expect(line).not.toContain(masterKey);

    const api = (base: string, key: string, method = 'GET', p = '/api/users', body?: unknown) =>
      fetch(base + p, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
    expect((await api(first.base, masterKey)).status).toBe(200);
    expect(
      (await api(first.base, masterKey.slice(0, -1) + (masterKey.endsWith('a') ? 'b' : 'a'))).status,
    ).toBe(401);
    // It serves the whole walk-through: a user, a key, GET /v1/key.
    const user = (await (
      await api(first.base, masterKey, 'POST', '/api/users', {
        username: 'proc-user',
        password: 'password-123',
      })
    ).json()) as { id: number };
    const keyRes = await api(first.base, masterKey, 'POST', '/api/keys', {
      name: 'proc-key',
      user_id: user.id,
    });
    expect(keyRes.status).toBe(201);
    const secret = ((await keyRes.json()) as { key: string }).key;
    const self = await fetch(first.base + '/v1/key', { headers: { authorization: `Bearer ${secret}` } });
    expect(self.status).toBe(200);
    expect(((await self.json()) as { name: string }).name).toBe('proc-key');

    const stopped1 = await stop(first);
    expect(stopped1.code).toBe(0);
    expect(stopped1.ms).toBeLessThan(10_000);

    // ── what is on disk ──
    const files = fs.readdirSync(dataDir);
    expect(files).toContain('mole.sqlite');
    expect(files).toContain('secret');
    expect(fs.statSync(path.join(dataDir, 'secret')).mode & 0o077).toBe(0);
    // Every file, the usage journal's included.
    const all = (fs.readdirSync(dataDir, { recursive: true }) as string[]).filter((f) =>
      fs.statSync(path.join(dataDir, f)).isFile(),
    );
    for (const f of all) {
      const bytes = fs.readFileSync(path.join(dataDir, f));
      expect(bytes.includes(Buffer.from(masterKey)), `${f} holds the master key`).toBe(false);
      expect(bytes.includes(Buffer.from(secret)), `${f} holds a key secret`).toBe(false);
    }
    const db = new Database(path.join(dataDir, 'mole.sqlite'), { readonly: true });
    try {
      const row = db.prepare("select value from meta where name = 'master_key_sha256'").get() as
        | { value: string }
        | undefined;
      expect(row?.value).toBe(sha256hex(masterKey));
      const metaText = JSON.stringify(db.prepare('select * from meta').all());
      expect(metaText).not.toContain(masterKey);
    } finally {
      db.close();
    }

    // ── second start on the same dir, on every address (Fastify binds, and would log, each) ──
    const second = await start(dataDir, { HOST: '0.0.0.0' });
    const out2 = second.stdout();
    expect(out2).not.toMatch(/Generated master key/);
    expect(out2).not.toMatch(/mk-[0-9A-Za-z]{48}/);
    expect(out2.split('\n').filter((l) => l.includes(`:${second.port}`))).toEqual([
      `MoleAPI listening on http://localhost:${second.port} (storage: sqlite)`,
    ]);
    expect((await api(second.base, masterKey)).status).toBe(200);
    expect(
      (await fetch(second.base + '/v1/key', { headers: { authorization: `Bearer ${secret}` } })).status,
    ).toBe(200);
    const stopped2 = await stop(second);
    expect(stopped2.code).toBe(0);
  }, 120_000);

  it('a start that fails prints and keeps no master key: the next start generates one', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-process-'));
    /** Runs the gateway to its exit (it must fail): its exit code and output. */
    const failing = async (env: NodeJS.ProcessEnv) => {
      const child = spawn(process.execPath, [builtEntry('main.ts')], {
        cwd: ROOT,
        env: { ...gatewayEnv(await freePort(), { MOLE_DATA_DIR: dir, MOLE_MASTER_KEY: undefined }), ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      child.stderr!.on('data', (d) => (out += d));
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      return { code, out };
    };
    // A bad setting is a configuration error, found before anything starts.
    const proxies = await failing({ MOLE_TRUSTED_PROXIES: '300.1.1.1/99' });
    expect(proxies.code).toBe(2);
    expect(proxies.out).toMatch(/MOLE_TRUSTED_PROXIES/);
    // A port in use is found only when listening, after the services started.
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    try {
      const busy = await failing({ PORT: String((taken.address() as net.AddressInfo).port) });
      expect(busy.code).toBe(1);
      for (const run of [proxies, busy])
        expect(run.out).not.toMatch(/Generated master key|mk-[0-9A-Za-z]{48}/);
    } finally {
      taken.close();
    }
    expect(storedMasterKeys(dir)).toBe(0);
    const p = await start(dir);
    expect(p.stdout()).toMatch(/Generated master key[^\n]*\n\s*mk-[0-9A-Za-z]{48}\s*\n/);
    expect((await stop(p)).code).toBe(0);
  }, 120_000);

  it('with MOLE_MASTER_KEY set nothing is generated, printed or stored', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-process-'));
    const master = 'mk-from-env-' + 'x'.repeat(30);
    const p = await start(dir, { MOLE_MASTER_KEY: master });
    const out = p.stdout() + p.stderr();
    expect(out).toMatch(/MoleAPI listening on /);
    expect(out).not.toMatch(/Generated master key/);
    expect(out).not.toContain(master);
    expect(out).not.toMatch(/MOLE_MASTER_KEY is \d+ characters long/);
    expect(
      (await fetch(`${p.base}/api/users`, { headers: { authorization: `Bearer ${master}` } })).status,
    ).toBe(200);
    expect((await stop(p)).code).toBe(0);
    expect(storedMasterKeys(dir)).toBe(0);
  }, 60_000);

  it('a short MOLE_MASTER_KEY starts, with a warning that does not show it', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-process-'));
    const master = 'admin-secret-12';
    const p = await start(dir, { MOLE_MASTER_KEY: master });
    const out = p.stdout() + p.stderr();
    expect(out).toMatch(/MoleAPI listening on /);
    expect(out).toMatch(/MOLE_MASTER_KEY is 15 characters long; use 32 or more/);
    expect(out).not.toContain(master);
    expect((await stop(p)).code).toBe(0);
  }, 60_000);
});
