// Reading call logs and usage: filtered, cursor-paginated lists; totals; day/key/model
// aggregates (from the daily rollup when the range is whole days, else from the logs).
import { sql, type SelectQueryBuilder } from 'kysely';
import type { Db, Dialect } from '../db/index.js';
import type { Database, LogRow } from '../db/schema.js';
import { nanoToUsd } from '../billing/money.js';
import { idPage } from '../shared/page.js';

export interface LogFilter {
  keyId?: number;
  userId?: number;
  model?: string;
  status?: number | 'ok' | 'error';
  from?: number;
  to?: number;
}

export function toLogJson(r: LogRow) {
  return {
    id: Number(r.id),
    request_id: r.request_id,
    created_at: new Date(Number(r.created_at)).toISOString(),
    user_id: Number(r.user_id),
    key_id: Number(r.key_id),
    key_name: r.key_name,
    model: r.model,
    upstream_model: r.upstream_model,
    channel_id: r.channel_id === null ? null : Number(r.channel_id),
    endpoint: r.endpoint,
    stream: Number(r.stream) === 1,
    status: Number(r.status),
    error_code: r.error_code,
    prompt_tokens: Number(r.prompt_tokens),
    cached_tokens: Number(r.cached_tokens),
    completion_tokens: Number(r.completion_tokens),
    cost: nanoToUsd(Number(r.cost_nano)),
    latency_ms: Number(r.latency_ms),
    ttft_ms: r.ttft_ms === null ? null : Number(r.ttft_ms),
    ip: r.ip,
    estimated: Number(r.estimated) === 1,
    protocol: r.protocol,
    cache_write_tokens: Number(r.cache_write_tokens),
    reasoning_tokens: Number(r.reasoning_tokens),
    /** The ephemeral key that made the call (key_id is its parent), else null. */
    ephemeral_id: r.ephemeral_id == null ? null : Number(r.ephemeral_id),
    attempts: parseAttempts(r.attempts),
  };
}

export interface AttemptJson {
  channel_id: number | null;
  channel_name: string | null;
  status: number | null;
  error: string | null;
  latency_ms: number;
}

/** The stored JSON text as the API shows it: always an array ([] when none were recorded). */
export function parseAttempts(text: string | null): AttemptJson[] {
  if (!text) return [];
  try {
    const v = JSON.parse(text) as unknown;
    if (!Array.isArray(v)) return [];
    return v.map((a: Record<string, unknown>) => ({
      channel_id: typeof a.channel_id === 'number' ? a.channel_id : null,
      channel_name: typeof a.channel_name === 'string' ? a.channel_name : null,
      status: typeof a.status === 'number' ? a.status : null,
      error: typeof a.error === 'string' ? a.error : null,
      latency_ms: typeof a.latency_ms === 'number' ? a.latency_ms : 0,
    }));
  } catch {
    return [];
  }
}
export type LogJson = ReturnType<typeof toLogJson>;

function applyFilter<O>(
  q: SelectQueryBuilder<Database, 'logs', O>,
  f: LogFilter,
): SelectQueryBuilder<Database, 'logs', O> {
  if (f.keyId !== undefined) q = q.where('key_id', '=', f.keyId);
  if (f.userId !== undefined) q = q.where('user_id', '=', f.userId);
  if (f.model !== undefined) q = q.where('model', '=', f.model);
  if (f.status === 'ok') q = q.where('status', '<', 400);
  // A literal, not a parameter: the partial index logs_errors (migration 0008) matches it.
  else if (f.status === 'error') q = q.where(sql<boolean>`status >= 400`);
  else if (f.status !== undefined) q = q.where('status', '=', f.status);
  if (f.from !== undefined) q = q.where('created_at', '>=', f.from);
  if (f.to !== undefined) q = q.where('created_at', '<', f.to);
  return q;
}

/** The same columns in logs and usage_daily, summed the same way in both. */
const TOKEN_AND_COST_SUMS = [
  sql<number>`sum(prompt_tokens)`.as('prompt_tokens'),
  sql<number>`sum(cached_tokens)`.as('cached_tokens'),
  sql<number>`sum(completion_tokens)`.as('completion_tokens'),
  sql<number>`sum(cost_nano)`.as('cost_nano'),
] as const;

