// `mole import new-api --from <sqlite file | mysql://… | postgres://…> [--dry-run]` (contract
// §10). Unlike the other command groups it does not talk to a gateway's API: it runs with the
// server's own environment (MOLE_DATA_DIR / DATABASE_URL, MOLE_SECRET, REDIS_URL) and writes
// its database directly, through the domains' import functions (src/import/new-api.ts). With
// REDIS_URL, running gateways hear of the change and reload; without it, restart them.
// `--dry-run` writes nothing (contract §10): it neither creates nor migrates the database, nor
// generates a secret into the data dir (src/import/dry-run-target.ts says what it reads).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../config.js';
import { resolveSecret, SecretBox } from '../channels/secretbox.js';
import type { Storage } from '../db/index.js';
import type { ImportReport } from '../import/new-api.js';
import { databaseId } from '../accounts/master-key.js';
import { InvalidationBus, type Invalidation } from '../shared/bus.js';
import { createRedis, type RedisClient } from '../shared/redis.js';
import { CliError, usageError } from './client.js';
import type { CliContext } from './context.js';
import { table } from './output.js';

export function registerImport(program: Command, ctx: CliContext): void {
  const group = program
    .command('import')
    .description("move in from another gateway's database (writes this server's database directly)");
  group
    .command('new-api')
    .description(
      'import users, keys, channels, prices and groups from a new-api or one-api database.\n' +
        "Run it with the server's own environment (MOLE_DATA_DIR or DATABASE_URL, MOLE_SECRET).\n" +
        'Imported keys keep working unchanged; re-running skips what was imported before.',
    )
    .requiredOption(
      '--from <source>',
      'new-api database: a SQLite file, mysql://user:pass@host/db or postgres://…',
    )
    .option('--dry-run', 'read and report what would be imported; write nothing')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  MOLE_DATA_DIR=/var/lib/moleapi mole import new-api --from /srv/new-api/one-api.db --dry-run\n' +
        '  DATABASE_URL=postgres://… MOLE_SECRET=… mole import new-api --from mysql://root:pw@127.0.0.1/new-api',
    )
    .action(async (opts: { from: string; dryRun?: boolean }, cmd: Command) => {
      const out = ctx.out(cmd);
      if (!opts.from.trim()) throw usageError('--from: give a SQLite file, a mysql:// or a postgres:// URL');
      let config: ReturnType<typeof loadConfig>;
      try {
        config = loadConfig(ctx.env);
      } catch (err) {
        if (err instanceof ConfigError) throw usageError(err.message.replace(/\s+/g, ' '));
        throw err;
      }
      const dryRun = Boolean(opts.dryRun);
      let box: SecretBox;
      try {
        // A dry run seals nothing, so it needs no secret of its own: one is not generated into
        // the data dir for it (MOLE_SECRET is still required with DATABASE_URL, as for real).
        box = new SecretBox(
          dryRun && !config.secret && !config.databaseUrl && !hasSecretFile(config.dataDir)
            ? randomBytes(32).toString('base64')
            : resolveSecret(config),
        );
      } catch (err) {
        throw usageError((err as Error).message);
      }
      // The importer's code (Kysely, better-sqlite3, mysql2, pg) loads only when it runs: every
      // other `mole` command paid ~0.2 s of CPU to load it at start.
      const [{ openStorage }, { openDryRunTarget }, { importNewApi }, { openSource, redactUrl }] =
        await Promise.all([
          import('../db/open.js'),
          import('../import/dry-run-target.js'),
          import('../import/new-api.js'),
          import('../import/source.js'),
        ]);
      const source = await openSource(opts.from).catch((err: unknown) => {
        throw new CliError(`cannot open ${redactUrl(opts.from)}: ${(err as Error).message}`);
      });
      let storage: Pick<Storage, 'db' | 'close'> | null = null;
      let redis: RedisClient | null = null;
      try {
        const where = { databaseUrl: config.databaseUrl, dataDir: config.dataDir };
        // A dry run writes nothing (contract §10): not even the database file or its
        // migrations. It reads the database as it is, or an empty / migrated stand-in
        // (src/import/dry-run-target.ts).
        storage = dryRun
          ? await openDryRunTarget(where).catch((err: unknown) => {
              throw new CliError(`cannot read the target database: ${(err as Error).message}`);
            })
          : await openStorage(where);
        const bus = new InvalidationBus();
        const announced: Invalidation[] = [];
        const report = await importNewApi({
          source,
          db: storage.db,
          box,
          dryRun,
          publish: (msg) => announced.push(msg),
          progress: (line) => ctx.info(line),
        });
        if (config.redisUrl && announced.length > 0) {
          redis = createRedis(config.redisUrl);
          await redis.connect();
          bus.publishTo(redis, `mole:${await databaseId(storage.db)}`);
          for (const msg of announced) await bus.publishAndWait(msg);
        }
        out.result(report, () => render(report, Boolean(config.redisUrl)));
      } finally {
        redis?.destroy();
        await source.close().catch(() => {});
        await storage?.close();
      }
    });
}

/** The secret resolveSecret() keeps in the data dir (SQLite mode), when one was made before. */
const hasSecretFile = (dataDir: string) => fs.existsSync(path.join(dataDir, 'secret'));

function render(r: ImportReport, shared: boolean): string {
  const rows = r.tables.map((t) => ({
    ...t,
    why: Object.entries(t.reasons)
      .map(([why, n]) => `${n} ${why}`)
      .join('; '),
  }));
  const lines = [
    r.dryRun ? 'Dry run: nothing was written. Would import:' : 'Imported:',
    table(rows, [
      { header: 'table', get: (t) => t.table },
      { header: r.dryRun ? 'would import' : 'imported', get: (t) => t.imported, right: true },
      { header: 'skipped', get: (t) => t.skipped, right: true },
      { header: 'why skipped', get: (t) => t.why },
    ]),
    `QuotaPerUnit: ${r.quotaPerUnit} quota units per USD`,
    ...r.notes.map((n) => `note: ${n}`),
  ];
  if (!r.dryRun && !shared && r.tables.some((t) => t.imported > 0))
    lines.push('Restart running gateways so they load the imported keys, channels and prices.');
  return lines.join('\n');
}
