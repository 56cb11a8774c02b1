// Versioned migrations, written once for both dialects. Applied at start, in order, and
// recorded by Kysely's migrator in kysely_migration.
import {
  Migrator,
  sql,
  type ColumnDefinitionBuilder,
  type CreateTableBuilder,
  type Kysely,
  type Migration,
  type MigrationProvider,
} from 'kysely';
import type { Dialect } from './index.js';
import { DAY_MS, dayStart, ensureDayPartitionsIn } from './partitions.js';

/** Day partitions of `logs` made ahead of the current day (PostgreSQL), here and by the periodic job. */
export const LOG_PARTITION_DAYS_AHEAD = 3;

export function migrations(dialect: Dialect): Record<string, Migration> {
  // The only difference between the dialects: how an auto-increment key is spelt.
  const idType = dialect === 'postgres' ? 'bigserial' : 'integer';
  const id = (c: ColumnDefinitionBuilder) =>
    dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement();
  const big = 'bigint';
  /** ALTER TABLE … ADD COLUMN … NOT NULL DEFAULT …: how later migrations add a flag or a counter. */
  const addWithDefault = (
    db: Kysely<unknown>,
    table: string,
    column: string,
    type: 'integer' | 'text' | typeof big,
    value: number | string,
  ) =>
    db.schema
      .alterTable(table)
      .addColumn(column, type, (c) => c.notNull().defaultTo(value))
      .execute();
  /** What a usage rollup row (usage_daily, usage_hourly) holds after its period: the sums of its log rows. */
  const rollupColumns = (t: CreateTableBuilder<string, string>) =>
    t
      .addColumn('user_id', big, (c) => c.notNull())
      .addColumn('key_id', big, (c) => c.notNull())
      .addColumn('model', 'text', (c) => c.notNull())
      .addColumn('requests', big, (c) => c.notNull())
      .addColumn('prompt_tokens', big, (c) => c.notNull())
      .addColumn('cached_tokens', big, (c) => c.notNull())
      .addColumn('completion_tokens', big, (c) => c.notNull())
      .addColumn('cost_nano', big, (c) => c.notNull());

  return {
    '0001_initial': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('meta')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .execute();

        await db.schema
          .createTable('users')
          .addColumn('id', idType, id)
          .addColumn('username', 'text', (c) => c.notNull())
          .addColumn('password_hash', 'text', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('group_name', 'text', (c) => c.notNull())
          .addColumn('balance_nano', big, (c) => c.notNull().defaultTo(0))
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('updated_at', big, (c) => c.notNull())
          .addColumn('deleted_at', big)
          .execute();
        await db.schema.createIndex('users_username').on('users').column('username').unique().execute();

        await db.schema
          .createTable('sessions')
          .addColumn('token_hash', 'text', (c) => c.primaryKey())
          .addColumn('user_id', big, (c) => c.notNull())
          .addColumn('csrf_token', 'text', (c) => c.notNull())
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('expires_at', big, (c) => c.notNull())
          .execute();
        await db.schema.createIndex('sessions_user').on('sessions').column('user_id').execute();

        await db.schema
          .createTable('api_keys')
          .addColumn('id', idType, id)
          .addColumn('user_id', big, (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('key_hash', 'text', (c) => c.notNull())
          .addColumn('display', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('models', 'text')
          .addColumn('allowed_ips', 'text')
          .addColumn('quota_nano', big)
          .addColumn('used_nano', big, (c) => c.notNull().defaultTo(0))
          .addColumn('group_name', 'text')
          .addColumn('rpm_limit', 'integer')
          .addColumn('expires_at', big)
          .addColumn('prev_key_hash', 'text')
          .addColumn('prev_key_expires_at', big)
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('updated_at', big, (c) => c.notNull())
          .addColumn('last_used_at', big)
          .addColumn('last_used_ip', 'text')
          .addColumn('deleted_at', big)
          .execute();
        await db.schema.createIndex('api_keys_hash').on('api_keys').column('key_hash').unique().execute();
        await db.schema.createIndex('api_keys_prev_hash').on('api_keys').column('prev_key_hash').execute();
        await db.schema.createIndex('api_keys_user').on('api_keys').columns(['user_id', 'id']).execute();

        await db.schema
          .createTable('audit_log')
          .addColumn('id', idType, id)
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('actor', 'text', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('key_id', big)
          .addColumn('user_id', big)
          .addColumn('ip', 'text')
          .addColumn('changes', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('audit_key').on('audit_log').columns(['key_id', 'id']).execute();
        await db.schema.createIndex('audit_user').on('audit_log').columns(['user_id', 'id']).execute();

        await db.schema
          .createTable('groups')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('multiplier_ppm', big, (c) => c.notNull())
          .addColumn('updated_at', big, (c) => c.notNull())
          .execute();

        await db.schema
          .createTable('prices')
          .addColumn('model', 'text', (c) => c.primaryKey())
          .addColumn('input_nano_per_m', big, (c) => c.notNull())
          .addColumn('output_nano_per_m', big, (c) => c.notNull())
          .addColumn('cached_input_nano_per_m', big)
          .addColumn('updated_at', big, (c) => c.notNull())
          .execute();

        await db.schema
          .createTable('channels')
          .addColumn('id', idType, id)
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('base_url', 'text', (c) => c.notNull())
          .addColumn('api_key_enc', 'text', (c) => c.notNull())
          .addColumn('models', 'text', (c) => c.notNull())
          .addColumn('model_map', 'text')
          .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('weight', 'integer', (c) => c.notNull().defaultTo(1))
          .addColumn('groups', 'text')
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('disabled_reason', 'text')
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('updated_at', big, (c) => c.notNull())
          .addColumn('deleted_at', big)
          .execute();

        await db.schema
          .createTable('logs')
          .addColumn('id', idType, id)
          .addColumn('request_id', 'text', (c) => c.notNull())
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('user_id', big, (c) => c.notNull())
          .addColumn('key_id', big, (c) => c.notNull())
          .addColumn('key_name', 'text', (c) => c.notNull())
          .addColumn('model', 'text')
          .addColumn('upstream_model', 'text')
          .addColumn('channel_id', big)
          .addColumn('endpoint', 'text', (c) => c.notNull())
          .addColumn('stream', 'integer', (c) => c.notNull())
          .addColumn('status', 'integer', (c) => c.notNull())
          .addColumn('error_code', 'text')
          .addColumn('prompt_tokens', big, (c) => c.notNull())
          .addColumn('cached_tokens', big, (c) => c.notNull())
          .addColumn('completion_tokens', big, (c) => c.notNull())
          .addColumn('cost_nano', big, (c) => c.notNull())
          .addColumn('latency_ms', big, (c) => c.notNull())
          .addColumn('ttft_ms', big)
          .addColumn('ip', 'text')
          .addColumn('estimated', 'integer', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('logs_key').on('logs').columns(['key_id', 'id']).execute();
        await db.schema.createIndex('logs_user').on('logs').columns(['user_id', 'id']).execute();
        await db.schema.createIndex('logs_time').on('logs').columns(['created_at', 'id']).execute();
        await db.schema.createIndex('logs_model').on('logs').columns(['model', 'id']).execute();

        await db.schema
          .createTable('usage_daily')
          .addColumn('day', 'text', (c) => c.notNull())
          .$call(rollupColumns)
          .addPrimaryKeyConstraint('usage_daily_pk', ['day', 'user_id', 'key_id', 'model'])
          .execute();
        await db.schema
          .createIndex('usage_daily_user')
          .on('usage_daily')
          .columns(['user_id', 'day'])
          .execute();
        await db.schema.createIndex('usage_daily_key').on('usage_daily').columns(['key_id', 'day']).execute();
      },
    },
    '0002_admin_lock': {
      // A key an admin switched off stays off until an admin switches it on again.
      async up(db: Kysely<unknown>) {
        await addWithDefault(db, 'api_keys', 'admin_locked', 'integer', 0);
      },
    },
    '0003_key_group_by_admin': {
      // A key's own group counts only when an admin granted it; one its owner pinned follows
      // the owner. Existing pins that differ from their owner's group (only an admin could set
      // those, or the owner was moved since) and pins on admins' keys are kept as grants.
      async up(db: Kysely<unknown>) {
        await addWithDefault(db, 'api_keys', 'group_by_admin', 'integer', 0);
        await sql`UPDATE api_keys SET group_by_admin = 1 WHERE group_name IS NOT NULL AND EXISTS (
          SELECT 1 FROM users WHERE users.id = api_keys.user_id
            AND (users.role = 'admin' OR users.group_name <> api_keys.group_name))`.execute(db);
      },
    },
    '0004_logs_attempts_cache_write': {
      // Multi-protocol relaying: every upstream try on the log row, the ingress protocol,
      // prompt-cache writes and reasoning tokens; a price for prompt-cache writes.
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('logs').addColumn('attempts', 'text').execute();
        await addWithDefault(db, 'logs', 'protocol', 'text', 'openai');
        await addWithDefault(db, 'logs', 'cache_write_tokens', big, 0);
        await addWithDefault(db, 'logs', 'reasoning_tokens', big, 0);
        await db.schema.alterTable('prices').addColumn('cache_write_nano_per_m', big).execute();
      },
    },
    '0005_channel_responses': {
      // An OpenAI-compatible channel may lack the Responses API: then Responses requests are translated.
      async up(db: Kysely<unknown>) {
        await addWithDefault(db, 'channels', 'responses', 'integer', 1);
      },
    },
    '0006_logs_request_id_unique': {
      // One row per request: replaying the usage journal after a crash skips rows already
      // written. Should two rows ever share an id, later ones get theirs suffixed first.
      async up(db: Kysely<unknown>) {
        await sql`UPDATE logs SET request_id = request_id || '#' || CAST(id AS TEXT)
          WHERE id NOT IN (SELECT MIN(id) FROM logs GROUP BY request_id)`.execute(db);
        await db.schema.createIndex('logs_request_id').on('logs').column('request_id').unique().execute();
      },
    },
    '0007_import_new_api': {
      // `mole import new-api`: keys carried over from new-api / one-api keep their own secret
      // (no checksum), so they are marked; keys, users and channels remember which source row
      // they came from, so re-running the import skips them (a rotated key too). Passwords may be bcrypt hashes
      // ("$2a$…") until their first sign-in re-hashes them with scrypt.
      async up(db: Kysely<unknown>) {
        await addWithDefault(db, 'api_keys', 'imported', 'integer', 0);
        await db.schema.alterTable('api_keys').addColumn('import_source', 'text').execute();
        await db.schema.alterTable('users').addColumn('import_source', 'text').execute();
        await db.schema.alterTable('channels').addColumn('import_source', 'text').execute();
        await db.schema.createIndex('users_import_source').on('users').column('import_source').execute();
        await db.schema.createIndex('channels_import_source').on('channels').column('import_source');
      },
    },
    '0008_logs_errors_index': {
      // `GET /api/logs?status=error`, newest first: a partial index over the error rows only
      // (a few percent of the table), in id order, instead of a scan of every row. Queries
      // must spell the condition as the literal `status >= 400` for the planner to use it.
      async up(db: Kysely<unknown>) {
        await db.schema
          .createIndex('logs_errors')
          .on('logs')
          .column('id')
          .where(sql.ref('status'), '>=', sql.lit(400))
          .execute();
      },
    },
    '0009_limits': {
      // Rate, token and concurrency limits on keys, accounts and groups (a group's are the
      // defaults and ceilings of its keys and accounts), plus what a group may use at all and
      // how long its keys may live. Null everywhere = no limit.
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('api_keys').addColumn('tpm_limit', 'integer').execute();
        await db.schema.alterTable('api_keys').addColumn('max_concurrency', 'integer').execute();
        for (const table of ['users', 'groups'])
          for (const column of ['rpm_limit', 'tpm_limit', 'max_concurrency'])
            await db.schema.alterTable(table).addColumn(column, 'integer').execute();
        await db.schema.alterTable('groups').addColumn('models', 'text').execute();
        await db.schema.alterTable('groups').addColumn('max_key_lifetime_days', 'integer').execute();
      },
    },
    '0010_budgets': {
      // Periodic budgets (nano-USD per daily / weekly / monthly period) on keys, accounts and
      // as a group default, and the spend shares that raise `budget.threshold` events (JSON
      // list; null = the default [0.8, 1]). Spend per period is not stored here: it is the
      // sum of usage_daily since the period began (budgets/ reads it through usage/).
      async up(db: Kysely<unknown>) {
        for (const table of ['api_keys', 'users', 'groups']) {
          await db.schema.alterTable(table).addColumn('budget_nano', big).execute();
          await db.schema.alterTable(table).addColumn('budget_period', 'text').execute();
        }
        await db.schema.alterTable('api_keys').addColumn('alert_thresholds', 'text').execute();
        await db.schema.alterTable('users').addColumn('alert_thresholds', 'text').execute();
      },
    },
    '0011_events': {
      // Notifications (src/events/): one row per event, `dedupe_key` makes an occurrence
      // unique; the same row is its webhook outbox entry (`next_attempt_at` set while a
      // delivery is due, a lease so that one instance at a time delivers it).
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('events')
          .addColumn('id', idType, id)
          .addColumn('uid', 'text', (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('user_id', big)
          .addColumn('key_id', big)
          .addColumn('dedupe_key', 'text')
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_attempt_at', big)
          .addColumn('delivered_at', big)
          .addColumn('last_error', 'text')
          .addColumn('lease_owner', 'text')
          .addColumn('lease_until', big)
          .execute();
        await db.schema.createIndex('events_uid').on('events').column('uid').unique().execute();
        await db.schema.createIndex('events_dedupe').on('events').column('dedupe_key').unique().execute();
        await db.schema.createIndex('events_user').on('events').columns(['user_id', 'id']).execute();
        await db.schema.createIndex('events_key').on('events').columns(['key_id', 'id']).execute();
        await db.schema.createIndex('events_type').on('events').columns(['type', 'id']).execute();
        await db.schema.createIndex('events_due').on('events').column('next_attempt_at').execute();
      },
    },
    '0012_browser_keys': {
      // Browser keys: a key's allowed browser origins (JSON list; null = none), ephemeral keys
      // minted by a key for a browser or an app (they bill to it: their calls are logged with
      // the parent's key_id and their own ephemeral_id), and what each one spent against its
      // max_cost. Rows are purged a while after they expire.
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('api_keys').addColumn('allowed_origins', 'text').execute();
        await db.schema
          .createTable('ephemeral_keys')
          .addColumn('id', idType, id)
          .addColumn('parent_id', big, (c) => c.notNull())
          .addColumn('user_id', big, (c) => c.notNull())
          .addColumn('key_hash', 'text', (c) => c.notNull())
          .addColumn('parent_key_hash', 'text', (c) => c.notNull())
          .addColumn('display', 'text', (c) => c.notNull())
          .addColumn('models', 'text')
          .addColumn('allowed_origins', 'text')
          .addColumn('max_cost_nano', big)
          .addColumn('used_nano', big, (c) => c.notNull().defaultTo(0))
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('expires_at', big, (c) => c.notNull())
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('revoked_at', big)
          .execute();
        await db.schema
          .createIndex('ephemeral_keys_hash')
          .on('ephemeral_keys')
          .column('key_hash')
          .unique()
          .execute();
        await db.schema
          .createIndex('ephemeral_keys_parent')
          .on('ephemeral_keys')
          .columns(['parent_id', 'id'])
          .execute();
        await db.schema
          .createIndex('ephemeral_keys_expiry')
          .on('ephemeral_keys')
          .column('expires_at')
          .execute();
        await db.schema.alterTable('logs').addColumn('ephemeral_id', big).execute();
      },
    },
    '0013_leaks': {
      // The anomaly guard (security/guard.ts): a key's own thresholds, and a group's for all its
      // keys, as JSON text {max_ips_per_hour?, max_spend_per_hour_nano?, action}; null = none.
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('api_keys').addColumn('guard', 'text').execute();
        await db.schema.alterTable('groups').addColumn('guard', 'text').execute();
      },
    },
    '0014_management_tokens': {
      // Management tokens (mg-…): only the SHA-256 of the secret is kept. `user_id` null = a
      // token the master key minted; `scopes` is a JSON list; revoked rows stay for the audit trail.
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('management_tokens')
          .addColumn('id', idType, id)
          .addColumn('user_id', big)
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('token_hash', 'text', (c) => c.notNull())
          .addColumn('display', 'text', (c) => c.notNull())
          .addColumn('scopes', 'text', (c) => c.notNull())
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('expires_at', big)
          .addColumn('last_used_at', big)
          .addColumn('revoked_at', big)
          .execute();
        await db.schema
          .createIndex('management_tokens_hash')
          .on('management_tokens')
          .column('token_hash')
          .unique()
          .execute();
        await db.schema
          .createIndex('management_tokens_user')
          .on('management_tokens')
          .column('user_id')
          .execute();
        // When a key's secret was last rotated (null = never): the console's key age and rotate hint.
        await db.schema.alterTable('api_keys').addColumn('rotated_at', big).execute();
      },
    },
    '0015_logs_partitions': {
      // PostgreSQL: `logs` becomes partitioned by UTC day on created_at, so old days drop in
      // O(1) (MOLE_LOG_RETENTION_DAYS) and time-bounded reads touch only their days. No row
      // is copied: the old table is attached whole as the partition `logs_before` (every
      // row it holds is before the end of its newest row's day, checked once by a scan),
      // ids keep their sequence. Unique keys of a partitioned table must hold created_at:
      // the primary key is (id, created_at) and replays are deduplicated on
      // (request_id, created_at) (a replayed row keeps its created_at). Day partitions
      // from today on and a DEFAULT partition (for any other day) are made here and kept
      // ahead by usage/retention.ts. SQLite keeps its one table.
      async up(db: Kysely<unknown>) {
        if (dialect !== 'postgres') return;
        await sql`LOCK TABLE logs IN ACCESS EXCLUSIVE MODE`.execute(db);
        const newest = await sql<{ max: string | null }>`SELECT max(created_at) AS max FROM logs`.execute(db);
        const max = newest.rows[0]?.max == null ? null : Number(newest.rows[0].max);
        await sql`ALTER TABLE logs RENAME TO logs_before`.execute(db);
        for (const ix of ['key', 'user', 'time', 'model', 'errors'])
          await sql`ALTER INDEX ${sql.id(`logs_${ix}`)} RENAME TO ${sql.id(`logs_before_${ix}`)}`.execute(db);
        // The old single-column unique keys go: the parent's (…, created_at) ones replace them.
        await sql`ALTER TABLE logs_before DROP CONSTRAINT logs_pkey`.execute(db);
        await sql`DROP INDEX logs_request_id`.execute(db);
        await sql`CREATE TABLE logs (LIKE logs_before INCLUDING DEFAULTS) PARTITION BY RANGE (created_at)`.execute(
          db,
        );
        await sql`ALTER SEQUENCE logs_id_seq OWNED BY logs.id`.execute(db);
        await sql`ALTER TABLE logs ADD CONSTRAINT logs_pkey PRIMARY KEY (id, created_at)`.execute(db);
        await sql`CREATE UNIQUE INDEX logs_request_id ON logs (request_id, created_at)`.execute(db);
        // The same indexes as before, by the same names: ATTACH adopts the old table's own.
        await sql`CREATE INDEX logs_key ON logs (key_id, id)`.execute(db);
        await sql`CREATE INDEX logs_user ON logs (user_id, id)`.execute(db);
        await sql`CREATE INDEX logs_time ON logs (created_at, id)`.execute(db);
        await sql`CREATE INDEX logs_model ON logs (model, id)`.execute(db);
        await sql`CREATE INDEX logs_errors ON logs (id) WHERE status >= 400`.execute(db);
        const now = Date.now();
        if (max === null) {
          await sql`DROP TABLE logs_before`.execute(db);
        } else {
          const end = dayStart(max) + DAY_MS;
          await sql`ALTER TABLE logs_before ADD CONSTRAINT logs_before_bound CHECK (created_at < ${sql.lit(end)})`.execute(
            db,
          );
          await sql`ALTER TABLE logs ATTACH PARTITION logs_before FOR VALUES FROM (MINVALUE) TO (${sql.lit(end)})`.execute(
            db,
          );
        }
        await ensureDayPartitionsIn(db, 'logs', 'created_at', now, LOG_PARTITION_DAYS_AHEAD);
      },
    },
    '0016_usage_hourly': {
      // Per-hour rollup beside usage_daily, written in the same transaction as the log rows
      // (usage/writer.ts): a range that is not whole days is answered from the daily rows for
      // the whole days, the hourly rows for the whole hours at its edges, and the logs only
      // for the under-an-hour ends. `hour` is the epoch ms the UTC hour starts at.
      async up(db: Kysely<unknown>) {
        // Idempotent, so a start that dies half-way (SQLite has no transactional DDL here)
        // simply runs it again.
        await db.schema
          .createTable('usage_hourly')
          .ifNotExists()
          .addColumn('hour', big, (c) => c.notNull())
          .$call(rollupColumns)
          .addPrimaryKeyConstraint('usage_hourly_pk', ['hour', 'user_id', 'key_id', 'model'])
          .execute();
        for (const by of ['user', 'key'] as const)
          await db.schema
            .createIndex(`usage_hourly_${by}`)
            .ifNotExists()
            .on('usage_hourly')
            .columns([`${by}_id`, 'hour'])
            .execute();
        // Backfill from the logs already stored, so every range reads the same before and
        // after the upgrade (one pass over the logs, once). Grouped exactly as the writer does.
        await sql`DELETE FROM usage_hourly`.execute(db);
        await sql`INSERT INTO usage_hourly
            (hour, user_id, key_id, model, requests, prompt_tokens, cached_tokens, completion_tokens, cost_nano)
          SELECT created_at - created_at % 3600000, user_id, key_id, coalesce(model, ''), count(*),
            sum(prompt_tokens), sum(cached_tokens), sum(completion_tokens), sum(cost_nano)
          FROM logs
          GROUP BY created_at - created_at % 3600000, user_id, key_id, coalesce(model, '')`.execute(db);
      },
    },
    '0017_price_cache_write_1h': {
      // Anthropic bills a prompt-cache write kept for an hour at its own price (2× input).
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('prices').addColumn('cache_write_1h_nano_per_m', big).execute();
      },
    },
    '0018_web_searches': {
      // Providers bill each search their server-side search tool runs: a price per 1,000
      // searches, and the count on the log row that explains its cost.
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('prices').addColumn('web_search_nano_per_k', big).execute();
        await addWithDefault(db, 'logs', 'web_searches', 'integer', 0);
      },
    },
    '0019_priority_tier': {
      // OpenAI bills priority processing above its standard price: a multiplier per model, and
      // the tier the upstream served on the log row that explains its cost.
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('prices').addColumn('priority_ppm', big).execute();
        await db.schema.alterTable('logs').addColumn('service_tier', 'text').execute();
      },
    },
    '0020_logs_cache_write_1h': {
      // The hour-long share of a row's cache writes, billed at its own price (0017): the row
      // explains its cost without it otherwise.
      async up(db: Kysely<unknown>) {
        await addWithDefault(db, 'logs', 'cache_write_1h_tokens', big, 0);
      },
    },
  };
}

