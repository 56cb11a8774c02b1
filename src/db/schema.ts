// Table types shared by both dialects. Conventions that keep SQLite and PostgreSQL identical:
// times are integer epoch milliseconds, booleans are 0/1 integers, lists are JSON text,
// money is an integer count of nano-USD (1e-9 USD; see billing/money.ts).
import type { Generated, Insertable, Selectable, Updateable } from 'kysely';

export interface MetaTable {
  name: string;
  value: string;
}

/**
 * A periodic budget (migration 0010) on a key, an account, or a group (the default of each of
 * its keys that has none of its own); null = none.
 */
interface BudgetColumns {
  /** Spend allowed per budget_period (nano-USD). */
  budget_nano: Generated<number | null>;
  budget_period: Generated<BudgetPeriod | null>;
}

/** A key's or an account's budget, and when to tell of its spend. */
interface AlertedBudgetColumns extends BudgetColumns {
  /** JSON list of spend shares that raise `budget.threshold`; null = [0.8, 1]. */
  alert_thresholds: Generated<string | null>;
}

/**
 * Limits (migration 0009): an account's over all its keys, a key's own, or a group's (the
 * defaults and ceilings of its keys and accounts). Null = none of its own (for a key or an
 * account, its group's default applies, if any).
 */
interface LimitColumns {
  /** Requests per minute. */
  rpm_limit: Generated<number | null>;
  /** Tokens (input + output) per minute. */
  tpm_limit: Generated<number | null>;
  /** Requests in flight at once. */
  max_concurrency: Generated<number | null>;
}

export interface UsersTable extends AlertedBudgetColumns, LimitColumns {
  id: Generated<number>;
  username: string;
  password_hash: string;
  role: 'admin' | 'user';
  group_name: string;
  balance_nano: number;
  status: 'active' | 'disabled';
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
  /** Set by `mole import new-api`: the source row ("new-api:users:<id>"). */
  import_source: Generated<string | null>;
}

export type BudgetPeriod = 'daily' | 'weekly' | 'monthly';

export interface SessionsTable {
  token_hash: string;
  user_id: number;
  csrf_token: string;
  created_at: number;
  expires_at: number;
}

export interface ApiKeysTable extends AlertedBudgetColumns, Omit<LimitColumns, 'rpm_limit'> {
  id: Generated<number>;
  user_id: number;
  name: string;
  key_hash: string;
  display: string;
  /** Stored status: 'expired'/'exhausted' are derived at read time. 'deleted' rows keep attribution. */
  status: 'active' | 'disabled' | 'deleted';
  models: string | null;
  allowed_ips: string | null;
  quota_nano: number | null;
  used_nano: number;
  group_name: string | null;
  /** 1 when an admin set group_name: it applies whatever the owner's group; else the owner's group applies. */
  group_by_admin: Generated<number>;
  /** Requests per minute, null = unlimited. */
  rpm_limit: number | null;
  /** 1 when an admin disabled the key: only an admin may enable it again. */
  admin_locked: Generated<number>;
  expires_at: number | null;
  /** Previous secret's hash during a rotation grace period. */
  prev_key_hash: string | null;
  prev_key_expires_at: number | null;
  created_at: number;
  updated_at: number;
  /** When the secret was last rotated; null = never (its age counts from created_at). */
  rotated_at: Generated<number | null>;
  last_used_at: number | null;
  last_used_ip: string | null;
  deleted_at: number | null;
  /** 1 = carried over by `mole import new-api`: its secret has no checksum (keys/verify.ts). */
  imported: Generated<number>;
  /** Set by `mole import new-api`: the source row ("new-api:tokens:<id>"). */
  import_source: Generated<string | null>;
  /** Browser origins (JSON list of normalised `scheme://host[:port]`, `*.` wildcards); null = none. */
  allowed_origins: Generated<string | null>;
  /** Anomaly guard, JSON text (billing/guard.ts); null = none of its own (the group's still applies). */
  guard: Generated<string | null>;
}

/**
 * A short-lived key minted by a key (its parent) for a browser or an app. It bills and counts
 * as its parent; it dies with it (revoked in the parent's change, and `parent_key_hash` must
 * still be the parent's secret). `status`: 'active' | 'revoked'.
 */
export interface EphemeralKeysTable {
  id: Generated<number>;
  parent_id: number;
  user_id: number;
  key_hash: string;
  /** The parent's key_hash when minted: a rotated parent no longer matches. */
  parent_key_hash: string;
  display: string;
  /** JSON list, null = the parent's models. */
  models: string | null;
  /** JSON list of origins, null = the parent's. */
  allowed_origins: string | null;
  max_cost_nano: number | null;
  used_nano: Generated<number>;
  status: 'active' | 'revoked';
  expires_at: number;
  created_at: number;
  revoked_at: number | null;
}

export interface AuditTable {
  id: Generated<number>;
  created_at: number;
  actor: string;
  action: string;
  key_id: number | null;
  user_id: number | null;
  ip: string | null;
  changes: string;
}

export interface GroupsTable extends BudgetColumns, LimitColumns {
  name: string;
  /** Price multiplier in parts per million (1_000_000 = 1×). */
  multiplier_ppm: number;
  updated_at: number;
  /** Default anomaly guard for the group's keys, JSON text (security/guard.ts); null = none. */
  guard: Generated<string | null>;
  /** JSON list of models (names or prefixes ending in "*") the group may use; null = all. */
  models: Generated<string | null>;
  /** Keys of the group must expire within this many days; null = no rule. */
  max_key_lifetime_days: Generated<number | null>;
}

