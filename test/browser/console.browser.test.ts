// The web console in real (Debian) Chromium against a real gateway: sign in, the whole life
// of a key (create → secret once → relay → disable → rotate → delete), logs and usage of real
// calls, per-key page, admin pages, user isolation, XSS-safe rendering, phone width.
import { beforeAll, expect, it } from 'vitest';
import { createUser, newContext, relay, signIn, watchPage } from './helpers.js';
import { type Account, closeSecret, describeConsole, exportCsv, rowText, takeSecretOnce } from './suite.js';

const SECRET_RE = /^sk-[0-9A-Za-z]{48}$/;

describeConsole('web console in Chromium', { seed: true, clipboard: true }, (t) => {
  let admin: Account;
  let secret = '';
  let keyId = 0;

  beforeAll(async () => {
    admin = await createUser(t.s, { username: 'ada', role: 'admin', balance: 100 });
  });

  it('shows the sign-in form and refuses a wrong password in words', async () => {
    await t.page.goto(t.s.url + '/keys');
    await t.page.getByLabel('Username').fill('ada');
    await t.page.getByLabel('Password').fill('not-the-password');
    await t.page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => t.page.getByRole('alert').textContent()).toContain('Wrong username or password');
  });

  it('signs an admin in through the form; admin navigation is shown', async () => {
    await signIn(t.page, t.s.url, admin.username, admin.password);
    for (const name of ['Home', 'Keys', 'Logs', 'Usage', 'Users', 'Channels', 'Pricing']) {
      await expect(t.page.getByRole('link', { name, exact: true }).isVisible()).resolves.toBe(true);
    }
    // the landing page is the home page: today at a glance
    await t.page.getByRole('heading', { name: 'Today', level: 1 }).waitFor();
    await t.page.getByRole('link', { name: 'Keys', exact: true }).click();
    await t.page.getByText('No keys yet.').waitFor();
    // the session survives a reload (cookie + GET /api/auth/session)
    await t.page.reload();
    await t.page.getByRole('link', { name: 'Users', exact: true }).waitFor();
  });

  it('creates a key with every field, validating IPs client-side, and shows the secret once', async () => {
    await t.page.getByRole('button', { name: 'Create key' }).click();
    const dialog = t.page.getByRole('dialog', { name: 'Create key' });
    await dialog.waitFor();
    await t.page.getByLabel('Name').fill('web-prod');
    await expect.poll(() => t.page.getByLabel('Models').locator('option').count()).toBeGreaterThanOrEqual(2);
    await t.page.getByLabel('Models').selectOption(['gpt-4o-mini', 'gpt-4o']);
    await t.page.getByLabel('Allowed IPs').fill('127.0.0.1\n10.0.0.0/33');
    await t.page.getByLabel('Quota (USD)').fill('5');
    await t.page.getByRole('button', { name: '30 days' }).click();
    await t.page.getByRole('button', { name: 'Create', exact: true }).click();
    // a bad CIDR is caught before anything is sent
    await expect.poll(() => dialog.getByRole('alert').first().textContent()).toContain('10.0.0.0/33');
    await t.page.getByLabel('Allowed IPs').fill('127.0.0.1\n::1\n10.0.0.0/8');
    await t.page.getByRole('button', { name: 'Create', exact: true }).click();

    // shown once; then the table shows the masked form
    secret = await takeSecretOnce(t.page, SECRET_RE, (key) => [
      `export OPENAI_API_KEY=${key}`,
      `export OPENAI_BASE_URL=${t.s.url}/v1`,
      'curl',
    ]);
    const text = await rowText(t.page, /web-prod/);
    expect(text).toContain(secret.slice(0, 5));
    expect(text).toContain('active');
    expect(text).toContain('$5.00');
    expect(text).toMatch(/gpt-4o-mini, gpt-4o|gpt-4o, gpt-4o-mini/);
    expect(text).toContain('10.0.0.0/8');

    const listed = await t.s.api('GET', '/api/keys?q=web-prod');
    expect(listed.body.data).toHaveLength(1);
    keyId = listed.body.data[0].id;
    expect(listed.body.data[0].allowed_ips).toEqual(['127.0.0.1', '::1', '10.0.0.0/8']);
    expect(listed.body.data[0].quota).toBe(5);
    expect(listed.body.data[0].expires_at).not.toBeNull();
  });

  it('the key works against the relay', async () => {
    const info = await relay(t.s.url, secret, '/key');
    expect(info.status).toBe(200);
    expect(info.body.name).toBe('web-prod');
    const chat = await relay(t.s.url, secret, '/chat/completions', {
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Hello from the console test' }],
    });
    expect(chat.status).toBe(200);
    const chat2 = await relay(t.s.url, secret, '/chat/completions', {
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'Again' }],
      stream: false,
    });
    expect(chat2.status).toBe(200);
    const refused = await relay(t.s.url, secret, '/chat/completions', {
      model: 'text-embedding-3-small',
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(refused.status).toBe(403);
  });

  it('disabling in the console makes the relay refuse the key; enabling restores it', async () => {
    await t.page.reload();
    const row = t.page.getByRole('row', { name: /web-prod/ });
    await row.getByRole('button', { name: 'Disable' }).click();
    await row.getByRole('button', { name: 'Enable' }).waitFor();
    expect(await row.textContent()).toContain('disabled');
    const refused = await relay(t.s.url, secret, '/key');
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('key_disabled');

    await row.getByRole('button', { name: 'Enable' }).click();
    await row.getByRole('button', { name: 'Disable' }).waitFor();
    expect((await relay(t.s.url, secret, '/key')).status).toBe(200);
  });

  it('rotates with a chosen grace period and shows the new secret once', async () => {
    const row = t.page.getByRole('row', { name: /web-prod/ });
    await row.getByRole('button', { name: 'Rotate' }).click();
    const dialog = t.page.getByRole('dialog', { name: /Rotate key/ });
    // A radio button is a box to tick beside its words, not a field as wide as the dialog.
    const radio = await dialog.getByLabel('Stop it immediately').boundingBox();
    expect(radio!.width).toBeLessThan(40);
    await dialog.getByLabel('Stop it immediately').check();
    await dialog.getByRole('button', { name: 'Rotate', exact: true }).click();
    const secretDialog = t.page.getByRole('dialog', { name: /New secret/ });
    await secretDialog.waitFor();
    const fresh = ((await secretDialog.getByText(/^sk-/).textContent()) ?? '').trim();
    expect(fresh).toMatch(SECRET_RE);
    expect(fresh).not.toBe(secret);
    await secretDialog.getByRole('button', { name: 'Done' }).click();
    await secretDialog.waitFor({ state: 'detached' });

    const old = await relay(t.s.url, secret, '/key');
    expect(old.status).toBe(401);
    expect(old.body.error.code).toBe('invalid_api_key');
    expect((await relay(t.s.url, fresh, '/key')).status).toBe(200);
    secret = fresh;
    const chat = await relay(t.s.url, secret, '/chat/completions', {
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'after rotation' }],
    });
    expect(chat.status).toBe(200);
  });

  it('logs page shows the real calls with filters, totals, a detail drawer and CSV export', async () => {
    await t.page.getByRole('link', { name: 'Logs', exact: true }).click();
    await t.page.getByRole('heading', { name: 'Call logs' }).waitFor();
    const table = t.page.getByRole('table');
    await table.getByText('gpt-4o-mini').first().waitFor();
    const text = (await table.textContent()) ?? '';
    expect(text).toContain('web-prod');
    expect(text).toContain('gpt-4o');
    expect(text).toContain('200');
    expect(text).toContain('403');
    await expect(t.page.getByLabel('Totals for these filters').textContent()).resolves.toMatch(
      /Requests\s*\d+/,
    );
    for (const h of ['Time', 'Key', 'Model', 'Tokens', 'Cost', 'Latency', 'First token', 'Status', 'IP']) {
      expect(await table.getByRole('columnheader', { name: h, exact: true }).count(), h).toBe(1);
    }

    // The filters are named by their labels alone (not their options' text too).
    for (const name of ['Key', 'Model', 'Status', 'Time range'])
      expect(await t.page.getByLabel(name, { exact: true }).count(), name).toBe(1);
    // filter by model: only gpt-4o rows remain
    await t.page.getByLabel('Model').selectOption('gpt-4o');
    await expect
      .poll(async () =>
        (await table.locator('tbody tr').allTextContents()).every(
          (t) => t.includes('gpt-4o') && !t.includes('gpt-4o-mini'),
        ),
      )
      .toBe(true);
    await t.page.getByLabel('Model').selectOption('');
    // filter by key and status
    await t.page.getByLabel('Key').selectOption({ label: 'web-prod' });
    await t.page.getByLabel('Status').selectOption('403');
    await expect.poll(() => table.locator('tbody tr').count()).toBe(1);
    await t.page.getByLabel('Status').selectOption('');
    await t.page.getByLabel('Time range').selectOption('1h');
    await expect.poll(() => table.locator('tbody tr').count()).toBeGreaterThanOrEqual(4);

    await table.getByRole('button', { name: 'Details' }).first().click();
    const drawer = t.page.getByRole('dialog', { name: 'Call details' });
    await drawer.waitFor();
    await expect(drawer.textContent()).resolves.toMatch(/Request IDreq_/);
    await drawer.getByRole('button', { name: 'Close' }).click();
    await drawer.waitFor({ state: 'detached' });

    const csv = await exportCsv(t.page);
    expect(csv.split('\n')[0]).toContain('request_id');
    expect(csv).toContain('web-prod');
  });

  it('usage page charts spend and requests and breaks them down by key and model', async () => {
    await t.page.getByRole('link', { name: 'Usage', exact: true }).click();
    await t.page.getByRole('heading', { name: 'Usage' }).waitFor();
    await t.page.locator('.recharts-surface').first().waitFor();
    const table = t.page.getByRole('table');
    await table.getByRole('link', { name: 'web-prod' }).waitFor();
    await t.page.getByRole('button', { name: 'By model' }).click();
    await table.getByText('gpt-4o-mini').waitFor();
    const csv = await exportCsv(t.page);
    expect(csv.split('\n')[0]).toContain('model');
    expect(csv).toContain('gpt-4o-mini');
  });

  it('the per-key page has its usage chart, recent calls and audit trail', async () => {
    await t.page.goto(`${t.s.url}/keys/${keyId}`);
    await t.page.getByRole('heading', { name: 'web-prod' }).waitFor();
    await t.page.locator('.recharts-surface').first().waitFor();
    await t.page.getByRole('heading', { name: 'Recent calls' }).waitFor();
    await t.page.getByRole('table').getByText('gpt-4o-mini').first().waitFor();
    const audit = t.page.locator('ol.audit');
    await audit.getByText('key.rotate').waitFor();
    const trail = (await audit.textContent()) ?? '';
    for (const action of ['key.create', 'key.disable', 'key.enable', 'key.rotate'])
      expect(trail).toContain(action);
    expect(trail).not.toContain(secret);
  });

  it('edits a key', async () => {
    await t.page.getByRole('button', { name: 'Edit' }).click();
    const dialog = t.page.getByRole('dialog', { name: /Edit key/ });
    await t.page.getByLabel('Quota (USD)').fill('7.5');
    // Browser origins: a bad one is caught in the form, good ones are sent and shown.
    await t.page.getByLabel('Allowed origins').fill('app.example.com');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await expect.poll(() => dialog.getByRole('alert').first().textContent()).toContain('app.example.com');
    await t.page.getByLabel('Allowed origins').fill('https://App.example.com\nhttps://*.corp.test');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    await t.page.getByText('$7.50').first().waitFor();
    await t.page.getByText('https://app.example.com, https://*.corp.test').first().waitFor();
    const k = await t.s.api('GET', `/api/keys/${keyId}`);
    expect(k.body.quota).toBe(7.5);
    expect(k.body.allowed_origins).toEqual(['https://app.example.com', 'https://*.corp.test']);
  });

  it('an empty IP allowlist reads as blocked, and editing such a key keeps it blocked', async () => {
    const created = await t.s.api('POST', '/api/keys', {
      name: 'blocked-key',
      user_id: admin.id,
      allowed_ips: [],
    });
    expect(created.status).toBe(201);
    await t.page.goto(`${t.s.url}/keys`);
    const row = t.page.getByRole('row').filter({ hasText: 'blocked-key' });
    await row.getByText('no IP (blocked)').waitFor();
    await row.getByRole('button', { name: 'Edit' }).click();
    const dialog = t.page.getByRole('dialog', { name: /Edit key/ });
    await t.page.getByLabel('Name').fill('blocked-key-renamed');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    const k = await t.s.api('GET', `/api/keys/${created.body.id}`);
    expect(k.body).toMatchObject({ name: 'blocked-key-renamed', allowed_ips: [] });
    await t.s.api('DELETE', `/api/keys/${created.body.id}`);
  });

  it('a key an admin switched off reads as locked, which its owner cannot undo', async () => {
    const carol = await createUser(t.s, { username: 'carol-locked' });
    const created = await t.s.api('POST', '/api/keys', { name: 'carol-key', user_id: carol.id });
    const off = await t.s.api('PATCH', `/api/keys/${created.body.id}`, { status: 'disabled' });
    expect(off.body).toMatchObject({ status: 'disabled', locked: true });
    await t.page.goto(`${t.s.url}/keys`);
    const row = t.page.getByRole('row').filter({ hasText: 'carol-key' });
    const badge = row.getByText('disabled · locked');
    await badge.waitFor();
    expect(await badge.getAttribute('title')).toMatch(/^Locked .*: only an admin can enable it$/);
    // Its owner sees why, and no Enable button that would only fail.
    const other = await newContext(t.browser);
    const p = await other.newPage();
    await signIn(p, t.s.url, carol.username, carol.password);
    await p.goto(`${t.s.url}/keys`);
    const own = p.getByRole('row').filter({ hasText: 'carol-key' });
    await own.getByText('disabled · locked').waitFor();
    expect(await own.getByRole('button', { name: 'Enable' }).isDisabled()).toBe(true);
    await other.close();
    await t.s.api('DELETE', `/api/keys/${created.body.id}`);
  });

  it('deletes a key after confirmation; the relay then refuses it', async () => {
    await t.page.getByRole('link', { name: 'Keys', exact: true }).click();
    const row = t.page.getByRole('row', { name: /web-prod/ });
    await row.getByRole('button', { name: 'Delete' }).click();
    const confirm = t.page.getByRole('dialog', { name: /Delete key/ });
    await confirm.waitFor();
    // cancelling keeps the key
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    await confirm.waitFor({ state: 'detached' });
    expect((await relay(t.s.url, secret, '/key')).status).toBe(200);

    await row.getByRole('button', { name: 'Delete' }).click();
    await confirm.getByRole('button', { name: 'Delete' }).click();
    // The dialog closes once the DELETE has answered. Wait for that first: while a dialog is open
    // the page behind it is aria-hidden, so the row "detaches" for role queries at once.
    await confirm.waitFor({ state: 'detached' });
    await row.waitFor({ state: 'detached' });
    const gone = await relay(t.s.url, secret, '/key');
    expect(gone.status).toBe(401);
    expect(gone.body.error.code).toBe('invalid_api_key');
  });

  it('admin pages: users, channels (connection test), pricing', async () => {
    await t.page.getByRole('link', { name: 'Users', exact: true }).click();
    await t.page.getByRole('row', { name: /ada/ }).waitFor();
    await t.page.getByRole('button', { name: 'Create user' }).click();
    const dialog = t.page.getByRole('dialog', { name: 'Create user' });
    await dialog.getByLabel('Username').fill('grace');
    await dialog.getByLabel('Password').fill('grace-password-1');
    await dialog.getByLabel('Starting balance (USD)').fill('12.5');
    await dialog.getByRole('button', { name: 'Create', exact: true }).click();
    const graceRow = t.page.getByRole('row', { name: /grace/ });
    await graceRow.waitFor();
    expect(await graceRow.textContent()).toContain('$12.50');
    await graceRow.getByRole('button', { name: 'Top up' }).click();
    await t.page.getByLabel('Amount (USD)').fill('7.5');
    await t.page
      .getByRole('dialog', { name: /Top up/ })
      .getByRole('button', { name: 'Top up' })
      .click();
    await expect.poll(() => graceRow.textContent()).toContain('$20.00');

    await t.page.getByRole('link', { name: 'Channels', exact: true }).click();
    const ch = t.page.getByRole('row', { name: /offline mock/ });
    await ch.waitFor();
    await ch.getByRole('button', { name: 'Test' }).click();
    await expect.poll(() => ch.textContent()).toContain('OK in');

    await t.page.getByRole('link', { name: 'Pricing', exact: true }).click();
    expect(await rowText(t.page, /gpt-4o-mini/)).toContain('$0.15');
    // the price form: the required prices, then an optional one, in words; then what it saved
    await t.page.getByRole('button', { name: 'Add price' }).click();
    const priceForm = t.page.getByRole('dialog', { name: 'Add price' });
    const priceField = (label: string) =>
      priceForm.getByLabel(`${label} (USD per 1M tokens)`, { exact: true });
    await priceForm.getByLabel('Model', { exact: true }).fill('priced-by-form');
    await priceField('Input').fill('free');
    await priceField('Output').fill('1.5');
    await priceForm.getByRole('button', { name: 'Save price' }).click();
    await priceForm.getByText('Input price: enter US dollars per 1M tokens, e.g. 0.15.').waitFor();
    await priceField('Input').fill('0.5');
    await priceField('Output').fill('lots');
    await priceForm.getByRole('button', { name: 'Save price' }).click();
    await priceForm.getByText('Output price: enter US dollars per 1M tokens, e.g. 0.60.').waitFor();
    await priceField('Output').fill('1.5');
    await priceField('Cache write').fill('a lot');
    await priceForm.getByRole('button', { name: 'Save price' }).click();
    await priceForm
      .getByText('Cache write price: Enter an amount in US dollars, e.g. 25 or 12.50.')
      .waitFor();
    await priceField('Cache write').fill('');
    await priceField('Cached input').fill('0.25');
    expect(await priceField('Cache write, 1 hour').getAttribute('placeholder')).toBe('2× input');
    await priceField('Cache write, 1 hour').fill('1');
    const searchField = priceForm.getByLabel('Web search (USD per 1,000 searches)', { exact: true });
    expect(await searchField.getAttribute('placeholder')).toBe('10');
    await searchField.fill('25');
    const priorityField = priceForm.getByLabel('Priority multiplier (service_tier priority)', {
      exact: true,
    });
    expect(await priorityField.getAttribute('placeholder')).toBe('refused');
    await priorityField.fill('0.5');
    await priceForm.getByRole('button', { name: 'Save price' }).click();
    await priceForm.getByText(/^Priority multiplier: a number from 1 to 100/).waitFor();
    await priorityField.fill('1.75');
    await priceForm.getByRole('button', { name: 'Save price' }).click();
    await priceForm.waitFor({ state: 'detached' });
    const prices = await t.s.api('GET', '/api/prices');
    expect(prices.body.data).toContainEqual(
      expect.objectContaining({
        model: 'priced-by-form',
        input: 0.5,
        output: 1.5,
        cached_input: 0.25,
        cache_write: null,
        cache_write_1h: 1,
        web_search_per_1k: 25,
        priority_multiplier: 1.75,
      }),
    );
    expect(await rowText(t.page, /priced-by-form/)).toContain('$25');
    expect(await rowText(t.page, /priced-by-form/)).toContain('×1.75');
    await t.page
      .getByRole('row', { name: /priced-by-form/ })
      .getByRole('button', { name: 'Edit' })
      .click();
    const editPrice = t.page.getByRole('dialog', { name: 'Price of priced-by-form' });
    const edited = ['Input', 'Output', 'Cached input', 'Cache write', 'Cache write, 1 hour'].map((label) =>
      editPrice.getByLabel(`${label} (USD per 1M tokens)`, { exact: true }).inputValue(),
    );
    await expect(Promise.all(edited)).resolves.toEqual(['0.5', '1.5', '0.25', '', '1']);
    await editPrice.getByRole('button', { name: 'Cancel' }).click();

    await t.page.getByRole('button', { name: 'Add group' }).click();
    await t.page.getByLabel('Group name').fill('vip');
    await t.page.getByLabel('Multiplier').fill('1.5');
    await t.page.getByRole('button', { name: 'Save group' }).click();
    await expect.poll(() => t.page.getByRole('row', { name: /vip/ }).textContent()).toContain('×1.5');
    const groups = await t.s.api('GET', '/api/groups');
    expect(groups.body.data).toContainEqual(expect.objectContaining({ name: 'vip', multiplier: 1.5 }));
  });

  it('a key named like markup renders as text: no script runs, no errors', async () => {
    const xss = '<img src=x onerror=alert(1)>';
    await t.page.getByRole('link', { name: 'Keys', exact: true }).click();
    await t.page.getByRole('button', { name: 'Create key' }).click();
    await t.page.getByLabel('Name').fill(xss);
    await t.page.getByRole('button', { name: 'Create', exact: true }).click();
    await closeSecret(t.page);
    const link = t.page.getByRole('link', { name: xss });
    await link.waitFor();
    expect(await link.textContent()).toBe(xss);
    expect(await t.page.locator('img[src="x"]').count()).toBe(0);
    await link.click();
    await t.page.getByRole('heading', { name: xss }).waitFor();
    await t.page.waitForTimeout(300);
    expect(await t.page.locator('img[src="x"]').count()).toBe(0);
    expect(t.problems.dialogs).toEqual([]);
    expect(t.problems.pageErrors).toEqual([]);
  });

  it('navigation and contract names are unambiguous on every page', async () => {
    const keys = await t.s.api('GET', '/api/keys');
    const pages = [
      '/',
      '/keys',
      `/keys/${keys.body.data[0].id}`,
      '/logs',
      '/usage',
      '/users',
      '/channels',
      '/pricing',
    ];
    for (const p of pages) {
      await t.page.goto(t.s.url + p);
      await t.page.getByRole('heading', { level: 1 }).waitFor();
      for (const name of ['Home', 'Keys', 'Logs', 'Usage', 'Users', 'Channels', 'Pricing']) {
        // the default (substring, case-insensitive) match a test would use must find one link
        expect(await t.page.getByRole('link', { name }).count(), `${name} on ${p}`).toBe(1);
      }
      expect(await t.page.getByRole('button', { name: 'Sign out' }).count()).toBe(1);
    }
    await t.page.goto(t.s.url + '/usage');
    await t.page.getByRole('heading', { name: 'Breakdown' }).waitFor();
    expect(await t.page.getByRole('button', { name: 'Export CSV' }).count()).toBe(1);
    await t.page.goto(t.s.url + '/logs');
    await t.page.getByRole('heading', { name: 'Call logs' }).waitFor();
    expect(await t.page.getByRole('button', { name: 'Export CSV' }).count()).toBe(1);
    for (const label of ['Key', 'Model', 'Status', 'Time range'])
      expect(await t.page.getByLabel(label).count(), label).toBe(1);
    await t.page.goto(t.s.url + '/keys');
    await t.page.getByRole('button', { name: 'Create key' }).click();
    for (const label of ['Name', 'Models', 'Allowed IPs', 'Quota (USD)', 'Expires'])
      expect(await t.page.getByLabel(label).count(), label).toBe(1);
    expect(await t.page.getByRole('button', { name: 'Create' }).count()).toBe(1);
    await t.page.keyboard.press('Escape');
    await t.page.getByRole('dialog').waitFor({ state: 'detached' });
  });

  it('never showed a script error or console error', () => {
    expect(t.problems.pageErrors).toEqual([]);
    expect(t.problems.dialogs).toEqual([]);
    expect(t.problems.consoleErrors).toEqual([]);
  });

  it('signs out', async () => {
    await t.page.getByRole('button', { name: 'Sign out' }).click();
    await t.page.getByRole('button', { name: 'Sign in' }).waitFor();
    await t.page.goto(t.s.url + '/keys');
    await t.page.getByRole('button', { name: 'Sign in' }).waitFor();
  });
});

