// The console's Tokens page in real (Debian) Chromium against a real gateway: create a
// management token with scopes and an expiry, the secret shown once (Copy), the token works
// on /api and only there, revoke after confirmation. And the key list's age / rotate hint.
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

warnIfNoChromium('tokens page');

const TOKEN_RE = /^mg-[0-9A-Za-z]{48}$/;

describe.skipIf(!hasChromium)('Tokens page in Chromium', { timeout: 90_000 }, () => {
  let s: TestServer;
  let browser: Browser;
  let page: Page;
  let problems: ReturnType<typeof watchPage>;
  let user: { id: number; username: string; password: string };
  let token = '';

  beforeAll(async () => {
    await ensureWebBuilt();
    s = await startTestServer();
    user = await createUser(s, { username: 'tess', balance: 10 });
    ({ browser, page, problems } = await openConsole(s.url, { clipboard: true }));
    await signIn(page, s.url, user.username, user.password);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  it('creates a token with scopes and an expiry, and shows it once', async () => {
    await page.getByRole('link', { name: 'Tokens' }).click();
    await page.getByRole('heading', { level: 1, name: 'Management tokens' }).waitFor();
    await page.getByRole('button', { name: 'Create token' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create management token' });
    await dialog.waitFor();
    await page.getByLabel('Name').fill('ci-deploy');
    // no scope picked: refused in words before anything is sent
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => dialog.getByRole('alert').first().textContent()).toContain('scope');
    await page.getByLabel(/^keys:read/).check();
    await page.getByLabel(/^logs:read/).check();
    const nextYear = new Date().getUTCFullYear() + 1;
    await page.getByLabel('Expires').fill(`${nextYear}-06-30`);
    await page.getByRole('button', { name: 'Create', exact: true }).click();

    const secretDialog = page.getByRole('dialog', { name: /created/ });
    await secretDialog.waitFor();
    token = ((await secretDialog.getByText(/^mg-/).first().textContent()) ?? '').trim();
    expect(token).toMatch(TOKEN_RE);
    await expect(secretDialog.textContent()).resolves.toContain('will not be shown again');
    await expect(secretDialog.textContent()).resolves.toContain(`MOLE_TOKEN=${token}`);
    await secretDialog.getByRole('button', { name: 'Copy', exact: true }).click();
    await expect.poll(() => page.evaluate('navigator.clipboard.readText()')).toBe(token);
    await secretDialog.getByRole('button', { name: 'Done' }).click();
    await secretDialog.waitFor({ state: 'detached' });

    // once closed, the secret is nowhere on the page; the table shows the masked form
    await expect(page.content()).resolves.not.toContain(token);
    const row = page.getByRole('row', { name: /ci-deploy/ });
    await row.waitFor();
    const text = (await row.textContent()) ?? '';
    expect(text).toContain(token.slice(0, 7));
    expect(text).toContain('keys:read, logs:read');
    expect(text).toContain('active');
    expect(text).toContain(String(nextYear));

    const listed = await s.api('GET', `/api/tokens?user_id=${user.id}`);
    expect(listed.body.data).toHaveLength(1);
    expect(listed.body.data[0].scopes).toEqual(['keys:read', 'logs:read']);
    expect(listed.body.data[0].expires_at).toMatch(new RegExp(`^${nextYear}-0[67]`));
  });

  it('the token works on /api within its scopes, and is refused on /v1', async () => {
    const auth = { authorization: `Bearer ${token}` };
    expect((await s.api('GET', '/api/keys', undefined, auth)).status).toBe(200);
    expect((await s.api('GET', '/api/usage', undefined, auth)).body.error.code).toBe('insufficient_scope');
    expect((await s.api('GET', '/v1/models', undefined, auth)).status).toBe(401);
  });

  it('revokes after confirmation; the token stops working', async () => {
    const row = page.getByRole('row', { name: /ci-deploy/ });
    await row.getByRole('button', { name: /Revoke/ }).click();
    const confirm = page.getByRole('dialog', { name: /Revoke/ });
    await confirm.waitFor();
    await confirm.getByRole('button', { name: 'Revoke', exact: true }).click();
    await confirm.waitFor({ state: 'detached' });
    await row.waitFor({ state: 'detached' });
    await page.getByText('No tokens yet.').waitFor();
    expect((await s.api('GET', '/api/keys', undefined, { authorization: `Bearer ${token}` })).status).toBe(
      401,
    );
  });

  it('the key list shows each secret’s age, and hints to rotate an old one', async () => {
    const fresh = await s.api('POST', '/api/keys', { name: 'fresh-key', user_id: user.id });
    const old = await s.api('POST', '/api/keys', { name: 'old-key', user_id: user.id });
    const longAgo = Date.now() - 200 * 86_400_000;
    await s.services.storage.db
      .updateTable('api_keys')
      .set({ created_at: longAgo })
      .where('id', '=', old.body.id)
      .execute();
    await page.getByRole('link', { name: 'Keys', exact: true }).click();
    const oldRow = page.getByRole('row', { name: /old-key/ });
    await oldRow.waitFor();
    expect(await oldRow.textContent()).toMatch(/200 d old\s*rotate/);
    expect(await page.getByRole('row', { name: /fresh-key/ }).textContent()).toMatch(/0 d old(?!\s*rotate)/);
    expect(fresh.status).toBe(201);

    // rotating restarts the age
    expect((await s.api('POST', `/api/keys/${old.body.id}/rotate`, {})).status).toBe(200);
    await page.reload();
    await oldRow.waitFor();
    const after = (await oldRow.textContent()) ?? '';
    expect(after).toContain('0 d old');
    expect(after).not.toMatch(/d old\s*rotate/);
  });

  it('never showed a script error or console error', () => {
    expect(problems).toEqual({ pageErrors: [], dialogs: [], consoleErrors: [] });
  });
});
