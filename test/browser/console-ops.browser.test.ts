// Everyday use of the console (issue 13): no page scrolls sideways at phone width, the home
// page's summary, the key form's owner and balance warning, the log drawer's channel names
// and attempts, channel test results that survive a reload, same-named keys on the usage
// page, full-precision balances and the own-password change.
import type { Page } from 'playwright-core';
import { beforeAll, expect, it } from 'vitest';
import { createUser, newContext, relay, signIn, watchPage } from './helpers.js';
import { type Account, closeSecret, describeConsole, exportCsv, rowText } from './suite.js';

/** How far the page's document is wider than the viewport (0 = no sideways scrolling). */
async function sidewaysOverflow(page: Page): Promise<number> {
  return Number(
    await page.evaluate(
      '(() => { const el = document.scrollingElement; return el.scrollWidth - el.clientWidth; })()',
    ),
  );
}

describeConsole('web console: everyday use', { seed: true, viewport: { width: 390, height: 844 } }, (t) => {
  let admin: Account;
  let secret = '';
  let broke: Account;
  let penny: Account;
  const twins: string[] = [];
  /** When the calls below were made, on the server's clock (stopped while they ran). */
  let callsAt = 0;

  beforeAll(async () => {
    admin = await createUser(t.s, { username: 'ada', role: 'admin', balance: 100 });
    broke = await createUser(t.s, { username: 'broke', balance: 0 });
    penny = await createUser(t.s, { username: 'penny', balance: 0.123456789 });
    // tried before the mock (higher priority) for gpt-4o-mini, and refused at once: nothing
    // listens on the discard port
    const dead = await t.s.api('POST', '/api/channels', {
      name: 'dead upstream',
      type: 'openai',
      base_url: 'http://127.0.0.1:9/v1',
      api_key: 'sk-not-a-real-upstream-key',
      models: ['gpt-4o-mini'],
      priority: 10,
    });
    expect(dead.status).toBe(201);
    // Odd prices, so a call's cost has more decimals than a rounded display keeps.
    const priced = await t.s.api('PUT', '/api/prices/gpt-4o-mini', { input: 3.33, output: 13.37 });
    expect(priced.status).toBe(200);
    // a key with a long name and a few calls, so every page has rows to lay out
    const k = await t.s.api('POST', '/api/keys', {
      name: 'a-rather-long-key-name-for-a-narrow-phone',
      user_id: admin.id,
    });
    expect(k.status).toBe(201);
    secret = k.body.key;
    // The home page's "today" is the browser's day (Europe/Berlin): the calls land at one moment,
    // which that test gives the browser, so no midnight falls between them and the page.
    const thaw = t.s.clock.freeze();
    callsAt = t.s.clock.now();
    const chat = (key: string, model: string) =>
      relay(t.s.url, key, '/chat/completions', { model, messages: [{ role: 'user', content: 'hello' }] });
    expect((await chat(secret, 'gpt-4o-mini')).status).toBe(200); // dead upstream first, then the mock
    expect((await chat(secret, 'gpt-4o')).status).toBe(200);
    expect((await chat(secret, 'no-such-model')).status).toBe(404); // today's one error
    // an embedding costs a few nano-dollars: 2e-8 in JavaScript's own number form
    expect(
      (await relay(t.s.url, secret, '/embeddings', { model: 'text-embedding-3-small', input: 'hi' })).status,
    ).toBe(200);
    // two keys with one name
    for (let i = 0; i < 2; i++) {
      const twin = await t.s.api('POST', '/api/keys', { name: 'twin', user_id: admin.id });
      expect(twin.status).toBe(201);
      twins.push(twin.body.display);
      expect((await chat(twin.body.key, 'gpt-4o')).status).toBe(200);
    }
    thaw();
    await signIn(t.page, t.s.url, admin.username, admin.password);
  });

  it('no page scrolls sideways at 390 px, and every nav link is reachable', async () => {
    const nav = t.page.getByRole('navigation', { name: 'Main' });
    const links = await nav.getByRole('link').all();
    const hrefs: string[] = [];
    for (const l of links) hrefs.push((await l.getAttribute('href')) ?? '');
    expect(hrefs).toEqual(
      expect.arrayContaining(['/keys', '/logs', '/usage', '/users', '/channels', '/pricing']),
    );
    for (const href of hrefs) {
      await t.page.goto(t.s.url + href);
      await t.page.getByRole('heading', { level: 1 }).waitFor();
      // wait for the page's data, not just its head: a table, or the words for an empty list
      await t.page.locator('table, .empty').first().waitFor();
      expect(await sidewaysOverflow(t.page), `sideways scrolling on ${href}`).toBeLessThanOrEqual(0);
      // each nav link lies inside the viewport or its own scrolling strip, once scrolled into
      // view: all links measured in the page at once (a scroll and a box per link through
      // Playwright took a few hundred round trips over the pages)
      const misplaced = await nav.getByRole('link').evaluateAll((shown, count) => {
        const out = shown.length === count ? [] : [`${shown.length} links, not ${count}`];
        for (const l of shown) {
          l.scrollIntoView({ block: 'nearest', inline: 'nearest' });
          const box = l.getBoundingClientRect();
          // no client rects: not rendered (Playwright's boundingBox() is null then)
          if (l.getClientRects().length === 0 || box.x < 0 || box.x + box.width > 390)
            out.push(`${l.textContent}: ${box.x}..${box.x + box.width}`);
        }
        return out;
      }, links.length);
      expect(misplaced, `${href}: nav links out of view (of ${links.length})`).toEqual([]);
    }
  });

  it('the home page shows today at a glance: spend, requests, errors, top keys and models', async () => {
    await t.page.clock.setFixedTime(callsAt);
    await t.page.getByRole('link', { name: 'Home', exact: true }).click();
    await t.page.getByRole('heading', { name: 'Today', level: 1 }).waitFor();
    const glance = t.page.getByLabel('Today at a glance');
    // the figures come from separate fetches: wait until the last of them has landed
    await expect.poll(() => glance.textContent()).toMatch(/Requests today\s*6(?!\d)/);
    await expect.poll(() => glance.textContent()).toMatch(/Errors today\s*1 \(16\.7%\)/);
    expect(await glance.textContent()).toMatch(/Spend today\s*\$0\.0\d+/);
    const topKeys = t.page.getByRole('table', { name: 'Top keys today' });
    await topKeys.getByRole('link', { name: 'twin' }).first().waitFor();
    expect(await topKeys.getByRole('link', { name: 'twin' }).count()).toBe(2);
    for (const d of twins) expect(await topKeys.textContent()).toContain(d);
    const topModels = t.page.getByRole('table', { name: 'Top models today' });
    for (const m of ['gpt-4o-mini', 'gpt-4o', 'text-embedding-3-small'])
      await topModels.getByRole('rowheader', { name: m, exact: true }).waitFor();
    const failed = t.page.getByRole('table', { name: 'Latest failed calls today' });
    await failed.getByText('no-such-model').waitFor();
    expect(await failed.textContent()).toContain('404');
  });

  it('the key form lets an admin pick the owner and warns when the owner cannot pay', async () => {
    await t.page.getByRole('link', { name: 'Keys', exact: true }).click();
    await t.page.getByRole('button', { name: 'Create key' }).click();
    const dialog = t.page.getByRole('dialog', { name: 'Create key' });
    await dialog.waitFor();
    await t.page.getByLabel('Name').fill('for-broke');
    const owner = dialog.getByLabel('Owner', { exact: true });
    const warning = dialog.getByTestId('owner-balance-warning');
    // the admin (balance 100) can pay: no warning
    await expect.poll(() => owner.locator('option').count()).toBe(3);
    // the admin's own calls spent a little: the balance reads to the nano-dollar
    await expect.poll(() => dialog.textContent()).toMatch(/its balance is \$99\.99\d{3,}\./);
    expect(await warning.count()).toBe(0);
    await owner.selectOption({ label: 'broke (default)' });
    await warning.waitFor();
    expect(await warning.textContent()).toMatch(/broke’s balance is \$0\.00.*insufficient_quota/);
    // a balance below a cent is not zero, and reads in full
    await owner.selectOption({ label: 'penny (default)' });
    await warning.waitFor({ state: 'detached' });
    await expect.poll(() => dialog.textContent()).toContain('its balance is $0.123456789');
    await owner.selectOption({ label: 'broke (default)' });
    await warning.waitFor();
    await t.page.getByRole('button', { name: 'Create', exact: true }).click();
    await closeSecret(t.page);
    const listed = await t.s.api('GET', '/api/keys?q=for-broke');
    expect(listed.body.data).toHaveLength(1);
    expect(listed.body.data[0].user_id).toBe(broke.id);
    // the key list filtered to one account preselects that account as a new key's owner
    await t.page.goto(`${t.s.url}/keys?user_id=${broke.id}`);
    await t.page.getByRole('link', { name: 'for-broke' }).waitFor();
    await t.page.getByRole('button', { name: 'Create key' }).click();
    await expect.poll(() => owner.inputValue()).toBe(String(broke.id));
    await warning.waitFor();
    await t.page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
  });

  it('the log drawer names the channels and shows the failed attempt before the answer', async () => {
    await t.page.getByRole('link', { name: 'Logs', exact: true }).click();
    await t.page.getByRole('heading', { name: 'Call logs' }).waitFor();
    await t.page.getByLabel('Model').selectOption('gpt-4o-mini');
    const table = t.page.getByRole('table');
    await expect.poll(() => table.locator('tbody tr').count()).toBe(1);
    const listedRow = (await table.locator('tbody tr').textContent()) ?? '';
    await table.getByRole('button', { name: 'Details' }).click();
    const drawer = t.page.getByRole('dialog', { name: 'Call details' });
    await drawer.waitFor();
    const text = (await drawer.textContent()) ?? '';
    expect(text).toMatch(/Channeloffline mock \(#\d+\)/);
    // The cost to the nano-dollar, as the API and the CSV give it, in the table and the drawer.
    const logged = await t.s.api('GET', '/api/logs?model=gpt-4o-mini');
    const cost: number = logged.body.data[0].cost;
    expect(String(cost)).toMatch(/^0\.000\d{5,6}$/); // past the 6 decimals a rounded display keeps
    expect(text).toContain(`Cost$${cost}`);
    expect(listedRow).toContain(`$${cost}`);
    expect(text).toContain('Upstream attempts (1 failed)');
    const attempts = drawer.locator('ol.attempts li');
    expect(await attempts.count()).toBe(2);
    // Durations in the console's number format: a slow first call (its tokenizer loading) reads "1,964 ms".
    expect(await attempts.nth(0).textContent()).toMatch(/^dead upstream \(#\d+\): failed \(.+\), [\d,]+ ms$/);
    expect(await attempts.nth(1).textContent()).toMatch(
      /^offline mock \(#\d+\): answered, HTTP 200, [\d,]+ ms$/,
    );
    for (const term of ['Protocol', 'Cache-write prompt tokens', 'Reasoning tokens'])
      expect(text).toContain(term);
    expect(text).toContain("Web searches (the provider's search tool)0");
    expect(text).toContain('Service tier');
    expect(text).toContain('Of them kept for an hour0');
    expect(text).toContain('Protocolopenai');
    await drawer.getByRole('button', { name: 'Close' }).click();
    await drawer.waitFor({ state: 'detached' });
  });

  it('channel test results survive a reload, with their time', async () => {
    await t.page.getByRole('link', { name: 'Channels', exact: true }).click();
    const mock = t.page.getByRole('row', { name: /offline mock/ });
    const dead = t.page.getByRole('row', { name: /dead upstream/ });
    await mock.waitFor();
    expect(await mock.textContent()).toContain('not tested');
    await mock.getByRole('button', { name: 'Test' }).click();
    await dead.getByRole('button', { name: 'Test' }).click();
    await expect.poll(() => mock.textContent()).toContain('OK in');
    await expect.poll(() => dead.textContent()).toContain('Failed: could not reach upstream');
    await t.page.reload();
    await mock.waitFor();
    expect(await mock.textContent()).toMatch(/OK in \d+ ms\s*last tested/);
    expect(await dead.textContent()).toMatch(/Failed: could not reach upstream.*last tested/);
    expect(await mock.locator('time').last().getAttribute('datetime')).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('channels of every protocol are added from the console, Responses switched off for one', async () => {
    await t.page.getByRole('link', { name: 'Channels', exact: true }).click();
    const add = async (name: string, type: string, baseUrl: string, responses?: boolean) => {
      await t.page.getByRole('button', { name: 'Add channel' }).click();
      const form = t.page.getByRole('dialog', { name: 'Add channel' });
      await form.getByLabel('Name').fill(name);
      await form.getByLabel('Type').selectOption({ label: type });
      expect(await form.getByLabel('Base URL').getAttribute('placeholder')).toMatch(/^https:\/\//);
      await form.getByLabel('Base URL').fill(baseUrl);
      await form.getByLabel('Upstream API key').fill('sk-upstream-console-0001');
      await form.getByLabel('Models').fill(`${name}-model`);
      const serves = form.getByLabel(/Serves the Responses API/);
      expect(await serves.count()).toBe(responses === undefined ? 0 : 1);
      if (responses === false) await serves.uncheck();
      await form.getByRole('button', { name: 'Add channel' }).click();
      await form.waitFor({ state: 'detached' });
    };
    await add('claude-upstream', 'Anthropic', 'https://api.anthropic.com');
    await add('gemini-upstream', 'Google Gemini', 'https://generativelanguage.googleapis.com');
    await add('chat-only', 'OpenAI-compatible', 'https://llm.example.com/v1', false);
    const list = await t.s.api('GET', '/api/channels');
    const byName = (n: string) => list.body.data.find((c: { name: string }) => c.name === n);
    expect(byName('claude-upstream')).toMatchObject({
      type: 'anthropic',
      base_url: 'https://api.anthropic.com',
    });
    expect(byName('gemini-upstream')).toMatchObject({ type: 'gemini' });
    expect(byName('chat-only')).toMatchObject({ type: 'openai', responses: false });
    // Edited, the form shows the switch as stored and keeps it.
    await t.page
      .getByRole('row', { name: /chat-only/ })
      .getByRole('button', { name: 'Edit' })
      .click();
    const edit = t.page.getByRole('dialog', { name: /Edit channel chat-only/ });
    expect(await edit.getByLabel(/Serves the Responses API/).isChecked()).toBe(false);
    await edit.getByRole('button', { name: 'Save' }).click();
    await edit.waitFor({ state: 'detached' });
    const after = await t.s.api('GET', '/api/channels');
    expect(after.body.data.find((c: { name: string }) => c.name === 'chat-only').responses).toBe(false);
    for (const c of after.body.data)
      if (['claude-upstream', 'gemini-upstream', 'chat-only'].includes(c.name))
        expect((await t.s.api('DELETE', `/api/channels/${c.id}`)).status).toBe(200);
  });

  it('same-named keys are told apart on the usage page; the CSV has no exponents', async () => {
    await t.page.getByRole('link', { name: 'Usage', exact: true }).click();
    const table = t.page.getByRole('table');
    await table.getByRole('link', { name: 'twin' }).first().waitFor();
    const rows = table
      .getByRole('row')
      .filter({ has: t.page.getByRole('link', { name: 'twin', exact: true }) });
    expect(await rows.count()).toBe(2);
    const shown = (await rows.locator('code.key-display').allTextContents()).sort();
    expect(shown).toEqual([...twins].sort());
    expect(shown[0]).not.toBe(shown[1]);

    await t.page.getByRole('button', { name: 'By model' }).click();
    await table.getByText('text-embedding-3-small').waitFor();
    const csv = await exportCsv(t.page);
    const embedding = csv.split('\r\n').find((l) => l.startsWith('text-embedding-3-small,'));
    const cost = embedding?.split(',').at(-1) ?? '';
    const usage = await t.s.api('GET', '/api/usage?group_by=model');
    const apiCost = usage.body.data.find((r: { model: string }) => r.model === 'text-embedding-3-small').cost;
    expect(apiCost).toBeGreaterThan(0);
    expect(apiCost).toBeLessThan(1e-6); // JavaScript writes this in exponent form
    expect(cost).toMatch(/^0\.0{6}\d+$/);
    expect(Number(cost)).toBe(apiCost);
    expect(csv).not.toMatch(/\de-\d/);
  });

  it('the users page shows balances in full, not rounded to cents', async () => {
    await t.page.getByRole('link', { name: 'Users', exact: true }).click();
    expect(await rowText(t.page, /penny/)).toContain('$0.123456789');
    expect(await t.page.getByRole('row', { name: /broke/ }).textContent()).toContain('$0.00');
  });

  it('a form submitted three times in one task is sent once: a top-up adds its amount once', async () => {
    const row = t.page.getByRole('row', { name: /penny/ });
    await row.getByRole('button', { name: 'Top up' }).click();
    const dialog = t.page.getByRole('dialog', { name: /Top up/ });
    await dialog.getByLabel('Amount (USD)').fill('1');
    // Before React renders the button disabled: three submits.
    await dialog.getByRole('button', { name: 'Top up' }).evaluate((b: { click(): void }) => {
      b.click();
      b.click();
      b.click();
    });
    await expect.poll(() => row.textContent()).toContain('$1.123456789');
    const topups = await t.s.api('GET', `/api/audit?user_id=${penny.id}&action=user.topup`);
    expect(topups.body.data).toHaveLength(1);
  });

  it('an amount the API stored with 9 decimals can be saved again, and is told apart when too fine', async () => {
    const k = await t.s.api('POST', '/api/keys', {
      name: 'fine-quota',
      user_id: admin.id,
      quota: 1.23456789,
    });
    expect(k.status).toBe(201);
    await t.page.goto(`${t.s.url}/keys/${k.body.id}`);
    await t.page.getByRole('button', { name: 'Edit' }).click();
    const dialog = t.page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('fine-quota-renamed');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await expect
      .poll(async () => (await t.s.api('GET', `/api/keys/${k.body.id}`)).body.name)
      .toBe('fine-quota-renamed');
    expect((await t.s.api('GET', `/api/keys/${k.body.id}`)).body.quota).toBe(1.23456789);
    await t.page.getByRole('button', { name: 'Edit' }).click();
    await dialog.getByLabel('Quota (USD)').fill('1.2345678901');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.getByText('Use at most 9 decimal places').waitFor();
    await t.page.keyboard.press('Escape');
    // Amounts set are shown as set, not rounded: a quota, a price.
    await t.page.getByRole('link', { name: 'Keys', exact: true }).click();
    expect(await rowText(t.page, /fine-quota-renamed/)).toContain('/ $1.23456789');
    expect(
      (await t.s.api('PUT', '/api/prices/precise-model', { input: 0.123456789, output: 1 })).status,
    ).toBe(200);
    await t.page.getByRole('link', { name: 'Pricing', exact: true }).click();
    expect(await rowText(t.page, /precise-model/)).toContain('$0.123456789');
    await t.page.getByRole('link', { name: 'Users', exact: true }).click();
  });

  it('an admin changing their own password is asked for the current one, then signs in again', async () => {
    const row = t.page.getByRole('row', { name: /ada/ });
    await row.getByRole('button', { name: 'Edit' }).click();
    const dialog = t.page.getByRole('dialog', { name: 'Edit ada' });
    await dialog.waitFor();
    await dialog.getByLabel('New password').fill('a-brand-new-password');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await expect.poll(() => dialog.getByRole('alert').first().textContent()).toContain('current password');
    await dialog.getByLabel('Current password').fill('not-my-password');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await expect.poll(() => dialog.getByRole('alert').first().textContent()).toContain('wrong');
    // nothing changed: the old password still signs in
    expect(
      (await t.s.api('POST', '/api/auth/login', { username: 'ada', password: admin.password })).status,
    ).toBe(200);
    await dialog.getByLabel('Current password').fill(admin.password);
    await dialog.getByRole('button', { name: 'Save' }).click();
    await t.page.getByText('Your password has changed').waitFor();
    await t.page.getByLabel('Username').fill('ada');
    await t.page.getByLabel('Password').fill('a-brand-new-password');
    await t.page.getByRole('button', { name: 'Sign in' }).click();
    // back where they were
    await t.page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
  });

  it('another admin’s password is changed without the current one', async () => {
    await t.page.getByRole('link', { name: 'Users', exact: true }).click();
    await t.page.getByRole('button', { name: 'Create user' }).click();
    const create = t.page.getByRole('dialog', { name: 'Create user' });
    await create.getByLabel('Username').fill('grace');
    await create.getByLabel('Password').fill('grace-password-1');
    await create.getByRole('button', { name: 'Create', exact: true }).click();
    const row = t.page.getByRole('row', { name: /grace/ });
    await row.getByRole('button', { name: 'Edit' }).click();
    const dialog = t.page.getByRole('dialog', { name: 'Edit grace' });
    expect(await dialog.getByLabel('Current password').count()).toBe(0);
    await dialog.getByLabel('New password').fill('grace-password-2');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    const login = await t.s.api('POST', '/api/auth/login', {
      username: 'grace',
      password: 'grace-password-2',
    });
    expect(login.status).toBe(200);
  });

  it('the key filter lists every key, the old ones with traffic among them', async () => {
    // The oldest key (made in beforeAll) has the calls; 120 newer ones push it past one page.
    for (let i = 0; i < 120; i++)
      expect((await t.s.api('POST', '/api/keys', { name: `bulk-${i}`, user_id: admin.id })).status).toBe(201);
    await t.page.getByRole('link', { name: 'Logs', exact: true }).click();
    const filter = t.page.getByLabel('Key', { exact: true });
    await expect.poll(() => filter.locator('option').count()).toBeGreaterThan(120);
    expect(
      await filter.locator('option', { hasText: 'a-rather-long-key-name-for-a-narrow-phone' }).count(),
    ).toBe(1);
  });

  it('the “7 days” preset makes a key in a group whose keys live 7 days', async () => {
    expect(
      (await t.s.api('PUT', '/api/groups/week', { multiplier: 1, max_key_lifetime_days: 7 })).status,
    ).toBe(200);
    const weekly = await createUser(t.s, { username: 'weekly', group: 'week', balance: 1 });
    const other = await newContext(t.browser, { width: 390, height: 844 });
    const p = await other.newPage();
    await signIn(p, t.s.url, weekly.username, weekly.password);
    await p.getByRole('link', { name: 'Keys', exact: true }).click();
    await p.getByRole('button', { name: 'Create key' }).click();
    await p.getByLabel('Name').fill('this-week');
    // Only the presets within the group's 7 days are offered; no expiry at all is refused here.
    const presets = p.getByRole('group', { name: 'Expiry presets' }).getByRole('button');
    await expect.poll(() => presets.allTextContents()).toEqual(['7 days']);
    await p.getByRole('button', { name: 'Create', exact: true }).click();
    const lifetime = p.getByText(
      /^Keys of this group expire within 7 days: pick \d{4}-\d\d-\d\d or earlier\.$/,
    );
    await lifetime.waitFor();
    expect(await lifetime.count()).toBe(1);
    await p.getByRole('button', { name: '7 days' }).click();
    await p.getByRole('button', { name: 'Create', exact: true }).click();
    await p.getByRole('dialog', { name: /created/ }).waitFor();
    const made = (await t.s.api('GET', `/api/keys?user_id=${weekly.id}`)).body.data[0];
    expect(Date.parse(made.expires_at) - Date.now()).toBeLessThanOrEqual(7 * 86_400_000);
    await other.close();
  });

  it('a user’s home page shows only their own day', async () => {
    const other = await newContext(t.browser, { width: 390, height: 844 });
    const p = await other.newPage();
    const seen = watchPage(p);
    await signIn(p, t.s.url, penny.username, penny.password);
    await p.getByRole('heading', { name: 'Today', level: 1 }).waitFor();
    await expect
      .poll(() => p.getByLabel('Today at a glance').textContent())
      .toMatch(/Requests today\s*0(?!\d)/);
    // The two sections that say so load their data apart: wait for both.
    await expect.poll(() => p.getByText('No calls yet today.').count()).toBe(2);
    expect(await p.getByText('twin').count()).toBe(0);
    expect(await sidewaysOverflow(p)).toBeLessThanOrEqual(0);
    expect(seen.pageErrors).toEqual([]);
    await other.close();
  });

  it('never showed a script error or console error', () => {
    expect(t.problems.pageErrors).toEqual([]);
    expect(t.problems.dialogs).toEqual([]);
    expect(t.problems.consoleErrors).toEqual([]);
  });
});
