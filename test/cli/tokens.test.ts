// The `mole` CLI with a management token (contract §10: MOLE_TOKEN = a management token or the
// master key): automation never needs the master key once a token exists. Runs the CLI
// in-process (src/cli/program.ts `run`) against a real gateway; cli.test.ts covers the process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/program.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

async function mole(args: string[], env: Record<string, string>) {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    env,
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
  });
  return { code, stdout, stderr };
}

describe('mole with a management token', () => {
  let s: TestServer;
  let userId: number;
  let asMaster: Record<string, string>;
  beforeAll(async () => {
    s = await startTestServer();
    asMaster = { MOLE_URL: s.url, MOLE_TOKEN: s.masterKey };
    const u = await s.api('POST', '/api/users', { username: 'cli-token-user', password: 'password-123456' });
    userId = u.body.id;
  });
  afterAll(async () => {
    await s?.close();
  });

  it('the master key mints a token; the token then runs commands within its scopes only', async () => {
    const created = await mole(
      ['tokens', 'create', 'ci', '--scopes', 'keys:read,keys:write', '--expires', '30d', '--json'],
      asMaster,
    );
    expect(created.code, created.stderr).toBe(0);
    const token = JSON.parse(created.stdout) as { id: number; token: string; scopes: string[] };
    expect(token.token).toMatch(/^mg-[0-9A-Za-z]{48}$/);
    expect(token.scopes).toEqual(['keys:read', 'keys:write']);

    const asToken = { MOLE_URL: s.url, MOLE_TOKEN: token.token };
    const key = await mole(['keys', 'create', 'from-ci', '--user', String(userId), '--json'], asToken);
    expect(key.code, key.stderr).toBe(0);
    expect(JSON.parse(key.stdout).key).toMatch(/^sk-/);
    const list = await mole(['keys', 'list', '--json'], asToken);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).map((k: { name: string }) => k.name)).toContain('from-ci');

    // Outside its scopes: one line, exit 1, naming the missing scope.
    const users = await mole(['users', 'list'], asToken);
    expect(users.code).toBe(1);
    expect(users.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(users.stderr).toMatch(/insufficient_scope/);
    expect(users.stderr).toMatch(/users:read/);
    // A token cannot mint tokens.
    const mint = await mole(['tokens', 'create', 'more', '--scopes', 'keys:read'], asToken);
    expect(mint.code).toBe(1);
    expect(mint.stderr).toMatch(/insufficient_scope/);

    // --token (before or after the command) wins over MOLE_TOKEN.
    for (const args of [
      ['--token', token.token, 'keys', 'list', '--json'],
      ['keys', 'list', '--json', '--token', token.token],
    ]) {
      const r = await mole(args, { MOLE_URL: s.url, MOLE_TOKEN: 'mg-wrong' });
      expect(r.code, r.stderr).toBe(0);
    }

    // Revoked with the master key: the token stops working at once.
    const listed = await mole(['tokens', 'list', '--json'], asMaster);
    expect(JSON.parse(listed.stdout).map((t: { id: number }) => t.id)).toContain(token.id);
    const revoked = await mole(['tokens', 'revoke', String(token.id)], asMaster);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(/Revoked management token/);
    const after = await mole(['keys', 'list'], asToken);
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/revoked.*HTTP 401/);
  });

  it('explains a relay key given as MOLE_TOKEN', async () => {
    const k = await s.api('POST', '/api/keys', { name: 'not-for-cli', user_id: userId });
    const r = await mole(['keys', 'list'], { MOLE_URL: s.url, MOLE_TOKEN: k.body.key });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/relay API key/);
    expect(r.stderr).not.toContain(k.body.key);
  });
});
