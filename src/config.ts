// Environment → one typed, validated configuration object. Nothing else reads process.env.
import { z } from 'zod';
import path from 'node:path';
import { CidrSet } from './shared/cidr.js';
import type { JournalSync } from './usage/journal.js';

const intFromEnv = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return def;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `must be an integer between ${min} and ${max}` });
        return z.NEVER;
      }
      return n;
    });

/** MOLE_JOURNAL_FSYNC: a mode name, or 1 / 0 (before the interval mode: always / never). */
const journalSyncFromEnv = z
  .string()
  .optional()
  .transform((v, ctx): JournalSync => {
    const name = (v ?? '').trim().toLowerCase();
    if (name === '') return 'interval';
    if (name === '1') return 'always';
    if (name === '0') return 'never';
    if (name === 'always' || name === 'interval' || name === 'never') return name;
    ctx.addIssue({ code: 'custom', message: 'must be always, interval or never (or 1 = always, 0 = never)' });
    return z.NEVER;
  });

const listFromEnv = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

const EnvSchema = z.object({
  PORT: intFromEnv(3000, 0, 65535),
  HOST: z
    .string()
    .optional()
    .transform((v) => v || '0.0.0.0'),
  MOLE_DATA_DIR: z
    .string()
    .optional()
    .transform((v) => path.resolve(v || './data')),
  DATABASE_URL: z
    .string()
    .optional()
    .transform((v) => (v ? v : undefined))
    .refine((v) => v === undefined || /^postgres(ql)?:\/\//.test(v), 'must start with postgres://'),
  REDIS_URL: z
    .string()
    .optional()
    .transform((v) => (v ? v : undefined))
    .refine((v) => v === undefined || /^rediss?:\/\//.test(v), 'must start with redis://'),
  MOLE_MASTER_KEY: z
    .string()
    .optional()
    .transform((v) => (v ? v : undefined)),
  MOLE_SECRET: z
    .string()
    .optional()
    .transform((v) => (v ? v : undefined)),
  MOLE_TRUSTED_PROXIES: listFromEnv,
  /** Bearer token for GET /metrics from anywhere; unset: loopback clients only. */
  MOLE_METRICS_TOKEN: z
    .string()
    .optional()
    .transform((v) => (v ? v : undefined))
    .refine((v) => v === undefined || v.length >= 16, 'must be at least 16 characters'),
  MOLE_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .optional()
    .transform((v) => v ?? 'info'),
  /** Most keys one user may hold (deleted keys do not count). */
  MOLE_MAX_KEYS_PER_USER: intFromEnv(200, 1, 1_000_000),
  /** Most live (unexpired, unrevoked) ephemeral keys one key may have minted at a time. */
  MOLE_MAX_EPHEMERAL_KEYS_PER_KEY: intFromEnv(1000, 1, 1_000_000),
  /** Output-token cap assumed for admission when a request sets no max_tokens. */
  MOLE_DEFAULT_MAX_OUTPUT_TOKENS: intFromEnv(4096, 1, 10_000_000),
  /** Largest accepted relay request body, bytes. */
  MOLE_MAX_BODY_BYTES: intFromEnv(8 * 1024 * 1024, 1024, 512 * 1024 * 1024),
  /** How often batched usage, logs and last-used times are written, ms. */
  MOLE_FLUSH_INTERVAL_MS: intFromEnv(200, 10, 60_000),
  /**
   * Usage journal (usage/journal.ts); every mode survives kill -9. always: each group commit
   * fdatasync'ed before its answers go out (survives a power cut); interval: fdatasync'ed in the
   * background every MOLE_JOURNAL_FSYNC_MS (a power cut loses about that much); never: write only.
   */
  MOLE_JOURNAL_FSYNC: journalSyncFromEnv,
  /** interval mode: how often at most a journal segment with unsynced rows is fdatasync'ed, ms. */
  MOLE_JOURNAL_FSYNC_MS: intFromEnv(50, 1, 60_000),
  /**
   * Call-log rows older than this many whole UTC days before today are removed (PostgreSQL:
   * whole day partitions dropped; SQLite: deleted in batches); 0 = kept forever.
   */
  MOLE_LOG_RETENTION_DAYS: intFromEnv(0, 0, 100_000),
  /** With REDIS_URL: how long a silent instance's admission holds stay counted, ms. */
  MOLE_HOLD_LEASE_MS: intFromEnv(30_000, 1_000, 600_000),
  /**
   * How long a whole request (headers and body) may take to arrive, ms: past it, 408. A body
   * that stops coming would otherwise hold its connection for good (with or without a key).
   */
  MOLE_REQUEST_TIMEOUT_MS: intFromEnv(120_000, 100, 3_600_000),
  /** With REDIS_URL: how long a command may wait for Redis's answer before the request gets 503, ms. */
  MOLE_REDIS_TIMEOUT_MS: intFromEnv(2_000, 50, 60_000),
  /** With DATABASE_URL: connections each instance keeps to PostgreSQL at most. */
  MOLE_DB_POOL_SIZE: intFromEnv(10, 1, 1_000),
  /** With DATABASE_URL: how long a query may wait for PostgreSQL's answer (0 = no limit), ms. */
  MOLE_DB_TIMEOUT_MS: intFromEnv(30_000, 0, 3_600_000),
  /** Upstream timeouts, ms. */
  MOLE_UPSTREAM_CONNECT_TIMEOUT_MS: intFromEnv(10_000, 1, 600_000),
  MOLE_UPSTREAM_FIRST_BYTE_TIMEOUT_MS: intFromEnv(60_000, 1, 3_600_000),
  MOLE_UPSTREAM_IDLE_TIMEOUT_MS: intFromEnv(120_000, 1, 3_600_000),
  /** Connections per upstream origin (0 = no limit: every in-flight stream holds one). */
  MOLE_UPSTREAM_MAX_CONNECTIONS: intFromEnv(0, 0, 1_000_000),
  /** Channels tried per request before giving up. */
  MOLE_MAX_UPSTREAM_ATTEMPTS: intFromEnv(3, 1, 20),
  /** Key-cache capacity (entries). */
  MOLE_KEY_CACHE_SIZE: intFromEnv(100_000, 100, 50_000_000),
  /** Session lifetime, seconds. */
  MOLE_SESSION_TTL_SECONDS: intFromEnv(7 * 24 * 3600, 60, 365 * 24 * 3600),
  /** Failed logins per username+IP within 15 minutes before login is refused. */
  MOLE_LOGIN_MAX_FAILURES: intFromEnv(5, 1, 1000),
  /**
   * GitHub's secret-scanning public keys: a JSON file in the shape of
   * https://api.github.com/meta/public_keys/secret_scanning. Unset: POST
   * /api/secret-scanning/github answers 404 secret_scanning_disabled.
   */
  MOLE_SECRET_SCANNING_KEYS: z
    .string()
    .optional()
    .transform((v) => (v ? path.resolve(v) : undefined)),
  /** Seconds to wait for in-flight requests on SIGTERM. */
  MOLE_SHUTDOWN_GRACE_SECONDS: intFromEnv(30, 0, 3600),
  /** Where events are POSTed (events/webhook.ts); unset: events are only stored. */
  MOLE_WEBHOOK_URL: z
    .string()
    .optional()
    .transform((v) => (v ? v : undefined))
    .refine((v) => v === undefined || /^https?:\/\/[^\s]+$/.test(v), 'must be an http(s) URL'),
  /** Signs every webhook delivery (HMAC-SHA256); required with MOLE_WEBHOOK_URL. */
  MOLE_WEBHOOK_SECRET: z
    .string()
    .optional()
    .transform((v) => (v ? v : undefined))
    .refine((v) => v === undefined || v.length >= 16, 'must be at least 16 characters'),
  /** How long one webhook POST may take, ms. */
  MOLE_WEBHOOK_TIMEOUT_MS: intFromEnv(10_000, 100, 600_000),
  /** How often the webhook outbox is checked for due deliveries, ms (a new event is sent at once). */
  MOLE_WEBHOOK_POLL_MS: intFromEnv(1_000, 10, 600_000),
});

export type Config = {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  masterKey: string | undefined;
  secret: string | undefined;
  trustedProxies: string[];
  metricsToken: string | undefined;
  logLevel: string;
  maxKeysPerUser: number;
  maxEphemeralKeysPerKey: number;
  defaultMaxOutputTokens: number;
  maxBodyBytes: number;
  requestTimeoutMs: number;
  flushIntervalMs: number;
  journalSync: JournalSync;
  journalSyncIntervalMs: number;
  /** Days of call logs kept before today; 0 = forever. */
  logRetentionDays: number;
  holdLeaseMs: number;
  redisTimeoutMs: number;
  dbTimeoutMs: number;
  dbPoolSize: number;
  upstreamConnectTimeoutMs: number;
  upstreamFirstByteTimeoutMs: number;
  upstreamIdleTimeoutMs: number;
  maxUpstreamAttempts: number;
  upstreamMaxConnections: number;
  keyCacheSize: number;
  sessionTtlSeconds: number;
  loginMaxFailures: number;
  shutdownGraceSeconds: number;
  secretScanningKeysFile: string | undefined;
  /** Webhook delivery of events; null = events are stored only. */
  webhook: { url: string; secret: string; timeoutMs: number; pollMs: number } | null;
};

export class ConfigError extends Error {}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const e = parsed.data;
  if (e.MOLE_WEBHOOK_URL && !e.MOLE_WEBHOOK_SECRET) {
    throw new ConfigError('invalid configuration:\n  MOLE_WEBHOOK_SECRET: required with MOLE_WEBHOOK_URL');
  }
  // Checked here with the rest, before anything starts (it was found only when the app was built).
  const proxies = CidrSet.parse(e.MOLE_TRUSTED_PROXIES);
  if (!proxies.ok) throw new ConfigError(`invalid configuration:\n  MOLE_TRUSTED_PROXIES: ${proxies.error}`);
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir: e.MOLE_DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    masterKey: e.MOLE_MASTER_KEY,
    secret: e.MOLE_SECRET,
    trustedProxies: e.MOLE_TRUSTED_PROXIES,
    metricsToken: e.MOLE_METRICS_TOKEN,
    logLevel: e.MOLE_LOG_LEVEL,
    maxKeysPerUser: e.MOLE_MAX_KEYS_PER_USER,
    maxEphemeralKeysPerKey: e.MOLE_MAX_EPHEMERAL_KEYS_PER_KEY,
    defaultMaxOutputTokens: e.MOLE_DEFAULT_MAX_OUTPUT_TOKENS,
    maxBodyBytes: e.MOLE_MAX_BODY_BYTES,
    requestTimeoutMs: e.MOLE_REQUEST_TIMEOUT_MS,
    flushIntervalMs: e.MOLE_FLUSH_INTERVAL_MS,
    journalSync: e.MOLE_JOURNAL_FSYNC,
    journalSyncIntervalMs: e.MOLE_JOURNAL_FSYNC_MS,
    logRetentionDays: e.MOLE_LOG_RETENTION_DAYS,
    holdLeaseMs: e.MOLE_HOLD_LEASE_MS,
    redisTimeoutMs: e.MOLE_REDIS_TIMEOUT_MS,
    dbTimeoutMs: e.MOLE_DB_TIMEOUT_MS,
    dbPoolSize: e.MOLE_DB_POOL_SIZE,
    upstreamConnectTimeoutMs: e.MOLE_UPSTREAM_CONNECT_TIMEOUT_MS,
    upstreamFirstByteTimeoutMs: e.MOLE_UPSTREAM_FIRST_BYTE_TIMEOUT_MS,
    upstreamIdleTimeoutMs: e.MOLE_UPSTREAM_IDLE_TIMEOUT_MS,
    maxUpstreamAttempts: e.MOLE_MAX_UPSTREAM_ATTEMPTS,
    upstreamMaxConnections: e.MOLE_UPSTREAM_MAX_CONNECTIONS,
    keyCacheSize: e.MOLE_KEY_CACHE_SIZE,
    sessionTtlSeconds: e.MOLE_SESSION_TTL_SECONDS,
    loginMaxFailures: e.MOLE_LOGIN_MAX_FAILURES,
    shutdownGraceSeconds: e.MOLE_SHUTDOWN_GRACE_SECONDS,
    secretScanningKeysFile: e.MOLE_SECRET_SCANNING_KEYS,
    webhook:
      e.MOLE_WEBHOOK_URL && e.MOLE_WEBHOOK_SECRET
        ? {
            url: e.MOLE_WEBHOOK_URL,
            secret: e.MOLE_WEBHOOK_SECRET,
            timeoutMs: e.MOLE_WEBHOOK_TIMEOUT_MS,
            pollMs: e.MOLE_WEBHOOK_POLL_MS,
          }
        : null,
  };
}
