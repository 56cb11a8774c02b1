// Budgets in the console, in real (Debian) Chromium: a key's budget set in its form shows as a
// bar (spent / budget, next reset) on the key page; a user's budget in the user form; a
// group's default key budget on the pricing page.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { startTestServer, type TestServer } from '../helpers/server.js';
import {
  createUser,
  ensureWebBuilt,
  hasChromium,
  openConsole,
  seedGateway,
  signIn,
  warnIfNoChromium,
  type watchPage,
} from './helpers.js';

warnIfNoChromium('budgets in the console');

describe.skipIf(!hasChromium)('budgets in the console', { timeout: 90_000 }, () => {
  let s: TestServer;
  let browser: Browser;
  let page: Page;
  let problems: ReturnType<typeof watchPage>;
  let admin: { id: number; username: string; password: string };

  beforeAll(async () => {
    await ensureWebBuilt();
    s = await startTestServer();
    await seedGateway(s);
    admin = await createUser(s, { username: 'ada', role: 'admin', balance: 100 });
    ({ browser, page, problems } = await openConsole(s.url));
    await signIn(page, s.url, admin.username, admin.password);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  it("sets a key's budget in its form; the key page shows spend against it and the reset", async () => {
    const k = await s.api('POST', '/api/keys', { name: 'budgeted', user_id: admin.id });
    await page.goto(`${s.url}/keys/${k.body.id}`);
    await page.getByRole('heading', { name: 'budgeted' }).waitFor();
    await page.getByRole('button', { name: 'Edit' }).click();
    const dialog = page.getByRole('dialog', { name: /Edit key/ });
    await dialog.getByLabel('Budget (USD)').fill('2.5');
    await dialog.getByLabel('Budget period').selectOption('daily');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    const got = await s.api('GET', `/api/keys/${k.body.id}`);
    expect(got.body.budget).toEqual({ amount: 2.5, period: 'daily' });
    await page.reload();
    const meter = page.getByRole('meter', { name: 'Budget used' });
    await meter.waitFor();
    expect(await meter.getAttribute('aria-valuetext')).toMatch(/of the daily budget used/);
    await page.getByText('per day').first().waitFor();
    await page
      .getByText(/resets /)
      .first()
      .waitFor();
  });

  it("sets a user's budget in the user form and a group's key budget on the pricing page", async () => {
    const u = await createUser(s, { username: 'bea' });
    await page.goto(`${s.url}/users`);
    await page.getByRole('row', { name: /bea/ }).getByRole('button', { name: 'Edit' }).click();
    const dialog = page.getByRole('dialog', { name: /Edit bea/ });
    await dialog.getByLabel('Budget (USD)').fill('30');
    await dialog.getByLabel('Budget period').selectOption('weekly');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    expect((await s.api('GET', `/api/users/${u.id}`)).body.budget).toEqual({ amount: 30, period: 'weekly' });

    await page.goto(`${s.url}/pricing`);
    await page.getByRole('button', { name: 'Add group' }).click();
    const g = page.getByRole('dialog', { name: 'Add group' });
    await g.getByLabel('Group name').fill('capped');
    await g.getByLabel('Key budget (USD)').fill('10');
    await g.getByLabel('Budget period').selectOption('monthly');
    await g.getByRole('button', { name: 'Save group' }).click();
    await g.waitFor({ state: 'detached' });
    await page.getByText('per month per key').waitFor();
    const groups = await s.api('GET', '/api/groups');
    expect(groups.body.data.find((x: { name: string }) => x.name === 'capped').budget).toEqual({
      amount: 10,
      period: 'monthly',
    });
  });

  it('never showed a script error or console error', () => {
    expect(problems.pageErrors).toEqual([]);
    expect(problems.consoleErrors).toEqual([]);
  });
});
