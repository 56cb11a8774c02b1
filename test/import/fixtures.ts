// new-api / one-api databases for the importer's tests, built from their own table
// definitions: the DDL GORM's AutoMigrate produces for new-api's model/user.go, token.go,
// channel.go, ability.go and option.go (SQLite and MySQL dialects, as listed in
// ../shared/reference/new-api-schema.md), and one-api's older tables.
import { randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import SQLite from 'better-sqlite3';
import mysql from 'mysql2/promise';

// ---- new-api, SQLite dialect (GORM sqlite)
export const NEW_API_SQLITE = [
  "CREATE TABLE `users` (`id` integer PRIMARY KEY AUTOINCREMENT,`username` text UNIQUE,`password` text NOT NULL,`display_name` text,`role` int DEFAULT 1,`status` int DEFAULT 1,`email` text,`github_id` text,`discord_id` text,`oidc_id` text,`wechat_id` text,`telegram_id` text,`access_token` char(32),`quota` int DEFAULT 0,`used_quota` int DEFAULT 0,`request_count` int DEFAULT 0,`group` varchar(64) DEFAULT 'default',`aff_code` varchar(32),`aff_count` int DEFAULT 0,`aff_quota` int DEFAULT 0,`aff_history` int DEFAULT 0,`inviter_id` int,`deleted_at` datetime,`linux_do_id` text,`setting` text,`remark` varchar(255),`stripe_customer` varchar(64))",
  'CREATE INDEX `idx_users_deleted_at` ON `users`(`deleted_at`)',
  'CREATE UNIQUE INDEX `idx_users_access_token` ON `users`(`access_token`)',
  'CREATE UNIQUE INDEX `idx_users_aff_code` ON `users`(`aff_code`)',
  "CREATE TABLE `tokens` (`id` integer PRIMARY KEY AUTOINCREMENT,`user_id` integer,`key` varchar(128),`status` integer DEFAULT 1,`name` text,`created_time` integer,`accessed_time` integer,`expired_time` integer DEFAULT -1,`remain_quota` integer DEFAULT 0,`unlimited_quota` numeric,`model_limits_enabled` numeric,`model_limits` text,`allow_ips` text DEFAULT '',`used_quota` integer DEFAULT 0,`group` text DEFAULT '',`cross_group_retry` numeric,`deleted_at` datetime)",
  'CREATE UNIQUE INDEX `idx_tokens_key` ON `tokens`(`key`)',
  'CREATE INDEX `idx_tokens_user_id` ON `tokens`(`user_id`)',
  'CREATE INDEX `idx_tokens_name` ON `tokens`(`name`)',
  'CREATE INDEX `idx_tokens_deleted_at` ON `tokens`(`deleted_at`)',
  "CREATE TABLE `channels` (`id` integer PRIMARY KEY AUTOINCREMENT,`type` integer DEFAULT 0,`key` text NOT NULL,`openai_organization` text,`test_model` text,`status` integer DEFAULT 1,`name` text,`weight` integer DEFAULT 0,`created_time` integer,`test_time` integer,`response_time` integer,`base_url` text DEFAULT '',`other` text,`balance` real,`balance_updated_time` integer,`models` text,`group` varchar(64) DEFAULT 'default',`used_quota` integer DEFAULT 0,`model_mapping` text,`status_code_mapping` varchar(1024) DEFAULT '',`priority` integer DEFAULT 0,`auto_ban` integer DEFAULT 1,`other_info` text,`tag` text,`setting` text,`param_override` text,`header_override` text,`remark` varchar(255),`channel_info` json,`settings` text)",
  'CREATE INDEX `idx_channels_name` ON `channels`(`name`)',
  'CREATE INDEX `idx_channels_tag` ON `channels`(`tag`)',
  'CREATE TABLE `abilities` (`group` varchar(64),`model` varchar(255),`channel_id` integer,`enabled` numeric,`priority` integer DEFAULT 0,`weight` integer DEFAULT 0,`tag` text,PRIMARY KEY (`group`,`model`,`channel_id`))',
  'CREATE TABLE `options` (`key` text,`value` text,PRIMARY KEY (`key`))',
];

// ---- new-api, MySQL dialect (GORM mysql)
export const NEW_API_MYSQL = [
  "CREATE TABLE `users` (`id` bigint AUTO_INCREMENT,`username` varchar(191) UNIQUE,`password` longtext NOT NULL,`display_name` varchar(191),`role` int DEFAULT 1,`status` int DEFAULT 1,`email` varchar(191),`github_id` varchar(191),`discord_id` varchar(191),`oidc_id` varchar(191),`wechat_id` varchar(191),`telegram_id` varchar(191),`access_token` char(32),`quota` bigint DEFAULT 0,`used_quota` bigint DEFAULT 0,`request_count` int DEFAULT 0,`group` varchar(64) DEFAULT 'default',`aff_code` varchar(32),`aff_count` int DEFAULT 0,`aff_quota` int DEFAULT 0,`aff_history` int DEFAULT 0,`inviter_id` int,`deleted_at` datetime(3) NULL,`linux_do_id` varchar(191),`setting` text,`remark` varchar(255),`stripe_customer` varchar(64),PRIMARY KEY (`id`),INDEX `idx_users_deleted_at` (`deleted_at`),UNIQUE INDEX `idx_users_access_token` (`access_token`),UNIQUE INDEX `idx_users_aff_code` (`aff_code`))",
  "CREATE TABLE `tokens` (`id` bigint AUTO_INCREMENT,`user_id` bigint,`key` varchar(128),`status` bigint DEFAULT 1,`name` varchar(191),`created_time` bigint,`accessed_time` bigint,`expired_time` bigint DEFAULT -1,`remain_quota` bigint DEFAULT 0,`unlimited_quota` boolean,`model_limits_enabled` boolean,`model_limits` text,`allow_ips` varchar(191) DEFAULT '',`used_quota` bigint DEFAULT 0,`group` varchar(191) DEFAULT '',`cross_group_retry` boolean,`deleted_at` datetime(3) NULL,PRIMARY KEY (`id`),UNIQUE INDEX `idx_tokens_key` (`key`),INDEX `idx_tokens_user_id` (`user_id`),INDEX `idx_tokens_name` (`name`),INDEX `idx_tokens_deleted_at` (`deleted_at`))",
  "CREATE TABLE `channels` (`id` bigint AUTO_INCREMENT,`type` bigint DEFAULT 0,`key` longtext NOT NULL,`openai_organization` longtext,`test_model` longtext,`status` bigint DEFAULT 1,`name` varchar(191),`weight` bigint unsigned DEFAULT 0,`created_time` bigint,`test_time` bigint,`response_time` bigint,`base_url` varchar(191) DEFAULT '',`other` longtext,`balance` double,`balance_updated_time` bigint,`models` longtext,`group` varchar(64) DEFAULT 'default',`used_quota` bigint DEFAULT 0,`model_mapping` text,`status_code_mapping` varchar(1024) DEFAULT '',`priority` bigint DEFAULT 0,`auto_ban` bigint DEFAULT 1,`other_info` longtext,`tag` varchar(191),`setting` text,`param_override` text,`header_override` text,`remark` varchar(255),`channel_info` json,`settings` longtext,PRIMARY KEY (`id`),INDEX `idx_channels_name` (`name`),INDEX `idx_channels_tag` (`tag`))",
  'CREATE TABLE `abilities` (`group` varchar(64),`model` varchar(255),`channel_id` bigint,`enabled` boolean,`priority` bigint DEFAULT 0,`weight` bigint unsigned DEFAULT 0,`tag` varchar(191),PRIMARY KEY (`group`,`model`,`channel_id`))',
  'CREATE TABLE `options` (`key` varchar(191),`value` longtext,PRIMARY KEY (`key`))',
];

// ---- one-api (songquanpeng/one-api, SQLite): no soft delete, `models` / `subnet` on tokens
export const ONE_API_SQLITE = [
  "CREATE TABLE `users` (`id` integer,`username` text UNIQUE,`password` text NOT NULL,`display_name` text,`role` integer DEFAULT 1,`status` integer DEFAULT 1,`email` text,`github_id` text,`wechat_id` text,`lark_id` text,`oidc_id` text,`access_token` char(32) UNIQUE,`quota` integer DEFAULT 0,`used_quota` integer DEFAULT 0,`request_count` integer DEFAULT 0,`group` varchar(32) DEFAULT 'default',`aff_code` varchar(32) UNIQUE,`inviter_id` integer,PRIMARY KEY (`id`))",
  "CREATE TABLE `tokens` (`id` integer,`user_id` integer,`key` char(48) UNIQUE,`status` integer DEFAULT 1,`name` text,`created_time` integer,`accessed_time` integer,`expired_time` integer DEFAULT -1,`remain_quota` integer DEFAULT 0,`unlimited_quota` numeric DEFAULT false,`used_quota` integer DEFAULT 0,`models` text,`subnet` text DEFAULT '',PRIMARY KEY (`id`))",
  "CREATE TABLE `channels` (`id` integer,`type` integer DEFAULT 0,`key` text,`status` integer DEFAULT 1,`name` text,`weight` integer DEFAULT 0,`created_time` integer,`test_time` integer,`response_time` integer,`base_url` text DEFAULT '',`other` text,`balance` real,`balance_updated_time` integer,`models` text,`group` varchar(32) DEFAULT 'default',`used_quota` integer DEFAULT 0,`model_mapping` varchar(1024) DEFAULT '',`priority` integer DEFAULT 0,`config` text,`system_prompt` text,PRIMARY KEY (`id`))",
  'CREATE TABLE `options` (`key` text,`value` text,PRIMARY KEY (`key`))',
];

/** A new-api token secret: 48 characters from common.GenerateKey's alphabet (no checksum). */
export function newApiKey(): string {
  const chars = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  return [...randomBytes(48)].map((b) => chars[b % chars.length]).join('');
}

export type Rows = Record<string, Record<string, unknown>[]>;

/**
 * The data every test imports: what each row is for is in its name. `mock` is the origin of
 * test/mock-provider (without /v1, as new-api stores base URLs).
 */
export function newApiData(opts: { mockOrigin: string; now?: number }) {
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  const hash = (pw: string) => bcrypt.hashSync(pw, 4).replace(/^\$2b\$/, '$2a$');
  /** A `tokens` row: active, limited with no quota left, no model or IP limits, no group, created
   * and last used now; `fields` say what the row is about. */
  const token = (fields: Record<string, unknown>) => ({
    status: 1,
    created_time: now,
    accessed_time: now,
    expired_time: -1,
    remain_quota: 0,
    used_quota: 0,
    unlimited_quota: 0,
    model_limits_enabled: 0,
    model_limits: '',
    allow_ips: '',
    group: '',
    ...fields,
  });
  const keys = {
    good: newApiKey(),
    unlimited: newApiKey(),
    disabled: newApiKey(),
    expired: newApiKey(),
    exhausted: newApiKey(),
    deleted: newApiKey(),
    orphan: newApiKey(),
    future: newApiKey(),
    granted: newApiKey(),
  };
  const rows: Rows = {
    users: [
      {
        id: 1,
        username: 'root',
        password: hash('root-password-1'),
        display_name: 'Root',
        role: 100,
        status: 1,
        quota: 1_000_000,
        used_quota: 0,
        group: 'default',
        aff_code: 'a1',
      },
      {
        id: 2,
        username: 'alice',
        password: hash('alice-password'),
        display_name: 'Alice',
        role: 1,
        status: 1,
        quota: 2_500_000,
        used_quota: 750_000,
        group: 'vip',
        aff_code: 'a2',
      },
      {
        id: 3,
        username: 'bob',
        password: hash('bob-password-9'),
        role: 10,
        status: 2,
        quota: 0,
        group: 'default',
        aff_code: 'a3',
      },
      {
        id: 4,
        username: 'gone',
        password: hash('gone-password'),
        role: 1,
        status: 1,
        quota: 5,
        group: 'default',
        aff_code: 'a4',
        deleted_at: '2025-01-02 03:04:05',
      },
      {
        id: 5,
        username: 'bad name!',
        password: hash('whatever-pw'),
        role: 1,
        status: 1,
        quota: 0,
        group: 'default',
        aff_code: 'a5',
      },
    ],
    tokens: [
      token({
        id: 1,
        user_id: 2,
        key: keys.good,
        name: 'alice-main',
        created_time: now - 86400,
        remain_quota: 500_000,
        used_quota: 250_000,
        model_limits_enabled: 1,
        model_limits: 'mole-mini,gpt-4o',
        allow_ips: '127.0.0.1\n ::1, ',
      }),
      token({
        id: 2,
        user_id: 2,
        key: keys.unlimited,
        name: 'alice-unlimited',
        used_quota: 100_000,
        unlimited_quota: 1,
        model_limits: 'ignored-when-disabled',
        group: 'vip',
      }),
      token({ id: 3, user_id: 2, key: keys.disabled, status: 2, name: 'alice-off', remain_quota: 500_000 }),
      token({
        id: 4,
        user_id: 2,
        key: keys.expired,
        status: 3,
        name: 'alice-expired',
        created_time: now - 7200,
        expired_time: now - 3600,
        remain_quota: 500_000,
      }),
      token({
        id: 5,
        user_id: 2,
        key: keys.exhausted,
        status: 4,
        name: 'alice-exhausted',
        used_quota: 100_000,
      }),
      token({
        id: 6,
        user_id: 2,
        key: keys.deleted,
        name: 'alice-deleted',
        remain_quota: 500_000,
        unlimited_quota: 1,
        deleted_at: '2025-01-02 03:04:05',
      }),
      token({ id: 7, user_id: 4, key: keys.orphan, name: 'gone-key', unlimited_quota: 1 }),
      token({
        id: 8,
        user_id: 1,
        key: keys.future,
        name: 'root-30d',
        expired_time: now + 30 * 86400,
        remain_quota: 5_000_000,
        allow_ips: '10.0.0.0/8',
      }),
      token({ id: 9, user_id: 1, key: keys.granted, name: '', unlimited_quota: 1, group: 'vip' }),
    ],
    channels: [
      {
        id: 1,
        type: 1,
        key: 'sk-upstream-openai-credential-0001',
        status: 1,
        name: 'openai-main',
        weight: 3,
        base_url: '',
        models: 'gpt-4o,gpt-4o-mini',
        group: 'default,vip',
        model_mapping: '{"gpt-4o":"gpt-4o-2024-08-06"}',
        priority: 5,
        created_time: now,
      },
      {
        id: 2,
        type: 14,
        key: 'sk-ant-upstream-credential-0002',
        status: 3,
        name: 'claude',
        weight: 0,
        base_url: 'https://proxy-user:proxy-pass@proxy.example.com/',
        models: 'claude-sonnet-4-5',
        group: 'default',
        model_mapping: '',
        priority: 0,
        created_time: now,
      },
      {
        id: 3,
        type: 24,
        key: 'AIzaUpstreamGeminiCredential0003',
        status: 2,
        name: 'gemini',
        weight: 0,
        base_url: '',
        models: 'gemini-2.5-flash',
        group: 'vip',
        model_mapping: null,
        priority: 1,
        created_time: now,
      },
      {
        id: 4,
        type: 3,
        key: 'azure-credential-0004',
        status: 1,
        name: 'azure',
        weight: 0,
        base_url: 'https://x.openai.azure.com',
        models: 'gpt-4o',
        group: 'default',
        priority: 0,
        created_time: now,
      },
      {
        id: 5,
        type: 1,
        key: 'sk-upstream-mock-credential-0005',
        status: 1,
        name: 'mock-upstream',
        weight: 0,
        base_url: opts.mockOrigin,
        models: 'mole-mini',
        group: 'default,vip',
        model_mapping: '{}',
        priority: 10,
        created_time: now,
      },
      {
        id: 6,
        type: 1,
        key: 'sk-multi-credential-a\nsk-multi-credential-b',
        status: 1,
        name: 'multi',
        weight: 1,
        base_url: 'https://api.example.com/v1',
        models: 'gpt-4o-mini',
        group: 'default',
        priority: 0,
        created_time: now,
        channel_info: '{"is_multi_key":true,"multi_key_size":2}',
      },
    ],
    abilities: [
      { group: 'default', model: 'gpt-4o', channel_id: 1, enabled: 1, priority: 5, weight: 3 },
      { group: 'vip', model: 'gpt-4o', channel_id: 1, enabled: 1, priority: 5, weight: 3 },
    ],
    options: [
      { key: 'QuotaPerUnit', value: '500000' },
      { key: 'ModelRatio', value: '{"mole-mini":0.075,"gpt-4o":1.25}' },
      { key: 'CompletionRatio', value: '{"gpt-4o":4}' },
      { key: 'GroupRatio', value: '{"default":1,"vip":0.8}' },
      { key: 'ModelPrice', value: '{"dall-e-3":0.04}' },
    ],
  };
  return { rows, keys };
}

const insertSql = (table: string, row: Record<string, unknown>) => {
  const cols = Object.keys(row);
  return {
    sql: `INSERT INTO \`${table}\` (${cols.map((c) => `\`${c}\``).join(',')}) VALUES (${cols.map(() => '?').join(',')})`,
    params: cols.map((c) => row[c] ?? null),
  };
};

export function buildSqlite(file: string, ddl: string[], rows: Rows): void {
  const db = new SQLite(file);
  for (const s of ddl) db.exec(s);
  for (const [table, list] of Object.entries(rows))
    for (const row of list) {
      const { sql, params } = insertSql(table, row);
      db.prepare(sql).run(...params);
    }
  db.close();
}

/** MariaDB for tests: MOLE_TEST_MYSQL_URL (set by test/global-setup.ts when a server answers). */
export const mysqlUrl = (): string | undefined => process.env.MOLE_TEST_MYSQL_URL || undefined;

/** Creates a fresh database on the test MariaDB with new-api's tables and `rows`; returns its URL and a drop(). */
export async function buildMysql(rows: Rows) {
  const base = mysqlUrl()!;
  const name = `mole_import_${randomBytes(5).toString('hex')}`;
  const admin = await mysql.createConnection({ uri: base });
  await admin.query(`CREATE DATABASE \`${name}\``);
  await admin.end();
  const url = `${base.replace(/\/[^/]*$/, '')}/${name}`;
  const conn = await mysql.createConnection({ uri: url });
  for (const s of NEW_API_MYSQL) await conn.query(s);
  for (const [table, list] of Object.entries(rows))
    for (const row of list) {
      const { sql, params } = insertSql(table, row);
      await conn.query(sql, params);
    }
  await conn.end();
  return {
    url,
    async drop() {
      const c = await mysql.createConnection({ uri: base });
      await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await c.end();
    },
  };
}

