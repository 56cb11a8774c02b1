// mole keys list | create | disable | enable | rotate | delete — over /api/keys.
import type { Command } from 'commander';
import { CliError, listAll, usageError } from './client.js';
import type { CliContext } from './context.js';
import {
  details,
  futureTime,
  parseId,
  parseIntArg,
  parseList,
  parseUsd,
  table,
  usd,
  when,
} from './output.js';

/** The key object the API answers (contract §2). */
export interface Key {
  id: number;
  name: string;
  user_id: number;
  status: string;
  display: string;
  models: string[] | null;
  allowed_ips: string[] | null;
  quota: number | null;
  used: number;
  remaining: number | null;
  group: string | null;
  rpm: number | null;
  tpm?: number | null;
  max_concurrency?: number | null;
  locked: boolean;
  expires_at: string | null;
  created_at: string;
  last_used_at: string | null;
  last_used_ip: string | null;
  /** The secret: only in create and rotate answers. */
  key?: string;
}

const keyTable = (keys: Key[]) =>
  table(
    keys,
    [
      { header: 'ID', get: (k) => k.id, right: true },
      { header: 'NAME', get: (k) => k.name },
      { header: 'USER', get: (k) => k.user_id, right: true },
      { header: 'STATUS', get: (k) => k.status + (k.locked ? ' (locked)' : '') },
      { header: 'KEY', get: (k) => k.display },
      { header: 'USED', get: (k) => usd(k.used), right: true },
      { header: 'QUOTA', get: (k) => (k.quota === null ? 'unlimited' : usd(k.quota)), right: true },
      { header: 'GROUP', get: (k) => k.group },
      { header: 'EXPIRES', get: (k) => when(k.expires_at) },
      { header: 'LAST USED', get: (k) => when(k.last_used_at) },
    ],
    'No keys.',
  );

const keyDetails = (k: Key) =>
  details([
    ['id', k.id],
    ['name', k.name],
    ['user', k.user_id],
    ['status', k.status + (k.locked ? ' (locked by an admin)' : '')],
    ['key', k.display],
    ['models', k.models === null ? 'all the group allows' : k.models.join(', ')],
    ['allowed IPs', k.allowed_ips === null ? 'any' : k.allowed_ips.join(', ') || 'none'],
    ['quota', k.quota === null ? 'unlimited' : usd(k.quota)],
    ['used', usd(k.used)],
    ['group', k.group ?? "the owner's"],
    ['rpm', k.rpm ?? 'unlimited'],
    ['tpm', k.tpm ?? 'unlimited'],
    ['max concurrency', k.max_concurrency ?? 'unlimited'],
    ['expires', k.expires_at ?? 'never'],
    ['created', k.created_at],
    ['last used', k.last_used_at ? `${k.last_used_at} from ${k.last_used_ip ?? '?'}` : 'never'],
  ]);

/** The secret, shown this once, set apart so it is easy to copy. */
const withSecret = (title: string, k: Key) =>
  `${title}\n\n${keyDetails(k)}\n\nSecret (shown only now; store it safely):\n  ${k.key}\n`;