/**
 * Migrations a newer release applied to this database, which this one does not know: names
 * after its own last. Every migration keeps the schema usable by the release before it (it
 * adds; a column or table goes only in a later release than the one that stops using it), so
 * during a rolling upgrade an instance of the previous release may still start here.
 */
async function newerThanOurs<DB>(db: Kysely<DB>, known: string[], pgSchema?: string): Promise<string[]> {
  const last = [...known].sort().at(-1) ?? '';
  const table = pgSchema ? sql`${sql.id(pgSchema)}.kysely_migration` : sql`kysely_migration`;
  try {
    const { rows } = await sql<{ name: string }>`SELECT name FROM ${table}`.execute(db);
    return rows
      .map((r) => r.name)
      .filter((n) => n > last && !known.includes(n))
      .sort();
  } catch {
    return []; // no migration has run yet
  }
}

/**
 * Applies every migration not applied yet; `upTo` stops after the one so named (tests of a
 * migration). Answers the names of migrations a newer release already applied (see
 * `newerThanOurs`): they count as done, and the caller says so.
 */
export async function migrateToLatest<DB>(
  db: Kysely<DB>,
  dialect: Dialect,
  pgSchema?: string,
  upTo?: string,
): Promise<string[]> {
  const all = migrations(dialect);
  const newer = await newerThanOurs(db, Object.keys(all), pgSchema);
  for (const name of newer) all[name] = { up: async () => {} };
  const provider: MigrationProvider = { getMigrations: async () => all };
  const migrator = new Migrator({ db, provider, ...(pgSchema ? { migrationTableSchema: pgSchema } : {}) });
  const { error, results } = upTo ? await migrator.migrateTo(upTo) : await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(
      `database migration failed${failed ? ` at ${failed.migrationName}` : ''}: ${String((error as Error).message ?? error)}`,
    );
  }
  return newer;
}
