// The console's Tokens page in real (Debian) Chromium against a real gateway: create a
// management token with scopes and an expiry, the secret shown once (Copy), the token works
// on /api and only there, revoke after confirmation. And the key list's age / rotate hint.
import { beforeAll, expect, it } from 'vitest';
import { createUser, signIn } from './helpers.js';
import { type Account, describeConsole, rowText, takeSecretOnce } from './suite.js';

const TOKEN_RE = /^mg-[0-9A-Za-z]{48}$/;

describeConsole('Tokens page in Chromium', { clipboard: true }, (t) => {
  let user: Account;
  let token = '';

  beforeAll(async () => {
    user = await createUser(t.s, { username: 'tess', balance: 10 });
    await signIn(t.page, t.s.url, user.username, user.password);
  });

  it('creates a token with scopes and an expiry, and shows it once', async () => {
    await t.page.getByRole('link', { name: 'Tokens' }).click();
    await t.page.getByRole('heading', { level: 1, name: 'Management tokens' }).waitFor();
    await t.page.getByRole('button', { name: 'Create token' }).click();
    const dialog = t.page.getByRole('dialog', { name: 'Create management token' });
    await dialog.waitFor();
    await t.page.getByLabel('Name').fill('ci-deploy');
    // no scope picked: refused in words before anything is sent
    await t.page.getByRole('button', { name: 'Create', exact: true }).click();
    await expect.poll(() => dialog.getByRole('alert').first().textContent()).toContain('scope');
    await t.page.getByLabel(/^keys:read/).check();
    await t.page.getByLabel(/^logs:read/).check();
    const nextYear = new Date().getUTCFullYear() + 1;
    await t.page.getByLabel('Expires').fill(`${nextYear}-06-30`);
    await t.page.getByRole('button', { name: 'Create', exact: true }).click();

    // shown once; then the table shows the masked form
    token = await takeSecretOnce(t.page, TOKEN_RE, (secret) => [`MOLE_TOKEN=${secret}`]);
    const text = await rowText(t.page, /ci-deploy/);
    expect(text).toContain(token.slice(0, 7));
    expect(text).toContain('keys:read, logs:read');
    expect(text).toContain('active');
    expect(text).toContain(String(nextYear));

    const listed = await t.s.api('GET', `/api/tokens?user_id=${user.id}`);
    expect(listed.body.data).toHaveLength(1);
    expect(listed.body.data[0].scopes).toEqual(['keys:read', 'logs:read']);
    expect(listed.body.data[0].expires_at).toMatch(new RegExp(`^${nextYear}-0[67]`));
  });

  it('the token works on /api within its scopes, and is refused on /v1', async () => {
    const auth = { authorization: `Bearer ${token}` };
    expect((await t.s.api('GET', '/api/keys', undefined, auth)).status).toBe(200);
    expect((await t.s.api('GET', '/api/usage', undefined, auth)).body.error.code).toBe('insufficient_scope');
    expect((await t.s.api('GET', '/v1/models', undefined, auth)).status).toBe(401);
  });

  it('revokes after confirmation; the token stops working', async () => {
    const row = t.page.getByRole('row', { name: /ci-deploy/ });
    await row.getByRole('button', { name: /Revoke/ }).click();
    const confirm = t.page.getByRole('dialog', { name: /Revoke/ });
    await confirm.waitFor();
    await confirm.getByRole('button', { name: 'Revoke', exact: true }).click();
    await confirm.waitFor({ state: 'detached' });
    await row.waitFor({ state: 'detached' });
    await t.page.getByText('No tokens yet.').waitFor();
    expect((await t.s.api('GET', '/api/keys', undefined, { authorization: `Bearer ${token}` })).status).toBe(
      401,
    );
  });

  it('the key list shows each secret’s age, and hints to rotate an old one', async () => {
    const fresh = await t.s.api('POST', '/api/keys', { name: 'fresh-key', user_id: user.id });
    const old = await t.s.api('POST', '/api/keys', { name: 'old-key', user_id: user.id });
    const longAgo = Date.now() - 200 * 86_400_000;
    await t.s.services.storage.db
      .updateTable('api_keys')
      .set({ created_at: longAgo })
      .where('id', '=', old.body.id)
      .execute();
    await t.page.getByRole('link', { name: 'Keys', exact: true }).click();
    expect(await rowText(t.page, /old-key/)).toMatch(/200 d old\s*rotate/);
    expect(await rowText(t.page, /fresh-key/)).toMatch(/0 d old(?!\s*rotate)/);
    expect(fresh.status).toBe(201);

    // rotating restarts the age
    expect((await t.s.api('POST', `/api/keys/${old.body.id}/rotate`, {})).status).toBe(200);
    await t.page.reload();
    const after = await rowText(t.page, /old-key/);
    expect(after).toContain('0 d old');
    expect(after).not.toMatch(/d old\s*rotate/);
  });

  it('never showed a script error or console error', () => {
    expect(t.problems).toEqual({ pageErrors: [], dialogs: [], consoleErrors: [] });
  });
});
