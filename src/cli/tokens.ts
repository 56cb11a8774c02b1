// mole tokens list | create | revoke — over /api/tokens. Tokens are managed with the master key
// (or from the console): a management token cannot mint, list or revoke tokens itself.
import type { Command } from 'commander';
import { usageError } from './client.js';
import type { CliContext } from './context.js';
import { details, futureTime, parseId, parseList, table, when } from './output.js';

export interface Token {
  id: number;
  name: string;
  user_id: number | null;
  display: string;
  scopes: string[];
  status: string;
  expires_at: string | null;
  created_at: string;
  last_used_at: string | null;
}

const tokenTable = (rows: Token[]) =>
  table(
    rows,
    [
      { header: 'ID', get: (t) => t.id, right: true },
      { header: 'NAME', get: (t) => t.name },
      { header: 'OWNER', get: (t) => (t.user_id === null ? 'master' : t.user_id) },
      { header: 'TOKEN', get: (t) => t.display },
      { header: 'SCOPES', get: (t) => t.scopes.join(',') },
      { header: 'STATUS', get: (t) => t.status },
      { header: 'EXPIRES', get: (t) => when(t.expires_at) },
      { header: 'LAST USED', get: (t) => when(t.last_used_at) },
    ],
    'No tokens.',
  );

export function registerTokens(program: Command, ctx: CliContext): void {
  const tokens = program
    .command('tokens')
    .description('management tokens (mg-…) for automation: list, create, revoke (master key or console)');

  tokens
    .command('list')
    .description('list live management tokens (a user sees their own; an admin everyone’s)')
    .option('--user <id>', 'only this user’s tokens (admin)', parseId)
    .action(async (o: { user?: number }, cmd) => {
      const page = await ctx
        .api()
        .request<{ data: Token[] }>('GET', '/api/tokens', { query: { user_id: o.user } });
      ctx.out(cmd).result(page.data, () => tokenTable(page.data));
    });

  tokens
    .command('create')
    .description('create a management token; the secret is printed once')
    .argument('<name>')
    .requiredOption(
      '--scopes <list>',
      'comma-separated: keys:read, keys:write, logs:read, usage:read, users:read, users:write, channels:read, channels:write, audit:read',
      parseList,
    )
    .option('--expires <time>', 'expiry: ISO 8601, or from now like 90d', (v) => futureTime(v))
    .action(async (name: string, o: { scopes: string[]; expires?: string }, cmd) => {
      if (o.scopes.length === 0) throw usageError('--scopes: name at least one scope');
      const t = await ctx.api().request<Token & { token: string }>('POST', '/api/tokens', {
        body: { name, scopes: o.scopes, ...(o.expires ? { expires_at: o.expires } : {}) },
      });
      ctx.out(cmd).result(
        t,
        () =>
          `Created management token ${t.id} "${t.name}".\n\n${details([
            ['scopes', t.scopes.join(', ')],
            ['expires', t.expires_at ?? 'never'],
          ])}\n\nToken (shown only now; use it as MOLE_TOKEN):\n  ${t.token}\n`,
      );
    });

  tokens
    .command('revoke')
    .description('revoke a management token at once')
    .argument('<id>', 'token id', parseId)
    .action(async (id: number, _o, cmd) => {
      const t = await ctx.api().request<Token>('DELETE', `/api/tokens/${id}`);
      ctx.out(cmd).result(t, () => `Revoked management token ${t.id} "${t.name}" (${t.display}).`);
    });
}