// ---- new-api, PostgreSQL dialect: the same models under GORM's postgres type rules (int and
// int64 → bigint, bool → boolean, gorm.DeletedAt → timestamptz, string → text unless sized).
export const NEW_API_POSTGRES = [
  `CREATE TABLE "users" ("id" bigserial,"username" text UNIQUE,"password" text NOT NULL,"display_name" text,"role" bigint DEFAULT 1,"status" bigint DEFAULT 1,"email" text,"github_id" text,"oidc_id" text,"wechat_id" text,"telegram_id" text,"access_token" char(32) UNIQUE,"quota" bigint DEFAULT 0,"used_quota" bigint DEFAULT 0,"request_count" bigint DEFAULT 0,"group" varchar(64) DEFAULT 'default',"aff_code" varchar(32) UNIQUE,"aff_count" bigint DEFAULT 0,"aff_quota" bigint DEFAULT 0,"aff_history" bigint DEFAULT 0,"inviter_id" bigint,"deleted_at" timestamptz,"linux_do_id" text,"setting" text,"remark" varchar(255),"stripe_customer" varchar(64),PRIMARY KEY ("id"))`,
  `CREATE TABLE "tokens" ("id" bigserial,"user_id" bigint,"key" varchar(128),"status" bigint DEFAULT 1,"name" text,"created_time" bigint,"accessed_time" bigint,"expired_time" bigint DEFAULT -1,"remain_quota" bigint DEFAULT 0,"unlimited_quota" boolean,"model_limits_enabled" boolean,"model_limits" text,"allow_ips" text DEFAULT '',"used_quota" bigint DEFAULT 0,"group" text DEFAULT '',"cross_group_retry" boolean,"deleted_at" timestamptz,PRIMARY KEY ("id"))`,
  'CREATE UNIQUE INDEX "idx_tokens_key" ON "tokens" ("key")',
  `CREATE TABLE "channels" ("id" bigserial,"type" bigint DEFAULT 0,"key" text NOT NULL,"openai_organization" text,"test_model" text,"status" bigint DEFAULT 1,"name" text,"weight" bigint DEFAULT 0,"created_time" bigint,"test_time" bigint,"response_time" bigint,"base_url" text DEFAULT '',"other" text,"balance" decimal,"balance_updated_time" bigint,"models" text,"group" varchar(64) DEFAULT 'default',"used_quota" bigint DEFAULT 0,"model_mapping" text,"status_code_mapping" varchar(1024) DEFAULT '',"priority" bigint DEFAULT 0,"auto_ban" bigint DEFAULT 1,"other_info" text,"tag" text,"setting" text,"param_override" text,"header_override" text,"remark" varchar(255),"channel_info" json,"settings" text,PRIMARY KEY ("id"))`,
  `CREATE TABLE "abilities" ("group" varchar(64),"model" varchar(255),"channel_id" bigint,"enabled" boolean,"priority" bigint DEFAULT 0,"weight" bigint DEFAULT 0,"tag" text,PRIMARY KEY ("group","model","channel_id"))`,
  'CREATE TABLE "options" ("key" text,"value" text,PRIMARY KEY ("key"))',
];
const PG_BOOLEANS = new Set(['unlimited_quota', 'model_limits_enabled', 'cross_group_retry', 'enabled']);

/** Creates new-api's tables and `rows` in a fresh schema of the test PostgreSQL; returns a URL selecting it and a drop(). */
export async function buildPostgres(base: string, rows: Rows) {
  const { default: pg } = await import('pg');
  const schema = `newapi_${randomBytes(5).toString('hex')}`;
  const c = new pg.Client({ connectionString: base });
  await c.connect();
  try {
    await c.query(`CREATE SCHEMA "${schema}"`);
    await c.query(`SET search_path TO "${schema}"`);
    for (const s of NEW_API_POSTGRES) await c.query(s);
    for (const [table, list] of Object.entries(rows))
      for (const row of list) {
        const cols = Object.keys(row);
        await c.query(
          `INSERT INTO "${table}" (${cols.map((k) => `"${k}"`).join(',')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(',')})`,
          cols.map((k) => (PG_BOOLEANS.has(k) ? Boolean(row[k]) : (row[k] ?? null))),
        );
      }
  } finally {
    await c.end();
  }
  const url = new URL(base);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    async drop() {
      const d = new pg.Client({ connectionString: base });
      await d.connect();
      await d.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await d.end();
    },
  };
}
