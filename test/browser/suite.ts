// The frame every console suite shares: skipped (with a warning) where there is no Chromium;
// before its tests the console is built, a gateway started and a watched page opened on it in
// the worker's Chromium; afterwards the gateway and the suite's browser contexts are closed.
import fs from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { type StartOptions, startTestServer, type TestServer } from '../helpers/server.js';
import {
  type ConsoleBrowser,
  type createUser,
  ensureWebBuilt,
  hasChromium,
  openConsole,
  seedGateway,
  warnIfNoChromium,
} from './helpers.js';

/** An account made with `createUser`, with its password for signing in. */
export type Account = Awaited<ReturnType<typeof createUser>>;

/** A suite's gateway (`s`) and its browser; filled in before the suite's first test. */
export interface ConsoleSuite extends ConsoleBrowser {
  s: TestServer;
}

export interface ConsoleSuiteOptions {
  /** The gateway's start options, asked for just before it starts. */
  server?: () => StartOptions;
  /** Seed the gateway with the mock channel and prices (`seedGateway`). */
  seed?: boolean;
  /** Let the console's pages use the clipboard. */
  clipboard?: boolean;
  viewport?: { width: number; height: number };
}

// Generous budgets: these run beside every other suite on a small CI machine.
const SUITE = { timeout: 90_000 };
const SETUP_TIMEOUT = 180_000;

/**
 * `describe` for a suite that drives the console in Chromium. `body` gets the suite's gateway
 * and browser; hooks it adds run after the gateway and browser are up.
 */
export function describeConsole(
  name: string,
  opts: ConsoleSuiteOptions,
  body: (t: ConsoleSuite) => void,
): void {
  warnIfNoChromium(name);
  describe.skipIf(!hasChromium)(name, SUITE, () => {
    const t = {} as ConsoleSuite;
    beforeAll(async () => {
      await ensureWebBuilt();
      t.s = await startTestServer(opts.server?.());
      if (opts.seed) await seedGateway(t.s);
      Object.assign(t, await openConsole(t.s.url, { clipboard: opts.clipboard, viewport: opts.viewport }));
    }, SETUP_TIMEOUT);
    afterAll(async () => {
      // The worker's browser stays for its next suite; every context this suite opened (its
      // own, and any a test opened on t.browser) is closed. Suites in a worker run in turn.
      await Promise.all(t.browser?.contexts().map((c) => c.close()) ?? []);
      await t.s?.close();
    });
    body(t);
  });
}

/**
 * The dialog that shows a new secret (a key's or a token's) once: reads the secret (the text
 * matching `pattern`), checks the dialog says so and holds each of `shows(secret)`, copies
 * the secret (the context may use the clipboard), closes the dialog and checks the secret
 * left the page with it. Returns the secret.
 */
export async function takeSecretOnce(
  page: Page,
  pattern: RegExp,
  shows: (secret: string) => string[],
): Promise<string> {
  const dialog = page.getByRole('dialog', { name: /created/ });
  await dialog.waitFor();
  const secret = ((await dialog.getByText(pattern).first().textContent()) ?? '').trim();
  expect(secret).toMatch(pattern);
  for (const text of ['will not be shown again', ...shows(secret)])
    await expect(dialog.textContent()).resolves.toContain(text);
  await dialog.getByRole('button', { name: 'Copy', exact: true }).click();
  await expect.poll(() => page.evaluate('navigator.clipboard.readText()')).toBe(secret);
  await dialog.getByRole('button', { name: 'Done' }).click();
  await dialog.waitFor({ state: 'detached' });
  await expect(page.content()).resolves.not.toContain(secret);
  return secret;
}

/** Closes the dialog that shows a new secret, without reading it. */
export async function closeSecret(page: Page): Promise<void> {
  await page
    .getByRole('dialog', { name: /created/ })
    .getByRole('button', { name: 'Done' })
    .click();
}

/** Clicks the page's "Export CSV" and returns the downloaded file's text. */
export async function exportCsv(page: Page): Promise<string> {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export CSV' }).click(),
  ]);
  return fs.readFileSync(await download.path(), 'utf8');
}

/** The text of the table row named `name`, once it is shown. */
export async function rowText(page: Page, name: RegExp): Promise<string> {
  const row = page.getByRole('row', { name });
  await row.waitFor();
  return (await row.textContent()) ?? '';
}
