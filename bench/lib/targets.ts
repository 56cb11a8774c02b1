// The servers a benchmark run starts, each in its own process on 127.0.0.1:
//   mock upstream  → test/mock-provider/cli.ts in its own process
//   bare proxy     → bench/bare-proxy.mjs (the floor; the same as ../shared/bench/bare-proxy.mjs)
//   direct         → the mock itself (what the upstream alone serves; not a proxy)
//   MoleAPI        → the compiled gateway (node <build>/main.js), provisioned over its API
//   Portkey        → bench/node_modules/@portkey-ai/gateway/build/start-server.js
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { clientFromEnv } from '../../src/cli/client.js';
import { freePort, runToEnd, startServer, type Server } from './proc.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BENCH_DIR = path.join(REPO, 'bench');

/**
 * The node flags `npm start` gives the gateway (package.json's start script, the one place they
 * are set): the benchmark measures the gateway as it is deployed, and runs its own floor with
 * them too, so a runtime setting is never counted as the gateway's own speed.
 */
export const START_NODE_FLAGS: string[] = (() => {
  const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  const words = pkg.scripts.start.split(/\s+/);
  return words.slice(words.indexOf('node') + 1).filter((w) => w.startsWith('--'));
})();

const TSX = ['--import', 'tsx'];

export const MODEL = 'gpt-4o-mini';
export const UPSTREAM_KEY = 'sk-upstream-bench';

export interface Target {
  name: string;
  server: Server;
  /** Base URL; the relay path is `${url}/v1/chat/completions`. */
  url: string;
  headers: Record<string, string>;
  /** Takes Anthropic Messages requests and serves them from an OpenAI channel (MoleAPI). */
  translates?: boolean;
}

export function tmpDir(prefix: string): string {
  const base = path.join(os.tmpdir(), 'moleapi-bench');
  return mkdtempSync(path.join(base + '-' + prefix + '-'));
}

export async function startMock(
  opts: { scenario?: object; name?: string } = {},
): Promise<Server & { url: string }> {
  const args = [...TSX, path.join(BENCH_DIR, '..', 'test', 'mock-provider', 'cli.ts')];
  if (opts.scenario) args.push('--scenario', JSON.stringify(opts.scenario));
  const s = await startServer({
    name: opts.name ?? 'mock',
    cmd: process.execPath,
    args,
    cwd: REPO,
    readyRegex: /mock provider listening on (http:\/\/\S+)/,
  });
  return Object.assign(s, { url: s.ready });
}

/** The workplace's own floor (../shared/bench/bare-proxy.mjs), when this checkout sits beside it. */
export const SHARED_FLOOR = path.resolve(REPO, '..', 'shared', 'bench', 'bare-proxy.mjs');

export async function startBare(
  mockUrl: string,
  file = path.join(BENCH_DIR, 'bare-proxy.mjs'),
  name = 'bare',
  nodeArgs: string[] = [],
): Promise<Target> {
  const origin = new URL(mockUrl).origin;
  const port = await freePort();
  const server = await startServer({
    name,
    cmd: process.execPath,
    args: [...nodeArgs, file, String(port), origin],
    cwd: REPO,
    readyRegex: /^(ready)$/m,
  });
  return {
    name,
    server,
    url: `http://127.0.0.1:${port}`,
    headers: { 'content-type': 'application/json' },
  };
}

