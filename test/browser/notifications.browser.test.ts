// The console's notifications page: linked in the navigation; a user sees the events of their
// own account and keys, an admin sees every event (channel ones too), filterable by type.
import { beforeAll, expect, it } from 'vitest';
import { createUser, signIn } from './helpers.js';
import { type Account, describeConsole } from './suite.js';

describeConsole('web console: notifications', {}, (t) => {
  let admin: Account;
  let user: Account;

  beforeAll(async () => {
    admin = await createUser(t.s, { username: 'ada', role: 'admin' });
    user = await createUser(t.s, { username: 'una' });
    const other = await createUser(t.s, { username: 'otto' });
    const key = await t.s.api('POST', '/api/keys', { name: 'una-ci', user_id: user.id });
    expect(key.status).toBe(201);
    await t.s.services.events.emit({
      type: 'key.expiring',
      userId: user.id,
      keyId: key.body.id,
      data: { key_name: 'una-ci', expires_at: '2026-12-12T00:00:00.000Z', days_before: 7 },
    });
    await t.s.services.events.emit({ type: 'budget.threshold', userId: other.id, data: { threshold: 0.8 } });
    await t.s.services.events.emit({
      type: 'channel.disabled',
      userId: null,
      data: { channel_id: 1, channel_name: 'upstream-a', reason: 'upstream answered 401', by: 'health' },
    });
  });

  it('a user sees their own notifications only', async () => {
    await signIn(t.page, t.s.url, user.username, user.password);
    await t.page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Notifications' })
      .click();
    await t.page.getByRole('heading', { name: 'Notifications', level: 1 }).waitFor();
    const table = t.page.getByRole('table', { name: 'Notifications, newest first' });
    await table.getByText('Key expiring').waitFor();
    expect(await table.getByRole('row').count()).toBe(2); // the head and one event
    await table.getByRole('link', { name: 'una-ci' }).waitFor();
    expect(await table.textContent()).toContain('days before:');
    expect(await table.textContent()).not.toContain('upstream-a');
    expect(await table.textContent()).not.toContain('Budget threshold');
    await t.page.getByRole('button', { name: 'Sign out' }).click();
  });

  it('an admin sees every notification and filters by type', async () => {
    await signIn(t.page, t.s.url, admin.username, admin.password);
    await t.page.goto(t.s.url + '/notifications');
    const table = t.page.getByRole('table', { name: 'Notifications, newest first' });
    await table.getByText('Channel disabled').waitFor();
    expect(await table.getByRole('row').count()).toBe(4);
    expect(await table.textContent()).toContain('upstream answered 401');
    // Each event's account by its user name; admin-only events say so.
    const accountOf = async (type: string) =>
      (await table.getByRole('row').filter({ hasText: type }).getByRole('cell').nth(2).textContent()) ?? '';
    await expect.poll(() => accountOf('Budget threshold')).toBe('otto');
    expect(await accountOf('Key expiring')).toBe('una');
    expect(await accountOf('Channel disabled')).toBe('admins');
    await t.page.getByLabel('Type').selectOption('key.expiring');
    await expect.poll(() => table.getByRole('row').count()).toBe(2);
    expect(await table.textContent()).toContain('una-ci');
    expect(t.problems.pageErrors).toEqual([]);
    expect(t.problems.consoleErrors).toEqual([]);
  });
});
