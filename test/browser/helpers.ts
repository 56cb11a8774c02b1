// Shared pieces for the browser suites: Debian Chromium via playwright-core (never a
// downloaded browser), building the console when dist/web is missing or stale, and seeding
// a gateway with a mock channel and prices.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { TestJson, TestServer } from '../helpers/server.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const WEB_DIST = path.join(REPO_ROOT, 'dist', 'web');
export const CHROMIUM_PATH = process.env.MOLE_CHROMIUM_PATH || '/usr/bin/chromium';
export const hasChromium = fs.existsSync(CHROMIUM_PATH);

/**
 * Features switched off. Chromium keeps only the last `--disable-features` switch, and
 * Playwright passes its own list before ours, so ours repeats Playwright's (playwright-core
 * 1.65's `chromiumSwitches`; `chromium.browser.test.ts` fails if it grows a name this lacks).
 */
export const CHROMIUM_DISABLED_FEATURES = [
  'AvoidUnnecessaryBeforeUnloadCheckSync',
  'DestroyProfileOnBrowserClose',
  'HttpsUpgrades',
  'HttpsFirstBalancedModeAutoEnable',
  'LensOverlay',
  'MediaRouter',
  'PaintHolding',
  'ThirdPartyStoragePartitioning',
  'AvoidCorsURLLoaderRestartOnRedirect',
  'TcpPortRandomizationWin',
  'OptimizationHints',
  'NetworkTimeServiceQuerying',
  'AimEnabled',
  'PreconnectToSearch',
  'msForceBrowserSignIn',
  'msEdgeUpdateLaunchServicesPreferredVersion',
  // Each window (each test's context) preloaded its address bar's suggestion popup, a WebUI
  // page in a renderer of its own: ~1.4 s of CPU a context, about a quarter of what the
  // browser suites cost Chromium. No test opens the address bar.
  'WebUIOmniboxPopup',
  'WebUIOmniboxAimPopup',
];

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  // compositing (software: no GPU) on a thread of the browser, not in a process of its own
  '--in-process-gpu',
  `--disable-features=${CHROMIUM_DISABLED_FEATURES.join(',')}`,
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let warned = false;
/** Call at module level: prints why the browser suites are skipped. */
export function warnIfNoChromium(suite: string): void {
  if (hasChromium || warned) return;
  warned = true;
  console.warn(
    `\n[moleapi tests] SKIPPING browser suite "${suite}": no Chromium at ${CHROMIUM_PATH}. ` +
      `Install it with: apt-get install -y chromium\n`,
  );
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}

let workerBrowser: Promise<Browser> | undefined;

/**
 * This test worker's Chromium: launched by its first console suite and kept for the next ones,
 * which the worker runs one after another (isolate is off), each in contexts of its own. A
 * launch costs about 2 s of CPU, a context about 1 s. A browser that went away is launched
 * again. It ends with the worker: vitest stops workers with SIGTERM, on which this one exits
 * (as vitest's own workers do when profiling), and Playwright's exit hook kills Chromium and
 * removes its profile directory.
 */
export function sharedBrowser(): Promise<Browser> {
  if (workerBrowser) return workerBrowser;
  const launching = chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: CHROMIUM_ARGS,
    handleSIGTERM: false,
  });
  workerBrowser = launching;
  const forget = () => {
    if (workerBrowser === launching) workerBrowser = undefined;
  };
  launching.then((b) => b.on('disconnected', forget), forget);
  if (!exitsOnSigterm) {
    exitsOnSigterm = true;
    process.once('SIGTERM', () => process.exit(143));
  }
  return launching;
}
let exitsOnSigterm = false;

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

function webIsFresh(): boolean {
  const index = path.join(WEB_DIST, 'index.html');
  if (!fs.existsSync(index)) return false;
  return fs.statSync(index).mtimeMs >= newestMtime(path.join(REPO_ROOT, 'web'));
}

/**
 * Builds the console (`npm run build:web`) when dist/web is missing or older than web/.
 * Several test workers may get here at once: a lock directory makes one build and the
 * others wait for it.
 */
