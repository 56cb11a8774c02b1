// The `mole` CLI end to end (contract §10) against a real running gateway: every command,
// --help everywhere, --json, exit codes (0 success, 1 failure, 2 bad usage) with a one-line
// reason. Most calls run the CLI's own `run()` in this process (the same code path as
// src/cli/index.ts, with the environment, stdin and output handed in), which costs
// milliseconds instead of a node start-up each; one test runs the real process to prove
// that exit codes and output reach the shell.
import { Readable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { run } from '../../src/cli/program.js';
import { type CliResult as Result, moleProcess } from '../helpers/process.js';
import { pricedServerForSuite } from '../helpers/priced-model.js';
import type { ErrorBody, TestServer } from '../helpers/server.js';
import { closedPort } from '../relay/relay-helpers.js';

/** Runs `mole <args>` in this process, as src/cli/index.ts would in its own. */
async function mole(
  args: string[],
  opts: { env?: Record<string, string | undefined>; input?: string } = {},
): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    env: { NO_COLOR: '1', ...opts.env },
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
    stdin: Readable.from([opts.input ?? '']),
  });
  return { code, stdout, stderr };
}

/** Runs independent invocations a few at a time. */
async function inBatches<T>(items: T[], one: (item: T) => Promise<Result>, size = 4): Promise<Result[]> {
  const out: Result[] = [];
  for (let i = 0; i < items.length; i += size)
    out.push(...(await Promise.all(items.slice(i, i + size).map(one))));
  return out;
}

