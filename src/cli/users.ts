// mole users list | create | topup — over /api/users.
import { randomBytes } from 'node:crypto';
import { Option, type Command } from 'commander';
import { listAll, usageError } from './client.js';
import type { CliContext } from './context.js';
import { details, parseId, parseIntArg, parseUsd, table, usd, when } from './output.js';

export interface User {
  id: number;
  username: string;
  role: 'user' | 'admin';
  group: string;
  balance: number;
  status: string;
  created_at: string;
}

const userTable = (users: User[]) =>
  table(
    users,
    [
      { header: 'ID', get: (u) => u.id, right: true },
      { header: 'USERNAME', get: (u) => u.username },
      { header: 'ROLE', get: (u) => u.role },
      { header: 'GROUP', get: (u) => u.group },
      { header: 'BALANCE', get: (u) => usd(u.balance), right: true },
      { header: 'STATUS', get: (u) => u.status },
      { header: 'CREATED', get: (u) => when(u.created_at) },
    ],
    'No users.',
  );

const userDetails = (u: User) =>
  details([
    ['id', u.id],
    ['username', u.username],
    ['role', u.role],
    ['group', u.group],
    ['balance', usd(u.balance)],
    ['status', u.status],
  ]);

export function registerUsers(program: Command, ctx: CliContext): void {
  const users = program.command('users').description('list and create users, top up balances (admin)');

  users
    .command('list')
    .description('list users (a non-admin sees only themself)')
    .option('-q, --query <text>', 'username contains')
    .option('--limit <n>', 'at most this many users', parseIntArg, 1000)
    .action(async (o: { query?: string; limit: number }, cmd) => {
      if (o.limit < 1) throw usageError('--limit must be at least 1');
      const rows = await listAll<User>(ctx.api(), '/api/users', { q: o.query }, o.limit);
      ctx.out(cmd).result(rows, () => userTable(rows));
    });

  users
    .command('create')
    .description('create a user (without a password option, one is generated and printed once)')
    .argument('<username>')
    .option('--password <password>', 'the password (visible to other local users in the process list)')
    .option('--password-stdin', 'read the password from stdin')
    .addOption(new Option('--role <role>', 'user or admin').choices(['user', 'admin']).default('user'))
    .option('--group <name>', 'group (prices, models); default: the default group')
    .option('--balance <usd>', 'starting balance, USD (default 0)', parseUsd)
    .action(
      async (
        username: string,
        o: { password?: string; passwordStdin?: boolean; role: string; group?: string; balance?: number },
        cmd,
      ) => {
        if (o.password !== undefined && o.passwordStdin)
          throw usageError('give either --password or --password-stdin, not both');
        let password = o.password;
        if (o.passwordStdin) password = (await ctx.readStdin()).replace(/\r?\n$/, '');
        const generated = password === undefined;
        if (generated) password = randomBytes(15).toString('base64url');
        const u = await ctx.api().request<User>('POST', '/api/users', {
          body: {
            username,
            password,
            role: o.role,
            ...(o.group !== undefined ? { group: o.group } : {}),
            ...(o.balance !== undefined ? { balance: o.balance } : {}),
          },
        });
        const out = generated ? { ...u, password } : u;
        ctx.out(cmd).result(out, () => {
          const head = `Created ${u.role} ${u.id} "${u.username}".\n\n${userDetails(u)}`;
          return generated ? `${head}\n\nPassword (shown only now):\n  ${password}\n` : head;
        });
      },
    );

  users
    .command('topup')
    .description('add to a balance (a negative amount takes from it)')
    .argument('<id>', 'user id', parseId)
    .argument('<amount>', 'USD, e.g. 10 or -2.5', parseUsd)
    .action(async (id: number, amount: number, _o, cmd) => {
      if (amount === 0) throw usageError('the amount must not be 0');
      const u = await ctx.api().request<User>('POST', `/api/users/${id}/topup`, { body: { amount } });
      ctx
        .out(cmd)
        .result(
          u,
          () =>
            `${amount > 0 ? 'Added' : 'Took'} ${usd(Math.abs(amount))} ${amount > 0 ? 'to' : 'from'} "${u.username}": balance now ${usd(u.balance)}.`,
        );
    });
}