export async function ensureWebBuilt(): Promise<void> {
  if (webIsFresh()) return;
  const lock = path.join(
    os.tmpdir(),
    `moleapi-web-build-${Buffer.from(REPO_ROOT).toString('base64url').slice(-24)}.lock`,
  );
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      // someone else is building; a lock older than 2 minutes is stale
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 120_000)
          fs.rmSync(lock, { recursive: true, force: true });
      } catch {
        /* gone already */
      }
      if (Date.now() > deadline) throw new Error('timed out waiting for another web build');
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    if (!webIsFresh()) {
      console.log('[moleapi tests] building the web console (npm run build:web)…');
      execFileSync(
        process.execPath,
        [
          path.join(REPO_ROOT, 'node_modules', 'vite', 'bin', 'vite.js'),
          'build',
          '--config',
          'web/vite.config.ts',
          '--logLevel',
          'warn',
        ],
        {
          cwd: REPO_ROOT,
          stdio: ['ignore', 'inherit', 'inherit'],
        },
      );
    }
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** The bits of the test server the browser suites use. */
export type Gateway = Pick<TestServer, 'url' | 'api'>;

export const MOCK_MODELS = ['gpt-4o-mini', 'gpt-4o', 'text-embedding-3-small'];

/** A built-in mock channel and prices, so keys have models to call without any network. */
export async function seedGateway(s: Gateway): Promise<void> {
  const ch = await s.api('POST', '/api/channels', {
    name: 'offline mock',
    type: 'mock',
    models: MOCK_MODELS,
  });
  if (ch.status !== 201) throw new Error(`channel create failed: ${ch.status} ${JSON.stringify(ch.body)}`);
  for (const [model, input, output] of [
    ['gpt-4o-mini', 0.15, 0.6],
    ['gpt-4o', 2.5, 10],
    ['text-embedding-3-small', 0.02, 0],
  ] as const) {
    const p = await s.api('PUT', `/api/prices/${model}`, { input, output });
    if (p.status !== 200) throw new Error(`price failed: ${p.status} ${JSON.stringify(p.body)}`);
  }
}

export async function createUser(
  s: Gateway,
  opts: { username: string; password?: string; role?: 'admin' | 'user'; balance?: number; group?: string },
): Promise<{ id: number; username: string; password: string }> {
  const password = opts.password ?? 'correct-horse-battery';
  const r = await s.api('POST', '/api/users', {
    username: opts.username,
    password,
    role: opts.role ?? 'user',
    balance: opts.balance ?? 50,
    ...(opts.group ? { group: opts.group } : {}),
  });
  if (r.status !== 201) throw new Error(`user create failed: ${r.status} ${JSON.stringify(r.body)}`);
  return { id: r.body.id, username: opts.username, password };
}

/** Signs in through the form, as a person would. */
export async function signIn(page: Page, url: string, username: string, password: string): Promise<void> {
  await page.goto(url + '/');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('link', { name: 'Keys', exact: true }).waitFor();
}

/** Collects uncaught page errors, JS dialogs (alert/confirm) and console errors. */
export function watchPage(page: Page) {
  const problems = { pageErrors: [] as string[], dialogs: [] as string[], consoleErrors: [] as string[] };
  page.on('pageerror', (err) => problems.pageErrors.push(err.message));
  page.on('dialog', (d) => {
    problems.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  page.on('console', (msg) => {
    // the browser logs every non-2xx fetch ("Failed to load resource"): expected for 401/404 probes
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource'))
      problems.consoleErrors.push(msg.text());
  });
  return problems;
}

export async function newContext(
  browser: Browser,
  viewport = { width: 1366, height: 768 },
): Promise<BrowserContext> {
  const ctx = await browser.newContext({
    viewport,
    locale: 'en-US',
    timezoneId: 'Europe/Berlin',
    acceptDownloads: true,
  });
  // fail inside the suites' test timeout, with Playwright's own (useful) message
  ctx.setDefaultTimeout(15_000);
  return ctx;
}

/** A browser on the console: the worker's Chromium, a context, one page whose problems are collected. */
export interface ConsoleBrowser {
  browser: Browser;
  ctx: BrowserContext;
  page: Page;
  problems: ReturnType<typeof watchPage>;
}

/**
 * A fresh context (`viewport`, by default a laptop's) on the worker's Chromium (sharedBrowser)
 * and one watched page; `clipboard` lets pages of `url` read and write the clipboard.
 */
export async function openConsole(
  url: string,
  opts: { clipboard?: boolean; viewport?: { width: number; height: number } } = {},
): Promise<ConsoleBrowser> {
  const browser = await sharedBrowser();
  const ctx = await newContext(browser, opts.viewport);
  if (opts.clipboard) await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });
  const page = await ctx.newPage();
  return { browser, ctx, page, problems: watchPage(page) };
}

/** Calls the relay with a secret; returns status and parsed body. */
export async function relay(
  url: string,
  secret: string,
  p: string,
  body?: unknown,
): Promise<{ status: number; body: TestJson }> {
  const res = await fetch(url + '/v1' + p, {
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      authorization: `Bearer ${secret}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed };
}
