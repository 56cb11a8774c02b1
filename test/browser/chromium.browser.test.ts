// The browser suites' Chromium itself: its command line keeps Playwright's disabled features
// (Chromium honours only the last `--disable-features`, and ours comes last), and a test's
// window no longer preloads the address bar's WebUI popup in a renderer of its own.
import type { BrowserContext } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { hasChromium, newContext, sharedBrowser, warnIfNoChromium } from './helpers.js';

warnIfNoChromium('chromium');

describe.skipIf(!hasChromium)("the browser suites' Chromium", () => {
  let ctx: BrowserContext | undefined;
  afterEach(async () => {
    await ctx?.close();
    ctx = undefined;
  });

  it('runs with every feature Playwright disables, and ours, in its last --disable-features', async () => {
    ctx = await newContext(await sharedBrowser());
    const page = await ctx.newPage();
    await page.goto('chrome://version');
    const commandLine = (await page.locator('#command_line').textContent()) ?? '';
    const lists = commandLine
      .split(/\s+/)
      .filter((arg) => arg.startsWith('--disable-features='))
      .map((arg) => arg.slice('--disable-features='.length).split(','));
    expect(lists.length).toBeGreaterThanOrEqual(2);
    const last = new Set(lists.at(-1));
    for (const earlier of lists.slice(0, -1)) for (const name of earlier) expect(last).toContain(name);
    expect(last).toContain('WebUIOmniboxPopup');
  });

  it("opens a test's window without preloading the address bar's popup", async () => {
    const browser = await sharedBrowser();
    ctx = await newContext(browser);
    const page = await ctx.newPage();
    await page.setContent('<button>ok</button>');
    const cdp = await browser.newBrowserCDPSession();
    const { targetInfos } = await cdp.send('Target.getTargets', { filter: [{}] });
    await cdp.detach();
    const urls = targetInfos.map((t) => t.url);
    expect(urls).toContain('about:blank');
    expect(urls.filter((u) => u.startsWith('chrome://omnibox-popup'))).toEqual([]);
  });
});
