// For suites that run the real gateway process.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { gatewayEnv } from './gateway-env.js';
import { pgOnce } from './pg-once.js';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');

/** Where the spawned processes' JavaScript goes: see builtEntry. */
const BUILD_DIR = path.join(REPO_ROOT, '.tmp', 'proc');
let builtFrom = '';

/**
 * The JavaScript for `src/<entry>.ts` (say 'main.ts'), for a test to run as its own process
 * with plain `node`. Every src/ file is transformed by esbuild, as tsx would on the fly, into
 * .tmp/proc/src, beside a link .tmp/proc/dist → dist, so paths the code finds from its own
 * place (../dist/web) resolve as they do from src/; packages resolve from the repository's
 * node_modules. Running through tsx instead cost each spawned process about a second of CPU for
 * its loader (and the usage writer's worker bundle). Built again whenever src/ differs from
 * what the last build (of any worker or run: .tmp/proc/built-from) saw, by any file's or
 * folder's path, size or mtime, or this build's code; outputs are written whole (rename) and only
 * when changed, so workers building at once and processes already running read complete files.
 */
export function builtEntry(entry: string): string {
  const out = path.join(BUILD_DIR, 'src', entry.replace(/\.ts$/, '.js'));
  const sources = sourcesFingerprint();
  if (sources !== builtFrom) {
    if (readStamp() !== sources || !fs.existsSync(out)) {
      buildSources();
      fs.writeFileSync(STAMP, sources);
    }
    builtFrom = sources;
  }
  return out;
}

const STAMP = path.join(BUILD_DIR, 'built-from');

function readStamp(): string | null {
  try {
    return fs.readFileSync(STAMP, 'utf8');
  } catch {
    return null;
  }
}

function sourcesFingerprint(): string {
  const srcDir = path.join(REPO_ROOT, 'src');
  const hash = createHash('sha256').update(buildSources.toString());
  for (const f of fs.readdirSync(srcDir, { recursive: true, encoding: 'utf8' }).sort()) {
    const st = fs.statSync(path.join(srcDir, f));
    hash.update(`${f}\0${st.size}\0${st.mtimeMs}\n`);
  }
  return hash.digest('hex');
}

function buildSources(): void {
  const require = createRequire(import.meta.url);
  // tsx's esbuild, as src/usage/worker-client.ts uses it.
  const esbuild = createRequire(require.resolve('tsx'))('esbuild') as {
    transformSync(code: string, options: object): { code: string };
  };
  const srcDir = path.join(REPO_ROOT, 'src');
  const outDir = path.join(BUILD_DIR, 'src');
  const wanted = new Set<string>();
  for (const f of fs.readdirSync(srcDir, { recursive: true, encoding: 'utf8' })) {
    if (!f.endsWith('.ts') || f.endsWith('.test.ts')) continue;
    const out = path.join(outDir, f.replace(/\.ts$/, '.js'));
    wanted.add(out);
    const { code } = esbuild.transformSync(fs.readFileSync(path.join(srcDir, f), 'utf8'), {
      loader: 'ts',
      format: 'esm',
      target: 'node20',
      sourcefile: path.join(srcDir, f),
      tsconfigRaw: { compilerOptions: { useDefineForClassFields: true } },
    });
    let current: string | null = null;
    try {
      current = fs.readFileSync(out, 'utf8');
    } catch {
      /* not built yet */
    }
    if (current === code) continue;
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, code);
    fs.renameSync(tmp, out);
  }
  // Files whose source is gone.
  for (const f of fs.readdirSync(outDir, { recursive: true, encoding: 'utf8' })) {
    const out = path.join(outDir, f);
    if (out.endsWith('.js') && !wanted.has(out)) fs.rmSync(out, { force: true });
  }
  try {
    fs.symlinkSync(path.join('..', '..', 'dist'), path.join(BUILD_DIR, 'dist'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/** A loopback port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Polls `fn` until it answers true (errors count as false), or throws after `ms`. */
export async function waitFor(fn: () => Promise<boolean>, ms = 20_000, what = 'condition'): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `mole <args>` as its own process (about a second each on a busy machine). */
export function moleProcess(
  args: string[],
  opts: { env?: Record<string, string | undefined>; input?: string } = {},
): Promise<CliResult> {
  return new Promise<CliResult>((resolve, reject) => {
    const child = spawn(process.execPath, [builtEntry('cli/index.ts'), ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

/** A real gateway process (`src/main.ts`, see builtEntry) listening on a loopback port. */
export interface GatewayProcess {
  child: ChildProcess;
  base: string;
  /** Everything it printed so far (stdout and stderr). */
  output: () => string;
  exited: Promise<void>;
  /** A management API call with the master key; throws on a status of 300 or more. */
  // biome-ignore lint/suspicious/noExplicitAny: the JSON answers of the API under test
  api(method: string, path: string, body?: unknown): Promise<any>;
}

const gatewayChildren: ChildProcess[] = [];

/**
 * Starts the gateway with `env` on top of this process's environment, minus storage and
 * proxy settings `env` does not give; resolves once it listens.
 */
export async function startGatewayProcess(
  masterKey: string,
  env: Record<string, string>,
): Promise<GatewayProcess> {
  const port = await freePort();
  const full = gatewayEnv(port, { MOLE_MASTER_KEY: masterKey, MOLE_LOG_LEVEL: 'warn', ...env });
  const child = spawn(process.execPath, [builtEntry('main.ts')], {
    cwd: REPO_ROOT,
    env: full,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  gatewayChildren.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const until = Date.now() + 45_000;
  while (!/MoleAPI listening on /.test(out)) {
    if (child.exitCode !== null) throw new Error(`gateway exited early (${child.exitCode}): ${out}`);
    if (Date.now() > until) throw new Error(`gateway did not start within 45 s: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const base = `http://127.0.0.1:${port}`;
  async function api(method: string, p: string, body?: unknown) {
    const res = await fetch(base + p, {
      method,
      headers: {
        authorization: `Bearer ${masterKey}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const json = await res.json();
    if (res.status >= 300) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  }
  return { child, base, output: () => out, exited, api };
}

/** `kill -9`: no shutdown code runs; resolves once the process is gone. */
export async function kill9(g: GatewayProcess): Promise<void> {
  g.child.kill('SIGKILL');
  await g.exited;
}

/** Kills every gateway process still running (for afterEach / afterAll). */
export function killGatewayProcesses(): void {
  for (const c of gatewayChildren.splice(0))
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/**
 * A PostgreSQL database of its own on the server of `adminUrl`: the real process has no
 * per-test schema option, and a schema on search_path would let Kysely's migrator see other
 * suites' tables.
 */
export async function scratchDatabase(
  adminUrl: string,
  prefix: string,
): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  await pgOnce(adminUrl, `CREATE DATABASE "${name}"`);
  const u = new URL(adminUrl);
  u.pathname = '/' + name;
  return {
    url: u.toString(),
    drop: () => pgOnce(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
  };
}
