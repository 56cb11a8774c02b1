// The console's notifications page: linked in the navigation; a user sees the events of their
// own account and keys, an admin sees every event (channel ones too), filterable by type.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { startTestServer, type TestServer } from '../helpers/server.js';
import {
  createUser,
  ensureWebBuilt,
  hasChromium,
  openConsole,
  signIn,
  warnIfNoChromium,
  type watchPage,
} from './helpers.js';

warnIfNoChromium('web console (notifications)');

describe.skipIf(!hasChromium)('web console: notifications', { timeout: 90_000 }, () => {
  let s: TestServer;
  let browser: Browser;
  let page: Page;
  let problems: ReturnType<typeof watchPage>;
  let admin: { id: number; username: string; password: string };
  let user: { id: number; username: string; password: string };

  beforeAll(async () => {
    await ensureWebBuilt();
    s = await startTestServer();
    admin = await createUser(s, { username: 'ada', role: 'admin' });
    user = await createUser(s, { username: 'una' });
    const other = await createUser(s, { username: 'otto' });
    const key = await s.api('POST', '/api/keys', { name: 'una-ci', user_id: user.id });
    expect(key.status).toBe(201);
    await s.services.events.emit({
      type: 'key.expiring',
      userId: user.id,
      keyId: key.body.id,
      data: { key_name: 'una-ci', expires_at: '2026-12-12T00:00:00.000Z', days_before: 7 },
    });
    await s.services.events.emit({ type: 'budget.threshold', userId: other.id, data: { threshold: 0.8 } });
    await s.services.events.emit({
      type: 'channel.disabled',
      userId: null,
      data: { channel_id: 1, channel_name: 'upstream-a', reason: 'upstream answered 401', by: 'health' },
    });
    ({ browser, page, problems } = await openConsole(s.url));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  it('a user sees their own notifications only', async () => {
    await signIn(page, s.url, user.username, user.password);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Notifications' }).click();
    await page.getByRole('heading', { name: 'Notifications', level: 1 }).waitFor();
    const table = page.getByRole('table', { name: 'Notifications, newest first' });
    await table.getByText('Key expiring').waitFor();
    expect(await table.getByRole('row').count()).toBe(2); // the head and one event
    await table.getByRole('link', { name: 'una-ci' }).waitFor();
    expect(await table.textContent()).toContain('days before:');
    expect(await table.textContent()).not.toContain('upstream-a');
    expect(await table.textContent()).not.toContain('Budget threshold');
    await page.getByRole('button', { name: 'Sign out' }).click();
  });

  it('an admin sees every notification and filters by type', async () => {
    await signIn(page, s.url, admin.username, admin.password);
    await page.goto(s.url + '/notifications');
    const table = page.getByRole('table', { name: 'Notifications, newest first' });
    await table.getByText('Channel disabled').waitFor();
    expect(await table.getByRole('row').count()).toBe(4);
    expect(await table.textContent()).toContain('upstream answered 401');
    await page.getByLabel('Type').selectOption('key.expiring');
    await expect.poll(() => table.getByRole('row').count()).toBe(2);
    expect(await table.textContent()).toContain('una-ci');
    expect(problems.pageErrors).toEqual([]);
    expect(problems.consoleErrors).toEqual([]);
  });
});
