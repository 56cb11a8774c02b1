// Budgets in the console, in real (Debian) Chromium: a key's budget set in its form shows as a
// bar (spent / budget, next reset) on the key page; a user's budget in the user form; a
// group's default key budget on the pricing page.
import { beforeAll, expect, it } from 'vitest';
import { createUser, signIn } from './helpers.js';
import { type Account, describeConsole } from './suite.js';

describeConsole('budgets in the console', { seed: true }, (t) => {
  let admin: Account;

  beforeAll(async () => {
    admin = await createUser(t.s, { username: 'ada', role: 'admin', balance: 100 });
    await signIn(t.page, t.s.url, admin.username, admin.password);
  });

  it("sets a key's budget in its form; the key page shows spend against it and the reset", async () => {
    const k = await t.s.api('POST', '/api/keys', { name: 'budgeted', user_id: admin.id });
    await t.page.goto(`${t.s.url}/keys/${k.body.id}`);
    await t.page.getByRole('heading', { name: 'budgeted' }).waitFor();
    await t.page.getByRole('button', { name: 'Edit' }).click();
    const dialog = t.page.getByRole('dialog', { name: /Edit key/ });
    await dialog.getByLabel('Budget (USD)').fill('2.5');
    await dialog.getByLabel('Budget period').selectOption('daily');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    const got = await t.s.api('GET', `/api/keys/${k.body.id}`);
    expect(got.body.budget).toEqual({ amount: 2.5, period: 'daily' });
    await t.page.reload();
    const meter = t.page.getByRole('meter', { name: 'Budget used' });
    await meter.waitFor();
    expect(await meter.getAttribute('aria-valuetext')).toMatch(/of the daily budget used/);
    await t.page.getByText('per day').first().waitFor();
    await t.page
      .getByText(/resets /)
      .first()
      .waitFor();
  });

  it("sets a user's budget in the user form and a group's key budget on the pricing page", async () => {
    const u = await createUser(t.s, { username: 'bea' });
    await t.page.goto(`${t.s.url}/users`);
    await t.page.getByRole('row', { name: /bea/ }).getByRole('button', { name: 'Edit' }).click();
    const dialog = t.page.getByRole('dialog', { name: /Edit bea/ });
    await dialog.getByLabel('Budget (USD)').fill('30');
    await dialog.getByLabel('Budget period').selectOption('weekly');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    expect((await t.s.api('GET', `/api/users/${u.id}`)).body.budget).toEqual({
      amount: 30,
      period: 'weekly',
    });

    await t.page.goto(`${t.s.url}/pricing`);
    await t.page.getByRole('button', { name: 'Add group' }).click();
    const g = t.page.getByRole('dialog', { name: 'Add group' });
    await g.getByLabel('Group name').fill('capped');
    await g.getByLabel('Key budget (USD)').fill('10');
    await g.getByLabel('Budget period').selectOption('monthly');
    await g.getByRole('button', { name: 'Save group' }).click();
    await g.waitFor({ state: 'detached' });
    await t.page.getByText('per month per key').waitFor();
    const groups = await t.s.api('GET', '/api/groups');
    expect(groups.body.data.find((x: { name: string }) => x.name === 'capped').budget).toEqual({
      amount: 10,
      period: 'monthly',
    });
  });

  it('never showed a script error or console error', () => {
    expect(t.problems.pageErrors).toEqual([]);
    expect(t.problems.consoleErrors).toEqual([]);
  });
});