describeConsole('web console: users are isolated', { seed: true }, (t) => {
  it('a user sees only their own keys, no admin pages, and another user’s key is not found', async () => {
    const alice = await createUser(t.s, { username: 'alice' });
    const bob = await createUser(t.s, { username: 'bob' });
    const a = await t.s.api('POST', '/api/keys', { name: 'alice-laptop', user_id: alice.id });
    const b = await t.s.api('POST', '/api/keys', { name: 'bob-server', user_id: bob.id });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    // a call with Bob's key, so there is a log and usage that Alice must not see
    expect(
      (
        await relay(t.s.url, b.body.key, '/chat/completions', {
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: 'hi' }],
        })
      ).status,
    ).toBe(200);

    const ctx = await newContext(t.browser);
    const page = await ctx.newPage();
    const problems = watchPage(page);
    await signIn(page, t.s.url, alice.username, alice.password);
    await page.getByRole('link', { name: 'Keys', exact: true }).click();
    await page.getByRole('link', { name: 'alice-laptop' }).waitFor();
    expect(await page.getByText('bob-server').count()).toBe(0);
    for (const name of ['Users', 'Channels', 'Pricing']) {
      expect(await page.getByRole('link', { name, exact: true }).count()).toBe(0);
    }

    // Alice creates a key in the console: it is hers
    await page.getByRole('button', { name: 'Create key' }).click();
    expect(await page.getByLabel('Owner').count()).toBe(0);
    await page.getByLabel('Name').fill('alice-phone');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await closeSecret(page);
    await page.getByRole('link', { name: 'alice-phone' }).waitFor();
    const hers = await t.s.api('GET', `/api/keys?user_id=${alice.id}`);
    expect(hers.body.data.map((k: { name: string }) => k.name).sort()).toEqual([
      'alice-laptop',
      'alice-phone',
    ]);

    await page.goto(`${t.s.url}/keys/${b.body.id}`);
    await page.getByRole('heading', { name: 'Key not found' }).waitFor();

    await page.goto(`${t.s.url}/logs`);
    await page.getByText('No calls match these filters').waitFor();
    expect(await page.getByText('bob-server').count()).toBe(0);
    await page.goto(`${t.s.url}/usage`);
    await page.getByRole('heading', { name: 'Breakdown' }).waitFor();
    await page.getByText('No usage in this period yet.').first().waitFor();
    expect(await page.getByText('bob-server').count()).toBe(0);

    await page.goto(`${t.s.url}/users`);
    await page.getByText('This page is for administrators.').waitFor();
    expect(problems.pageErrors).toEqual([]);
    await ctx.close();
  });

  it('works at phone width (390px) without the page scrolling sideways', async () => {
    const carol = await createUser(t.s, { username: 'carol' });
    await t.s.api('POST', '/api/keys', {
      name: 'carol-key-with-a-rather-long-name',
      user_id: carol.id,
      quota: 3,
    });
    const ctx = await newContext(t.browser, { width: 390, height: 844 });
    const page = await ctx.newPage();
    await signIn(page, t.s.url, carol.username, carol.password);
    await page.getByRole('link', { name: 'Keys', exact: true }).click();
    await page.getByRole('link', { name: 'carol-key-with-a-rather-long-name' }).waitFor();
    for (const path of ['/', '/keys', '/logs', '/usage']) {
      await page.goto(t.s.url + path);
      await page.getByRole('heading', { level: 1 }).waitFor();
      const overflow = Number(
        await page.evaluate('document.documentElement.scrollWidth - window.innerWidth'),
      );
      expect(overflow, `horizontal overflow on ${path}`).toBeLessThanOrEqual(0);
    }
    await page.goto(t.s.url + '/keys');
    await page.getByRole('button', { name: 'Create key' }).click();
    const box = await page.getByRole('dialog', { name: 'Create key' }).boundingBox();
    expect(box && box.x >= 0 && box.x + box.width <= 390).toBe(true);
    await ctx.close();
  });
});
