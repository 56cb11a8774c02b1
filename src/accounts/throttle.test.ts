// Sign-in throttling cannot be reset from outside: filling the bounded failure table with
// other usernames (from other addresses) never flushes out a throttled username+IP pair.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Storage } from '../db/index.js';
import { openStorage } from '../db/open.js';
import { InvalidationBus } from '../shared/bus.js';
import { createAccountsService } from './service.js';

// Sign-ins here hash at the test cost (test/setup/cheap-passwords.ts): ~270 of them.

/** No keys domain in these tests: deleting a user has nothing else to remove. */
const NO_HOOKS = { onUserDeleted: async () => {} };

describe('login throttle', () => {
  let dir: string;
  let storage: Storage;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-throttle-'));
    storage = await openStorage({ dataDir: dir });
  });
  afterAll(async () => {
    await storage.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const code = (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (e: { code?: string }) => e.code,
    );

  it('keeps a throttled pair throttled while a spray of other usernames overflows the table', async () => {
    const accounts = createAccountsService(
      storage.db,
      new InvalidationBus(),
      {
        sessionTtlSeconds: 60,
        loginMaxFailures: 2,
        loginTableSize: 20,
      },
      NO_HOOKS,
    );
    await accounts.createUser({
      username: 'victim',
      password: 'right-password',
      role: 'user',
      group: 'default',
      balanceNano: 0,
    });
    const attacker = '203.0.113.7';
    expect(await code(accounts.login('victim', 'guess-1', attacker))).toBe('login_failed');
    expect(await code(accounts.login('victim', 'guess-2', attacker))).toBe('login_failed');
    expect(await code(accounts.login('victim', 'right-password', attacker))).toBe('login_throttled');

    // 60 other names, each from its own address: three times the table's size.
    for (let i = 0; i < 60; i++)
      expect(await code(accounts.login(`spray${i}`, 'x', `198.51.100.${i + 1}`))).toBe('login_failed');
    expect(await code(accounts.login('victim', 'right-password', attacker))).toBe('login_throttled');
    // Elsewhere the right password still works: the throttle is per username and address.
    expect(await code(accounts.login('victim', 'right-password', '192.0.2.1'))).toBe('ok');
  });

  it('throttles one address spraying many usernames', async () => {
    const accounts = createAccountsService(
      storage.db,
      new InvalidationBus(),
      { sessionTtlSeconds: 60, loginMaxFailures: 5 },
      NO_HOOKS,
    );
    const ip = '203.0.113.99';
    const results: unknown[] = [];
    for (let i = 0; i < 101; i++) results.push(await code(accounts.login(`nobody${i}`, 'x', ip)));
    expect(results.slice(0, 100).every((r) => r === 'login_failed')).toBe(true);
    expect(results[100]).toBe('login_throttled');
  }, 60_000);

  it('does not count successful sign-ins against the address', async () => {
    // Also passes the hooks argument the service takes on main (no other domain here), so
    // this compiles on either side of the merge.
    const accounts = (createAccountsService as (...a: unknown[]) => ReturnType<typeof createAccountsService>)(
      storage.db,
      new InvalidationBus(),
      { sessionTtlSeconds: 60, loginMaxFailures: 5 },
      { onUserDeleted: async () => {} },
    );
    await accounts.createUser({
      username: 'office',
      password: 'right-password',
      role: 'user',
      group: 'default',
      balanceNano: 0,
    });
    const ip = '203.0.113.50';
    for (let i = 0; i < 105; i++)
      expect(await code(accounts.login('office', 'right-password', ip))).toBe('ok');
  }, 60_000);
});