export interface PricesTable {
  model: string;
  /** nano-USD per 1M tokens. */
  input_nano_per_m: number;
  output_nano_per_m: number;
  cached_input_nano_per_m: number | null;
  /** Prompt-cache writes; null = billed at the input price. */
  cache_write_nano_per_m: number | null;
  /** Prompt-cache writes kept for an hour; null = billed at twice the input price. */
  cache_write_1h_nano_per_m: number | null;
  /** nano-USD per 1,000 web searches; null = 10 USD per 1,000. */
  web_search_nano_per_k: number | null;
  /** Priority processing's cost against the standard one, ppm; null = not offered at priority. */
  priority_ppm: number | null;
  updated_at: number;
}

export interface ChannelsTable {
  id: Generated<number>;
  name: string;
  type: string;
  base_url: string;
  /** AES-256-GCM ciphertext (see channels/secretbox.ts); never the plaintext. */
  api_key_enc: string;
  models: string;
  model_map: string | null;
  priority: number;
  weight: number;
  groups: string | null;
  status: 'active' | 'disabled';
  /** Set when the gateway switched the channel off (e.g. upstream 401). */
  disabled_reason: string | null;
  /** 1 = an `openai` channel serves the Responses API too (0: Responses requests are translated). */
  responses: number;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
  /** Set by `mole import new-api`: the source row ("new-api:channels:<id>[:<n>]"). */
  import_source: Generated<string | null>;
}

export interface LogsTable {
  id: Generated<number>;
  request_id: string;
  created_at: number;
  user_id: number;
  key_id: number;
  key_name: string;
  model: string | null;
  upstream_model: string | null;
  channel_id: number | null;
  endpoint: string;
  stream: number;
  status: number;
  error_code: string | null;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  cost_nano: number;
  latency_ms: number;
  ttft_ms: number | null;
  ip: string | null;
  estimated: number;
  /**
   * Each upstream try in order, JSON text of
   * [{channel_id, channel_name, status: number|null, error: string|null, latency_ms}]; null = none recorded.
   */
  attempts: string | null;
  /** Ingress protocol the client spoke: 'openai', 'anthropic', 'gemini', … */
  protocol: string;
  /** Part of prompt_tokens written to the provider's prompt cache (prompt_tokens counts every input token). */
  cache_write_tokens: number;
  /** Part of completion_tokens spent on reasoning, as the upstream reported it. */
  reasoning_tokens: number;
  /** Part of cache_write_tokens kept for an hour (Anthropic `ttl: "1h"`), billed at its own price. */
  cache_write_1h_tokens: number;
  /** Searches the provider's search tool ran for the call, billed per search (in cost_nano). */
  web_searches: number;
  /** The processing tier the upstream said it served (OpenAI `service_tier`); null = none said. */
  service_tier: string | null;
  /** The ephemeral key that made the call (key_id is its parent's), else null. */
  ephemeral_id: Generated<number | null>;
}

/** What a rollup row holds for one period, key and model: the sums of its log rows. */
interface RollupRow {
  user_id: number;
  key_id: number;
  model: string;
  requests: number;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  cost_nano: number;
}

/** Per-day rollup maintained in the same transaction as the log rows it summarises. */
export interface UsageDailyTable extends RollupRow {
  day: string;
}

/** Per-hour rollup (`hour` = epoch ms of the UTC hour's start), written with usage_daily. */
export interface UsageHourlyTable extends RollupRow {
  hour: number;
}

/** Notifications (events/service.ts); each row is also its own webhook outbox entry. */
export interface EventsTable {
  id: Generated<number>;
  /** Public, stable id ("evt_…"): the webhook's `id` and `x-mole-event-id`. */
  uid: string;
  type: string;
  /** The account it concerns; null = admins only. */
  user_id: number | null;
  key_id: number | null;
  /** Identifies one occurrence: stored once. */
  dedupe_key: string | null;
  /** JSON text of the payload (never a secret). */
  data: string;
  created_at: number;
  /** Webhook outbox: delivery tries so far. */
  attempts: Generated<number>;
  /** When the next delivery try is due; null = nothing to deliver (delivered, or no webhook). */
  next_attempt_at: number | null;
  delivered_at: number | null;
  last_error: string | null;
  /** The instance delivering it now, until `lease_until`. */
  lease_owner: string | null;
  lease_until: number | null;
}

/** Management tokens (mg-…): the secret's SHA-256 only; `user_id` null = minted by the master key. */
export interface ManagementTokensTable {
  id: Generated<number>;
  user_id: number | null;
  name: string;
  token_hash: string;
  display: string;
  /** JSON list of scopes. */
  scopes: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface Database {
  meta: MetaTable;
  users: UsersTable;
  sessions: SessionsTable;
  api_keys: ApiKeysTable;
  ephemeral_keys: EphemeralKeysTable;
  audit_log: AuditTable;
  groups: GroupsTable;
  prices: PricesTable;
  channels: ChannelsTable;
  logs: LogsTable;
  usage_daily: UsageDailyTable;
  usage_hourly: UsageHourlyTable;
  events: EventsTable;
  management_tokens: ManagementTokensTable;
}

export type UserRow = Selectable<UsersTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type NewApiKey = Insertable<ApiKeysTable>;
export type EphemeralKeyRow = Selectable<EphemeralKeysTable>;
export type ApiKeyUpdate = Updateable<ApiKeysTable>;
export type ChannelRow = Selectable<ChannelsTable>;
export type LogRow = Selectable<LogsTable>;
export type NewLog = Insertable<LogsTable>;
export type AuditRow = Selectable<AuditTable>;
export type EventRow = Selectable<EventsTable>;
export type ManagementTokenRow = Selectable<ManagementTokensTable>;