export function registerKeys(program: Command, ctx: CliContext): void {
  const keys = program.command('keys').description('list, create, switch off/on, rotate and delete API keys');

  keys
    .command('list')
    .description('list keys (an admin sees every key; a user their own)')
    .option('--user <id>', 'only this user’s keys', parseId)
    .option('--status <status>', 'active, disabled, expired or exhausted')
    .option('-q, --query <text>', 'name contains')
    .option('--group <name>', 'only keys in this group')
    .option('--limit <n>', 'at most this many keys', parseIntArg, 1000)
    .action(
      async (o: { user?: number; status?: string; query?: string; group?: string; limit: number }, cmd) => {
        if (o.status && !['active', 'disabled', 'expired', 'exhausted'].includes(o.status))
          throw usageError('--status must be active, disabled, expired or exhausted');
        if (o.limit < 1) throw usageError('--limit must be at least 1');
        const rows = await listAll<Key>(
          ctx.api(),
          '/api/keys',
          { user_id: o.user, status: o.status, q: o.query, group: o.group },
          o.limit,
        );
        ctx.out(cmd).result(rows, () => keyTable(rows));
      },
    );

  keys
    .command('create')
    .description('create a key; its secret is printed this once')
    .argument('<name>', 'what the key is for, e.g. dev-local, web-prod')
    .option('--user <id>', 'owner (admin; default: yourself)', parseId)
    .option('--models <list>', 'comma-separated models it may use (may end in *)', parseList)
    .option('--ips <list>', 'comma-separated IPs/CIDRs it may be used from', parseList)
    .option('--quota <usd>', 'lifetime spend cap, USD', parseUsd)
    .option('--expires <time>', 'expiry: ISO 8601, or from now like 30d', (v) => futureTime(v))
    .option('--group <name>', 'group whose models and prices apply')
    .option('--rpm <n>', 'requests per minute', parseIntArg)
    .option('--tpm <n>', 'tokens (input + output) per minute', parseIntArg)
    .option('--max-concurrency <n>', 'requests in flight at once', parseIntArg)
    .action(
      async (
        name: string,
        o: {
          user?: number;
          models?: string[];
          ips?: string[];
          quota?: number;
          expires?: string;
          group?: string;
          rpm?: number;
          tpm?: number;
          maxConcurrency?: number;
        },
        cmd,
      ) => {
        const k = await withOptionHint(
          ctx.api().request<Key>('POST', '/api/keys', {
            body: {
              name,
              ...(o.user !== undefined ? { user_id: o.user } : {}),
              ...(o.models ? { models: o.models } : {}),
              ...(o.ips ? { allowed_ips: o.ips } : {}),
              ...(o.quota !== undefined ? { quota: o.quota } : {}),
              ...(o.expires ? { expires_at: o.expires } : {}),
              ...(o.group ? { group: o.group } : {}),
              ...(o.rpm !== undefined ? { rpm: o.rpm } : {}),
              ...(o.tpm !== undefined ? { tpm: o.tpm } : {}),
              ...(o.maxConcurrency !== undefined ? { max_concurrency: o.maxConcurrency } : {}),
            },
          }),
        );
        ctx.out(cmd).result(k, () => withSecret(`Created key ${k.id} "${k.name}".`, k));
      },
    );

  for (const [verb, status, done] of [
    ['disable', 'disabled', 'Disabled'],
    ['enable', 'active', 'Enabled'],
  ] as const) {
    keys
      .command(verb)
      .description(verb === 'disable' ? 'switch a key off (it answers key_disabled)' : 'switch a key back on')
      .argument('<id>', 'key id', parseId)
      .action(async (id: number, _o, cmd) => {
        const k = await ctx.api().request<Key>('PATCH', `/api/keys/${id}`, { body: { status } });
        ctx.out(cmd).result(k, () => `${done} key ${k.id} "${k.name}" (${k.display}).`);
      });
  }

  keys
    .command('rotate')
    .description('give a key a new secret (printed this once); the old one stops after the grace period')
    .argument('<id>', 'key id', parseId)
    .option('--grace <seconds>', 'how long the old secret keeps working', parseIntArg, 0)
    .action(async (id: number, o: { grace: number }, cmd) => {
      if (o.grace < 0) throw usageError('--grace must be 0 or more seconds');
      const k = await ctx
        .api()
        .request<Key>('POST', `/api/keys/${id}/rotate`, { body: { grace_seconds: o.grace } });
      const old =
        o.grace > 0 ? `the old secret works for ${o.grace} more seconds` : 'the old secret no longer works';
      ctx.out(cmd).result(k, () => withSecret(`Rotated key ${k.id} "${k.name}"; ${old}.`, k));
    });

  keys
    .command('delete')
    .description('delete a key for good (its logs keep their attribution)')
    .argument('<id>', 'key id', parseId)
    .option('-y, --yes', 'do not ask for confirmation')
    .action(async (id: number, o: { yes?: boolean }, cmd) => {
      if (!o.yes) {
        const answer = await ctx.prompt(`Delete key ${id}? This cannot be undone. [y/N] `);
        if (answer === null) throw usageError('refusing to delete without --yes (stdin is not a terminal)');
        if (!/^y(es)?$/i.test(answer.trim())) throw new CliError('not deleted');
      }
      const k = await ctx.api().request<Key & { deleted: boolean }>('DELETE', `/api/keys/${id}`);
      ctx.out(cmd).result(k, () => `Deleted key ${k.id} "${k.name}" (${k.display}).`);
    });
}

/** The create options by the API field they set, to point at the option when a field is refused. */
const OPTION_OF: Record<string, string> = {
  user_id: '--user',
  models: '--models',
  allowed_ips: '--ips',
  quota: '--quota',
  expires_at: '--expires',
  group: '--group',
  rpm: '--rpm',
  tpm: '--tpm',
  max_concurrency: '--max-concurrency',
};

async function withOptionHint<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const field = err instanceof CliError ? err.param?.split('.')[0] : undefined;
    const option = field ? OPTION_OF[field] : undefined;
    if (err instanceof CliError && option)
      throw new CliError(`${err.message}; see ${option}`, err.exitCode, err.param);
    throw err;
  }
}