/** A failure: the exit code, and exactly one line on stderr. */
function expectFailure(r: Result, code: 1 | 2, reason: RegExp) {
  expect(r.code, r.stderr + r.stdout).toBe(code);
  expect(r.stderr.trimEnd().split('\n'), r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(reason);
}

describe('mole CLI', { timeout: 180_000 }, () => {
  let s: TestServer;
  let env: Record<string, string>;
  const ok = async (args: string[], input?: string) => {
    const r = await mole(args, { env, ...(input !== undefined ? { input } : {}) });
    expect(r.code, `mole ${args.join(' ')}\n${r.stderr}`).toBe(0);
    expect(r.stderr).toBe('');
    return r;
  };
  const okJson = async (args: string[], input?: string) =>
    JSON.parse((await ok([...args, '--json'], input)).stdout);
  const relayKey = (secret: string) =>
    fetch(s.url + '/v1/key', { headers: { authorization: `Bearer ${secret}` } }).then(async (r) => ({
      status: r.status,
      body: (await r.json()) as Partial<ErrorBody>,
    }));

  pricedServerForSuite({}, { input: 1, output: 2 }, (started) => {
    s = started;
    env = { MOLE_URL: s.url, MOLE_TOKEN: s.masterKey };
  });

  it('--help on every command, and `help [command]`, print the help and exit 0', async () => {
    // [argv, the command whose help it prints]
    const commands: [string[], string[]][] = [
      ...[
        [],
        ['keys'],
        ['keys', 'list'],
        ['keys', 'create'],
        ['keys', 'disable'],
        ['keys', 'enable'],
        ['keys', 'rotate'],
        ['keys', 'delete'],
        ['users'],
        ['users', 'list'],
        ['users', 'create'],
        ['users', 'topup'],
        ['usage'],
      ].map((c): [string[], string[]] => [[...c, '--help'], c]),
      [['help'], []],
      [['help', 'keys'], ['keys']],
      [['help', 'import'], ['import']],
      [['keys', 'help'], ['keys']],
      [
        ['keys', 'help', 'list'],
        ['keys', 'list'],
      ],
    ];
    const results = await inBatches(commands, ([argv]) => mole(argv, { env }));
    for (const [i, [argv, c]] of commands.entries()) {
      const r = results[i]!;
      expect(r.code, `mole ${argv.join(' ')}\n${r.stderr}`).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain(`Usage: mole${c.length ? ' ' + c.join(' ') : ''} `);
      expect(r.stdout).toContain('--json');
    }
    expect((await mole(['help', 'keys'], { env })).stdout).toContain('rotate');
    // A command that is not there is bad usage, with one line (not the whole help) on stderr.
    expectFailure(await mole(['help', 'frob'], { env }), 2, /^mole: unknown command 'frob' for 'mole' /m);
    expectFailure(
      await mole(['keys', 'help', 'frob'], { env }),
      2,
      /^mole: unknown command 'frob' for 'mole keys' /m,
    );
  });

  it('users create | list | topup, in tables and in JSON', async () => {
    const made = await okJson(['users', 'create', 'alice', '--balance', '10']);
    expect(made).toMatchObject({ username: 'alice', role: 'user', group: 'default', balance: 10 });
    expect(made.password).toMatch(/^[\w-]{20}$/); // generated, shown once
    const login = await fetch(s.url + '/api/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'alice', password: made.password }),
    });
    expect(login.status).toBe(200);

    const human = await ok(
      ['users', 'create', 'bob', '--password-stdin', '--role', 'admin'],
      'bob-password-123\n',
    );
    expect(human.stdout).toMatch(/^Created admin \d+ "bob"\./);
    expect(human.stdout).not.toContain('bob-password-123');
    expect(human.stdout).not.toContain('Password (shown only now)');

    const list = await okJson(['users', 'list']);
    expect(list.map((u: { username: string }) => u.username)).toEqual(
      expect.arrayContaining(['alice', 'bob']),
    );
    const table = (await ok(['users', 'list'])).stdout.trimEnd().split('\n');
    expect(table[0]).toMatch(/^ID\s+USERNAME\s+ROLE\s+GROUP\s+BALANCE\s+STATUS\s+CREATED$/);
    const aliceLine = table.find((l) => / alice /.test(l))!;
    expect(aliceLine).toContain('$10.00');
    // aligned: every row's USERNAME starts in the header's column
    const col = table[0]!.indexOf('USERNAME');
    for (const line of table.slice(1)) expect(line[col - 1]).toBe(' ');
    expect(table.filter((l) => l.slice(col).startsWith('alice'))).toHaveLength(1);

    const up = await okJson(['users', 'topup', String(made.id), '5']);
    expect(up.balance).toBe(15);
    const down = await ok(['users', 'topup', String(made.id), '-2.5']);
    expect(down.stdout.trim()).toBe('Took $2.50 from "alice": balance now $12.50.');
  });

  it('keys create | list | disable | enable | rotate | delete act on the gateway', async () => {
    const user = await okJson([
      'users',
      'create',
      'carol',
      '--balance',
      '5',
      '--password',
      'carol-password-1',
    ]);
    const created = await okJson([
      'keys',
      'create',
      'dev-local',
      '--user',
      String(user.id),
      '--models',
      'mole-*,gpt-4o',
      '--quota',
      '2',
      '--ips',
      '127.0.0.1,::1',
      '--rpm',
      '60',
      '--tpm',
      '50000',
      '--max-concurrency',
      '2',
      '--expires',
      '30d',
    ]);
    expect(created).toMatchObject({
      name: 'dev-local',
      user_id: user.id,
      status: 'active',
      models: ['mole-*', 'gpt-4o'],
      quota: 2,
      allowed_ips: ['127.0.0.1', '::1'],
      rpm: 60,
      tpm: 50_000,
      max_concurrency: 2,
    });
    expect(Date.parse(created.expires_at) - Date.now()).toBeGreaterThan(29 * 86_400_000);
    expect(created.key).toMatch(/^sk-[0-9A-Za-z]{48}$/);
    expect((await relayKey(created.key)).status).toBe(200);

    // human output: the secret, set apart, shown this once
    const human = await ok(['keys', 'create', 'web-prod', '--user', String(user.id)]);
    expect(human.stdout).toMatch(/^Created key \d+ "web-prod"\./);
    expect(human.stdout).toMatch(/Secret \(shown only now; store it safely\):\n {2}sk-[0-9A-Za-z]{48}\n/);

    const listed = await okJson(['keys', 'list', '--user', String(user.id)]);
    expect(listed.map((k: { name: string }) => k.name).sort()).toEqual(['dev-local', 'web-prod']);
    expect(JSON.stringify(listed)).not.toContain(created.key);
    const table = (await ok(['keys', 'list', '--user', String(user.id)])).stdout;
    expect(table).toMatch(/^ID\s+NAME\s+USER\s+STATUS\s+KEY\s+USED\s+QUOTA\s+GROUP\s+EXPIRES\s+LAST USED\n/);
    expect(table).toContain(created.display);
    expect(table).not.toContain(created.key);
    expect((await ok(['keys', 'list', '--query', 'nothing-like-this'])).stdout.trim()).toBe('No keys.');

    const off = await ok(['keys', 'disable', String(created.id)]);
    expect(off.stdout.trim()).toBe(`Disabled key ${created.id} "dev-local" (${created.display}).`);
    const refused = await relayKey(created.key);
    expect(refused.status).toBe(401);
    expect(refused.body.error?.code).toBe('key_disabled');
    expect((await okJson(['keys', 'enable', String(created.id)])).status).toBe('active');
    expect((await relayKey(created.key)).status).toBe(200);

    const rotated = await okJson(['keys', 'rotate', String(created.id)]);
    expect(rotated.key).toMatch(/^sk-/);
    expect(rotated.key).not.toBe(created.key);
    expect((await relayKey(created.key)).status).toBe(401);
    expect((await relayKey(rotated.key)).status).toBe(200);
    const graced = await ok(['keys', 'rotate', String(created.id), '--grace', '60']);
    expect(graced.stdout).toContain('the old secret works for 60 more seconds');
    expect((await relayKey(rotated.key)).status).toBe(200);

    // no terminal to ask: deleting needs --yes
    expectFailure(await mole(['keys', 'delete', String(created.id)], { env }), 2, /--yes/);
    expect((await relayKey(rotated.key)).status).toBe(200);
    const gone = await okJson(['keys', 'delete', String(created.id), '--yes']);
    expect(gone).toMatchObject({ id: created.id, deleted: true });
    expect((await relayKey(rotated.key)).status).toBe(401);
    const after = await okJson(['keys', 'list', '--user', String(user.id)]);
    expect(after.map((k: { name: string }) => k.name)).toEqual(['web-prod']);
  });

  it('usage by day, key and model, with --from/--to', async () => {
    const user = await okJson(['users', 'create', 'dave', '--balance', '5', '--password', 'dave-password-1']);
    const key = await okJson(['keys', 'create', 'usage-key', '--user', String(user.id)]);
    // Both requests and `today` on one UTC day of the server's clock: a day starting between them
    // would split the day's row (or name the next day).
    onTestFinished(s.clock.freeze());
    for (let i = 0; i < 2; i++) {
      const r = await fetch(s.url + '/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'mole-mini', messages: [{ role: 'user', content: 'hello' }] }),
      });
      expect(r.status).toBe(200);
      await r.text();
    }
    const byModel = await okJson(['usage', '--by', 'model', '--user', String(user.id)]);
    expect(byModel.data).toHaveLength(1);
    expect(byModel.data[0]).toMatchObject({ model: 'mole-mini', requests: 2 });
    expect(byModel.data[0].cost).toBeGreaterThan(0);

    const byKey = await okJson(['usage', '--by', 'key', '--key', String(key.id)]);
    expect(byKey.data[0]).toMatchObject({ key_id: key.id, requests: 2 });

    const today = new Date(s.clock.now()).toISOString().slice(0, 10);
    const byDay = (await ok(['usage', '--user', String(user.id), '--from', '1d', '--to', '2099-01-01']))
      .stdout;
    const lines = byDay.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^DAY\s+REQUESTS\s+PROMPT\s+CACHED\s+COMPLETION\s+COST$/);
    expect(lines[1]).toMatch(new RegExp(`^${today}\\s+2\\s`));
    expect(lines[2]).toMatch(/^total\s+2\s/);
    expect(byDay).not.toMatch(/e-\d/); // never exponent notation
    const empty = await ok(['usage', '--from', '2000-01-01', '--to', '2000-01-02']);
    expect(empty.stdout.trim()).toBe('No usage in this period.');
  });

  it('a wrong or missing token, an unreachable gateway, a refused call: exit 1, one line', async () => {
    expectFailure(
      await mole(['keys', 'list'], { env: { ...env, MOLE_TOKEN: 'mk-wrong' } }),
      1,
      /^mole: invalid credentials \(HTTP 401 unauthorized\)$/m,
    );
    expectFailure(await mole(['users', 'topup', '999999', '1'], { env }), 1, /HTTP 404 not_found/);
    expectFailure(await mole(['keys', 'disable', '999999'], { env }), 1, /HTTP 404/);
    const port = await closedPort();
    expectFailure(
      await mole(['keys', 'list'], { env: { ...env, MOLE_URL: `http://127.0.0.1:${port}` } }),
      1,
      new RegExp(`^mole: cannot reach http://127\\.0\\.0\\.1:${port}: ECONNREFUSED$`, 'm'),
    );
    // the management API never echoes a secret in an error, nor does the CLI
    const wrong = await mole(['keys', 'list'], { env: { ...env, MOLE_TOKEN: 'mk-wrong-secret-value' } });
    expect(wrong.stderr + wrong.stdout).not.toContain('mk-wrong-secret-value');
  });

  it('a value the gateway refuses (HTTP 400/422) is bad usage: exit 2, one line', async () => {
    const user = await okJson(['users', 'create', 'erin', '--password', 'erin-password-1']);
    expectFailure(
      await mole(['keys', 'create', 'x', '--user', String(user.id), '--quota', '-1'], { env }),
      2,
      /\(HTTP 422 validation_error\); see --quota$/m,
    );
    expectFailure(
      await mole(['users', 'create', 'x', '--password', 'short'], { env }),
      2,
      /invalid body: password/,
    );
    // a refused field points at the option that sets it
    expectFailure(
      await mole(['keys', 'create', 'ownerless'], { env }),
      2,
      /^mole: user_id: required with the master key \(HTTP 422 validation_error\); see --user$/m,
    );
    // Not the arguments' fault: an id that is not there, a name already taken, stay failures.
    expectFailure(await mole(['keys', 'enable', '999999'], { env }), 1, /HTTP 404/);
    expectFailure(
      await mole(['users', 'create', 'erin', '--password', 'erin-password-2'], { env }),
      1,
      /HTTP 409/,
    );
  });

  it('bad usage: exit 2, one line', async () => {
    const cases: Array<[string[], RegExp, Record<string, string>?]> = [
      [['keys', 'list'], /set MOLE_TOKEN/, { MOLE_URL: s.url }],
      [[], /missing command for 'mole'/],
      [['keys'], /missing command for 'mole keys'/],
      [['frob'], /unknown command 'frob'/],
      [['keys', 'frob'], /unknown command 'frob' for 'mole keys'/],
      [['keys', 'list', '--bogus'], /unknown option '--bogus'/],
      [['keys', 'disable'], /missing required argument 'id'/],
      [['keys', 'disable', 'abc'], /not an id/],
      [['keys', 'create', 'k', '--quota', 'lots'], /not an amount/],
      [['users', 'topup', '1', 'ten'], /not an amount/],
      [['users', 'create', 'y', '--role', 'root'], /--role/],
      [['usage', '--by', 'week'], /--by/],
      [['usage', '--from', 'yesterday-ish'], /not a time/],
      [['keys', 'list'], /MOLE_URL/, { ...env, MOLE_URL: 'ftp://x' }],
    ];
    const results = await inBatches(cases, ([args, , e]) => mole(args, { env: e ?? env }));
    for (const [i, [, reason]] of cases.entries()) expectFailure(results[i]!, 2, reason);
  });

  it('as its own process: exit codes 0, 1 and 2 and the output reach the shell', async () => {
    const [listed, refused, bad, help, invalid] = await inBatches(
      [
        { args: ['users', 'list', '--json'], env },
        { args: ['keys', 'list'], env: { ...env, MOLE_TOKEN: 'mk-wrong' } },
        { args: ['keys', 'frob'], env },
        { args: ['help', 'keys'], env },
        { args: ['keys', 'create', 'ownerless'], env },
      ],
      (c) => moleProcess(c.args, { env: c.env }),
      5,
    );
    expect(listed!.code, listed!.stderr).toBe(0);
    expect(Array.isArray(JSON.parse(listed!.stdout))).toBe(true);
    expectFailure(refused!, 1, /^mole: invalid credentials \(HTTP 401 unauthorized\)$/m);
    expectFailure(bad!, 2, /unknown command 'frob' for 'mole keys'/);
    expect(help!.code, help!.stderr).toBe(0);
    expect(help!.stdout).toContain('Usage: mole keys ');
    expectFailure(invalid!, 2, /\(HTTP 422 validation_error\); see --user$/m);
  });
});