const DAY_MS = 86_400_000;
const isWholeDay = (ms: number | undefined) => ms === undefined || ms % DAY_MS === 0;
const dayString = (ms: number) => new Date(ms).toISOString().slice(0, 10);

export type UsageGroup = 'day' | 'key' | 'model';

/** Ids per key-name lookup: far below SQLite's (32,766) and PostgreSQL's (65,535) parameter limits. */
const NAME_CHUNK = 1000;

export function createUsageQueries(
  db: Db,
  dialect: Dialect,
  keys: { namesOf(ids: number[]): Promise<Map<number, { name: string; display: string }>> },
) {
  /** The daily rollup rows a filter covers (its range must be whole UTC days). */
  function rollupFor(f: Omit<LogFilter, 'status'>) {
    let q = db.selectFrom('usage_daily');
    if (f.keyId !== undefined) q = q.where('key_id', '=', f.keyId);
    if (f.userId !== undefined) q = q.where('user_id', '=', f.userId);
    if (f.model !== undefined) q = q.where('model', '=', f.model);
    if (f.from !== undefined) q = q.where('day', '>=', dayString(f.from));
    if (f.to !== undefined) q = q.where('day', '<', dayString(f.to));
    return q;
  }

  return {
    async listLogs(f: LogFilter, page: { limit: number; cursor?: number }) {
      let q = applyFilter(db.selectFrom('logs').selectAll(), f)
        .orderBy('id', 'desc')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) q = q.where('id', '<', page.cursor);
      const rows = await q.execute();
      return idPage(rows, page.limit, toLogJson);
    },

    /** Sums over everything the filter matches: from the daily rollup when it can answer exactly. */
    async totals(f: LogFilter) {
      const fromRollup = f.status === undefined && isWholeDay(f.from) && isWholeDay(f.to);
      const r = fromRollup
        ? await rollupFor(f)
            .select([sql<number>`sum(requests)`.as('requests'), ...TOKEN_AND_COST_SUMS])
            .executeTakeFirstOrThrow()
        : await applyFilter(db.selectFrom('logs'), f)
            .select((eb) => [eb.fn.countAll<number>().as('requests'), ...TOKEN_AND_COST_SUMS])
            .executeTakeFirstOrThrow();
      // Sums over no rows are NULL: Number(null) is 0.
      return {
        requests: Number(r.requests),
        prompt_tokens: Number(r.prompt_tokens),
        cached_tokens: Number(r.cached_tokens),
        completion_tokens: Number(r.completion_tokens),
        cost: nanoToUsd(Number(r.cost_nano)),
      };
    },

    /** Every matching row, newest first, in pages (for CSV export). */
    async *allLogs(f: LogFilter, max: number) {
      let cursor: number | undefined;
      let sent = 0;
      while (sent < max) {
        const page = await this.listLogs(f, {
          limit: Math.min(1000, max - sent),
          ...(cursor ? { cursor } : {}),
        });
        for (const row of page.data) yield row;
        sent += page.data.length;
        if (!page.next_cursor) return;
        cursor = Number(page.next_cursor);
      }
    },

    /**
     * Sums per day, key or model, ordered (days ascending; keys and models by cost, then
     * requests, descending), one page at a time: `page.offset` rows skipped, at most
     * `page.limit` returned, and `next_cursor` (the next offset) while more remain. Key names
     * are fetched for the page's keys only, in chunks, so no statement ever carries more ids
     * than the database takes.
     */
    async usage(groupBy: UsageGroup, f: Omit<LogFilter, 'status'>, page?: { limit: number; offset: number }) {
      const col = groupBy === 'day' ? 'day' : groupBy === 'key' ? 'key_id' : 'model';
      type Agg = {
        group: string | number | null;
        key_name?: string | null;
        requests: number;
        prompt_tokens: number;
        cached_tokens: number;
        completion_tokens: number;
        cost_nano: number;
      };
      const costDesc = sql`sum(cost_nano) desc`;
      let rows: Agg[];
      if (isWholeDay(f.from) && isWholeDay(f.to)) {
        let q = rollupFor(f)
          .select((eb) => [
            eb.ref(col).as('group'),
            sql<number>`sum(requests)`.as('requests'),
            ...TOKEN_AND_COST_SUMS,
          ])
          .groupBy(col);
        q =
          groupBy === 'day'
            ? q.orderBy(sql`day asc`)
            : q.orderBy(costDesc).orderBy(sql`sum(requests) desc`).orderBy(sql.ref(col), 'asc');
        if (page) q = q.limit(page.limit + 1).offset(page.offset);
        rows = (await q.execute()) as Agg[];
      } else {
        const dayExpr =
          dialect === 'postgres'
            ? sql<string>`to_char(to_timestamp(created_at / 1000.0) at time zone 'UTC', 'YYYY-MM-DD')`
            : sql<string>`strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')`;
        const groupExpr =
          groupBy === 'day'
            ? dayExpr
            : groupBy === 'key'
              ? sql<string>`cast(key_id as text)`
              : sql<string>`coalesce(model, '')`;
        let q = applyFilter(db.selectFrom('logs'), f)
          .select((eb) => [
            groupExpr.as('group'),
            eb.fn.countAll<number>().as('requests'),
            ...TOKEN_AND_COST_SUMS,
          ])
          .groupBy(groupExpr);
        q =
          groupBy === 'day'
            ? q.orderBy(sql`${groupExpr} asc`)
            : q.orderBy(costDesc).orderBy(sql`count(*) desc`).orderBy(sql`${groupExpr} asc`);
        if (page) q = q.limit(page.limit + 1).offset(page.offset);
        rows = (await q.execute()) as Agg[];
      }
      const more = page !== undefined && rows.length > page.limit;
      if (more) rows = rows.slice(0, page.limit);
      const names = new Map<number, { name: string; display: string }>();
      if (groupBy === 'key') {
        const ids = rows.map((r) => Number(r.group));
        for (let i = 0; i < ids.length; i += NAME_CHUNK)
          for (const [id, named] of await keys.namesOf(ids.slice(i, i + NAME_CHUNK))) names.set(id, named);
      }
      const data = rows.map((r) => ({
        ...(groupBy === 'day'
          ? { day: String(r.group) }
          : groupBy === 'key'
            ? {
                key_id: Number(r.group),
                key_name: names.get(Number(r.group))?.name ?? null,
                key_display: names.get(Number(r.group))?.display ?? null,
              }
            : { model: r.group === '' ? null : String(r.group) }),
        requests: Number(r.requests),
        prompt_tokens: Number(r.prompt_tokens),
        cached_tokens: Number(r.cached_tokens),
        completion_tokens: Number(r.completion_tokens),
        cost: nanoToUsd(Number(r.cost_nano)),
      }));
      return { data, next_cursor: more ? String(page.offset + page.limit) : null };
    },
  };
}

export type UsageQueries = ReturnType<typeof createUsageQueries>;

/** RFC 4180 CSV; cells that a spreadsheet would run as a formula are prefixed with '. */
/**
 * A number as a spreadsheet reads it: never in exponent form (a cost of 8e-7 USD is
 * `0.0000008`), fractions to at most 9 decimals (nano-USD, the ledger's unit), trailing
 * zeros trimmed.
 */
export function csvNumber(n: number): string {
  if (!Number.isFinite(n)) return '';
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return n.toFixed(0);
  const s = n.toFixed(9).replace(/0+$/, '').replace(/\.$/, '');
  return s === '-0' ? '0' : s;
}

export function toCsv(header: string[], rows: Iterable<unknown[]>): string {
  const cell = (v: unknown) => {
    let s = v === null || v === undefined ? '' : typeof v === 'number' ? csvNumber(v) : String(v);
    if (/^[=+\-@\t\r]/.test(s) && typeof v === 'string') s = "'" + s;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  let out = header.map(cell).join(',') + '\r\n';
  for (const r of rows) out += r.map(cell).join(',') + '\r\n';
  return out;
}
