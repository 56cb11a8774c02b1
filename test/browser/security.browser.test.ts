// The console's side of leak response (contract §8): the key form's anomaly-guard fields, and
// the Security page listing keys reported leaked (with where) or stopped by the guard — every
// key for an admin (linked in the nav), one's own keys for a user.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type FakeGithub, fakeGithub, match } from '../security/helpers.js';
import { createUser, relay, signIn } from './helpers.js';
import { type Account, closeSecret, describeConsole } from './suite.js';

const LEAK_URL = 'https://github.com/acme/app/blob/abc123/.env';

let gh: FakeGithub;
const server = () => {
  gh = fakeGithub();
  return { env: { MOLE_SECRET_SCANNING_KEYS: gh.file, MOLE_TRUSTED_PROXIES: '127.0.0.1' } };
};

describeConsole('web console: security', { server, seed: true }, (t) => {
  let admin: Account;
  let user: Account;

  beforeAll(async () => {
    admin = await createUser(t.s, { username: 'sec-admin', role: 'admin' });
    user = await createUser(t.s, { username: 'sec-user' });
  });

  afterAll(() => gh?.cleanup());

  it('the key form sets the anomaly guard', async () => {
    await signIn(t.page, t.s.url, admin.username, admin.password);
    await t.page.getByRole('link', { name: 'Keys', exact: true }).click();
    await t.page.getByRole('button', { name: 'Create key' }).click();
    const dialog = t.page.getByRole('dialog', { name: 'Create key' });
    await dialog.waitFor();
    await dialog.getByLabel('Name').fill('guarded-in-browser');
    await dialog.getByLabel('Max client IPs per hour').fill('0');
    await dialog.getByRole('button', { name: 'Create', exact: true }).click();
    await dialog.getByText(/whole number of client IPs/).waitFor();
    await dialog.getByLabel('Max client IPs per hour').fill('2');
    await dialog.getByLabel('Max spend per hour (USD)').fill('1.5');
    await dialog.getByLabel('When passed').selectOption('disable');
    await dialog.getByRole('button', { name: 'Create', exact: true }).click();
    await closeSecret(t.page);
    const listed = await t.s.api('GET', '/api/keys?q=guarded-in-browser');
    expect(listed.body.data[0].guard).toEqual({
      max_ips_per_hour: 2,
      max_spend_per_hour: 1.5,
      action: 'disable',
    });
  });

  it('the Security page lists leak reports and auto-disables; a user sees only their own', async () => {
    const leaked = await t.s.api('POST', '/api/keys', { name: 'leaky', user_id: user.id });
    const other = await t.s.api('POST', '/api/keys', {
      name: 'roaming',
      user_id: admin.id,
      guard: { max_ips_per_hour: 1, action: 'disable' },
    });
    expect((await gh.report(t.s, [match(leaked.body.key, LEAK_URL)])).status).toBe(200);
    for (const ip of ['198.51.100.1', '198.51.100.2'])
      await fetch(`${t.s.url}/v1/models`, {
        headers: { authorization: `Bearer ${other.body.key}`, 'x-forwarded-for': ip },
      });
    expect((await relay(t.s.url, other.body.key, '/models')).status).toBe(401);

    await t.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Security' }).click();
    await t.page.getByRole('heading', { name: 'Security', level: 1 }).waitFor();
    const table = t.page.getByRole('table', { name: 'Leak reports and auto-disables' });
    await table.getByRole('link', { name: LEAK_URL }).waitFor();
    await expect.poll(() => table.getByRole('row').count()).toBe(3); // header + 2 entries
    expect(await table.textContent()).toMatch(/Anomaly guard: used from more than 1 client IPs/);
    expect(await table.textContent()).toContain(`leaky (${leaked.body.display})`);
    expect(await table.textContent()).toContain(`roaming (${other.body.display})`);

    // A user: no nav link, but the page shows their own key's entry only.
    await t.ctx.clearCookies();
    await signIn(t.page, t.s.url, user.username, user.password);
    expect(
      await t.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Security' }).count(),
    ).toBe(0);
    await t.page.goto(`${t.s.url}/security`);
    await table.getByRole('link', { name: LEAK_URL }).waitFor();
    await expect.poll(() => table.getByRole('row').count()).toBe(2);
    expect(await table.textContent()).not.toContain('roaming');
  });

  it('never showed a script error or console error', () => {
    expect(t.problems).toEqual({ pageErrors: [], dialogs: [], consoleErrors: [] });
  });
});