/** The mock upstream measured directly (no proxy): shows it is not the bottleneck. Not stopped separately. */
export function directTarget(mock: Server & { url: string }): Target {
  return {
    name: 'direct',
    server: mock,
    url: new URL(mock.url).origin,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${UPSTREAM_KEY}` },
  };
}

/**
 * Compiles src/ into bench/.build/server (a private copy: the shared dist/ may be in use).
 * tsc emits even when someone's in-progress edit has a type error; we only need the JS.
 */
export async function buildMole(log: (s: string) => void = () => {}): Promise<string> {
  if (process.env.BENCH_MOLE_MAIN) return path.resolve(process.env.BENCH_MOLE_MAIN);
  const out = path.join(BENCH_DIR, '.build', 'server');
  rmSync(out, { recursive: true, force: true });
  const tsc = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    await runToEnd(process.execPath, [tsc, '-p', path.join(REPO, 'tsconfig.build.json'), '--outDir', out], {
      cwd: REPO,
    });
  } catch (e) {
    log(
      `warning: tsc reported errors while compiling src/ (using the emitted JS anyway):\n${String(e).slice(0, 1500)}`,
    );
  }
  // bench/node_modules holds the benchmark's own packages (Portkey brings other versions of
  // zod, hono, …): the gateway must resolve the project's, so bench/.build gets a
  // node_modules link to the root one, found before bench/node_modules.
  const link = path.join(BENCH_DIR, '.build', 'node_modules');
  if (!existsSync(link)) symlinkSync(path.join(REPO, 'node_modules'), link, 'dir');
  const main = path.join(out, 'main.js');
  if (!existsSync(main)) throw new Error(`build produced no ${main}`);
  return main;
}

export interface MoleOptions {
  main: string;
  mockUrl: string;
  name?: string;
  dataDir?: string;
  env?: Record<string, string | undefined>;
  nodeArgs?: string[];
  /** USD balance of the benchmark user (max 9,000,000). */
  balance?: number;
}

export const MASTER_KEY = 'mole-bench-master-key-0123456789abcdef';

/** A management API call with the master key, through the CLI's client (it throws on a refusal). */
const api = <T>(base: string, method: string, p: string, body?: unknown): Promise<T> =>
  clientFromEnv({ MOLE_URL: base, MOLE_TOKEN: MASTER_KEY }).request<T>(method, p, { body });

export async function startMole(
  o: MoleOptions,
): Promise<Target & { dataDir: string; keyId: number; userId: number }> {
  const dataDir = o.dataDir ?? tmpDir('mole');
  const port = await freePort();
  const server = await startServer({
    name: o.name ?? 'mole',
    cmd: process.execPath,
    args: [...START_NODE_FLAGS, ...(o.nodeArgs ?? []), o.main],
    cwd: REPO,
    env: {
      PORT: String(port),
      HOST: '127.0.0.1',
      MOLE_DATA_DIR: dataDir,
      MOLE_MASTER_KEY: MASTER_KEY,
      MOLE_LOG_LEVEL: 'warn',
      ...o.env,
    },
    readyRegex: /MoleAPI listening on (http:\/\/\S+)/,
  });
  if (!o.dataDir) {
    // A data dir we made is ours to remove once the server has stopped.
    const stop = server.stop.bind(server);
    server.stop = async (...args) => {
      const code = await stop(...args);
      rmSync(dataDir, { recursive: true, force: true });
      return code;
    };
  }
  const url = `http://127.0.0.1:${port}`;
  // Full path on every request: a real user with a balance, a priced model, a channel, a key.
  const user = await api<{ id: number }>(url, 'POST', '/api/users', {
    username: `bench${Date.now()}`,
    password: 'bench-password-123',
    balance: o.balance ?? 1_000_000,
  });
  await api(url, 'POST', '/api/channels', {
    name: 'bench-mock',
    type: 'openai',
    base_url: o.mockUrl,
    api_key: UPSTREAM_KEY,
    models: [MODEL],
  });
  await api(url, 'PUT', `/api/prices/${MODEL}`, { input: 0.15, output: 0.6 });
  const key = await api<{ id: number; key: string }>(url, 'POST', '/api/keys', {
    name: 'bench',
    user_id: user.id,
  });
  return {
    name: o.name ?? 'mole',
    server,
    url,
    dataDir,
    keyId: key.id,
    userId: user.id,
    translates: true,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key.key}` },
  };
}

/** Reads back what MoleAPI recorded (to check that every request was logged and billed). */
export async function moleUsage(url: string, keyId: number): Promise<{ requests: number; cost: number }> {
  const r = await api<{ data: Array<{ requests: number; cost: number }> }>(
    url,
    'GET',
    `/api/usage?group_by=key&key_id=${keyId}`,
  );
  const row = r.data[0];
  return { requests: row?.requests ?? 0, cost: row?.cost ?? 0 };
}

export const PORTKEY_ENTRY = path.join(
  BENCH_DIR,
  'node_modules',
  '@portkey-ai',
  'gateway',
  'build',
  'start-server.js',
);

export async function startPortkey(mockUrl: string): Promise<Target> {
  const entry = PORTKEY_ENTRY;
  const port = await freePort();
  // Portkey binds every interface on --port; we only ever send it loopback traffic.
  const server = await startServer({
    name: 'portkey',
    cmd: process.execPath,
    args: [entry, `--port=${port}`, '--headless'],
    cwd: REPO,
    readyRegex: /(Ready for connections)/,
    timeoutMs: 60_000,
  });
  return {
    name: 'portkey',
    server,
    url: `http://127.0.0.1:${port}`,
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${UPSTREAM_KEY}`,
      'x-portkey-provider': 'openai',
      'x-portkey-custom-host': mockUrl,
    },
  };
}
