// Produces the README screenshots (docs/screenshots/*.png, 1366×768; one at phone width)
// from a real gateway with a mock channel and real relay calls. Run by hand:
//   npx tsx test/browser/screenshots.ts
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { startTestServer } from '../helpers/server.js';
import {
  createUser,
  ensureWebBuilt,
  hasChromium,
  launchBrowser,
  newContext,
  relay,
  REPO_ROOT,
  seedGateway,
  signIn,
  CHROMIUM_PATH,
} from './helpers.js';

const OUT = path.join(REPO_ROOT, 'docs', 'screenshots');

async function main() {
  if (!hasChromium) {
    console.error(`No Chromium at ${CHROMIUM_PATH}; install it with: apt-get install -y chromium`);
    process.exit(1);
  }
  await ensureWebBuilt();
  fs.mkdirSync(OUT, { recursive: true });
  const s = await startTestServer();
  try {
    await seedGateway(s);
    await s.api('PUT', '/api/groups/default', { multiplier: 1 });
    await s.api('PUT', '/api/groups/vip', { multiplier: 0.8 });
    const ada = await createUser(s, { username: 'ada', role: 'admin', balance: 250 });
    const grace = await createUser(s, { username: 'grace', balance: 40, group: 'vip' });
    await createUser(s, { username: 'linus', balance: 12.5 });

    const day = 86400_000;
    const mk = async (body: Record<string, unknown>) => {
      const r = await s.api('POST', '/api/keys', { user_id: ada.id, ...body });
      if (r.status !== 201) throw new Error(JSON.stringify(r.body));
      return r.body as { id: number; key: string };
    };
    const webProd = await mk({
      name: 'web-prod',
      models: ['gpt-4o-mini', 'gpt-4o'],
      allowed_ips: ['127.0.0.1', '10.0.0.0/8'],
      quota: 50,
      expires_at: new Date(Date.now() + 90 * day).toISOString(),
    });
    const devLocal = await mk({ name: 'dev-local' });
    const chatbox = await mk({ name: 'chatbox-test', models: ['gpt-4o-mini'], quota: 5, rpm: 60 });
    const ops = await mk({ name: 'ops-batch', models: ['text-embedding-3-small'], quota: 20 });
    const graceKey = await s.api('POST', '/api/keys', {
      user_id: grace.id,
      name: 'grace-notebook',
      quota: 10,
    });

    const chat = (secret: string, model: string, content: string, extra: Record<string, unknown> = {}) =>
      relay(s.url, secret, '/chat/completions', { model, messages: [{ role: 'user', content }], ...extra });
    for (let i = 0; i < 6; i++) {
      await chat(webProd.key, 'gpt-4o-mini', `Summarise order #${1000 + i} for the customer.`, {
        max_tokens: 120,
      });
      await chat(webProd.key, 'gpt-4o', `Draft a reply to ticket ${i}.`, { max_tokens: 200 });
    }
    for (let i = 0; i < 4; i++)
      await chat(devLocal.key, 'gpt-4o-mini', 'hello from my laptop', {
        stream: true,
        stream_options: { include_usage: true },
      });
    await chat(chatbox.key, 'gpt-4o-mini', 'What is an API key?');
    await chat(chatbox.key, 'gpt-4o', 'not allowed for this key');
    for (let i = 0; i < 3; i++)
      await relay(s.url, ops.key, '/embeddings', {
        model: 'text-embedding-3-small',
        input: [`document ${i}`, `chunk ${i}`],
      });
    await chat(graceKey.body.key, 'gpt-4o', 'Plan my week.');
    await relay(s.url, webProd.key, '/key');
    await s.api('PATCH', `/api/keys/${ops.id}`, { status: 'disabled' });
    await relay(s.url, ops.key, '/embeddings', { model: 'text-embedding-3-small', input: 'after disabling' });

    const browser = await launchBrowser();
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    const shot = async (name: string, p: Page = page) => {
      await p.waitForTimeout(250);
      const file = path.join(OUT, `${name}.png`);
      await p.screenshot({ path: file });
      console.log(`${path.relative(REPO_ROOT, file)}  ${(fs.statSync(file).size / 1024).toFixed(0)} KB`);
    };

    await page.goto(s.url + '/');
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await shot('sign-in');
    await signIn(page, s.url, ada.username, ada.password);
    await page.getByRole('heading', { name: 'Today', level: 1 }).waitFor();
    await shot('home');
    await page.goto(s.url + '/keys');
    await page.getByRole('link', { name: 'web-prod' }).waitFor();
    await shot('keys');

    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByLabel('Name').fill('support-bot');
    await page.getByLabel('Models').selectOption(['gpt-4o-mini']);
    await page.getByLabel('Allowed IPs').fill('203.0.113.7\n2001:db8::/32');
    await page.getByLabel('Quota (USD)').fill('25');
    await page.getByRole('button', { name: '90 days' }).click();
    await shot('key-create');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    const secretDialog = page.getByRole('dialog', { name: /created/ });
    await secretDialog.waitFor();
    // Never publish a real secret, even a throwaway one: swap every key in the page for a
    // placeholder whose checksum fails, so secret scanners and readers see no usable key.
    await page.evaluate(`(() => {
      const fake = 'sk-EXAMPLEonlyNotARealKeyExampleOnlyNotARealKeyXX';
      const re = /sk-[0-9A-Za-z]{48}/g;
      const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) n.nodeValue = n.nodeValue.replace(re, fake);
      document.querySelectorAll('input, textarea').forEach((f) => { f.value = f.value.replace(re, fake); });
    })()`);
    await shot('key-secret');
    await secretDialog.getByRole('button', { name: 'Done' }).click();

    await page.goto(`${s.url}/keys/${webProd.id}`);
    await page.locator('.recharts-surface').first().waitFor();
    await page.getByRole('table').waitFor();
    await shot('key-detail');

    await page.goto(`${s.url}/logs`);
    await page.getByRole('table').getByText('gpt-4o-mini').first().waitFor();
    await shot('logs');
    await page.getByRole('table').getByRole('button', { name: 'Details' }).first().click();
    await page.getByRole('dialog', { name: 'Call details' }).waitFor();
    await shot('log-details');
    await page.keyboard.press('Escape');

    await page.goto(`${s.url}/usage`);
    await page.locator('.recharts-surface').first().waitFor();
    await page.getByRole('table').getByRole('link').first().waitFor();
    await shot('usage');

    await page.goto(`${s.url}/users`);
    await page.getByRole('row', { name: /grace/ }).waitFor();
    await shot('users');
    await page.goto(`${s.url}/channels`);
    const ch = page.getByRole('row', { name: /offline mock/ });
    await ch.getByRole('button', { name: 'Test' }).click();
    await ch.getByText('OK in').waitFor();
    await shot('channels');
    await page.goto(`${s.url}/pricing`);
    await page.getByRole('row', { name: /gpt-4o-mini/ }).waitFor();
    await shot('pricing');

    const phone = await newContext(browser, { width: 390, height: 844 });
    const mobile = await phone.newPage();
    await signIn(mobile, s.url, ada.username, ada.password);
    await mobile.goto(s.url + '/keys');
    await mobile.getByRole('link', { name: 'web-prod' }).waitFor();
    await shot('keys-phone', mobile);

    await browser.close();
  } finally {
    await s.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
