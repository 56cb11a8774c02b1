// Everyday use of the console (issue 13): no page scrolls sideways at phone width, the home
// page's summary, the key form's owner and balance warning, the log drawer's channel names
// and attempts, channel test results that survive a reload, same-named keys on the usage
// page, full-precision balances and the own-password change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startTestServer, type TestServer } from '../helpers/server.js';
import {
  createUser,
  ensureWebBuilt,
  hasChromium,
  launchBrowser,
  newContext,
  relay,
  seedGateway,
  signIn,
  warnIfNoChromium,
  watchPage,
} from './helpers.js';

warnIfNoChromium('web console (everyday use)');

const SUITE = { timeout: 90_000 };
const SETUP_TIMEOUT = 180_000;

/** How far the page's document is wider than the viewport (0 = no sideways scrolling). */
async function sidewaysOverflow(page: Page): Promise<number> {
  return Number(
    await page.evaluate(
      '(() => { const el = document.scrollingElement; return el.scrollWidth - el.clientWidth; })()',
    ),
  );
}

describe.skipIf(!hasChromium)('web console: everyday use', SUITE, () => {
  let s: TestServer;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  let problems: ReturnType<typeof watchPage>;
  let admin: { id: number; username: string; password: string };
  let secret = '';

  beforeAll(async () => {
    await ensureWebBuilt();
    s = await startTestServer();
    await seedGateway(s);
    admin = await createUser(s, { username: 'ada', role: 'admin', balance: 100 });
    await createUser(s, { username: 'broke', balance: 0 });
    await createUser(s, { username: 'penny', balance: 0.123456789 });
    // a key with a long name and a few calls, so every page has rows to lay out
    const k = await s.api('POST', '/api/keys', {
      name: 'a-rather-long-key-name-for-a-narrow-phone',
      user_id: admin.id,
    });
    expect(k.status).toBe(201);
    secret = k.body.key;
    for (const model of ['gpt-4o-mini', 'gpt-4o'])
      expect(
        (
          await relay(s.url, secret, '/chat/completions', {
            model,
            messages: [{ role: 'user', content: 'hello' }],
          })
        ).status,
      ).toBe(200);
    browser = await launchBrowser();
    ctx = await newContext(browser, { width: 390, height: 844 });
    page = await ctx.newPage();
    problems = watchPage(page);
    await signIn(page, s.url, admin.username, admin.password);
  }, SETUP_TIMEOUT);

  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  it('no page scrolls sideways at 390 px, and every nav link is reachable', async () => {
    const nav = page.getByRole('navigation', { name: 'Main' });
    const links = await nav.getByRole('link').all();
    const hrefs: string[] = [];
    for (const l of links) hrefs.push((await l.getAttribute('href')) ?? '');
    expect(hrefs).toEqual(
      expect.arrayContaining(['/keys', '/logs', '/usage', '/users', '/channels', '/pricing']),
    );
    for (const href of hrefs) {
      await page.goto(s.url + href);
      await page.getByRole('heading', { level: 1 }).waitFor();
      // wait for the page's data, not just its head
      await page.locator('table').first().waitFor();
      expect(await sidewaysOverflow(page), `sideways scrolling on ${href}`).toBeLessThanOrEqual(0);
      // each nav link lies inside the viewport or its own scrolling strip
      for (const l of links) {
        await l.scrollIntoViewIfNeeded();
        const box = await l.boundingBox();
        expect(box && box.x >= 0 && box.x + box.width <= 390, `${href}: ${await l.textContent()}`).toBe(true);
      }
    }
  });
});
