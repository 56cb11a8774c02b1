// Reading call logs and usage: filtered, cursor-paginated lists; totals; day/key/model
// aggregates. Sums over a time range come from the rollups: usage_daily for the whole UTC
// days inside it, usage_hourly for the whole hours at its edges, and the logs only for what
// is left (under an hour at each end), so no range scans more than two hours of logs.
import { sql, type RawBuilder, type SelectQueryBuilder } from 'kysely';
import type { Db, Dialect } from '../db/index.js';
import type { Database, LogRow } from '../db/schema.js';
import { nanoToUsd } from '../billing/money.js';
import { readIdPage } from '../shared/page.js';

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
    cache_write_1h_tokens: Number(r.cache_write_1h_tokens),
    web_searches: Number(r.web_searches),
    service_tier: r.service_tier,
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

/** The same columns in logs and the rollups, summed the same way in all. */
const SUM_COLUMNS = ['prompt_tokens', 'cached_tokens', 'completion_tokens', 'cost_nano'] as const;

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** 10000-01-01: from here on ISO day strings gain a sign and no longer sort as text. */
const DAY_TEXT_END = Date.UTC(10000, 0, 1);
const dayString = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const floorTo = (ms: number, unit: number) => Math.floor(ms / unit) * unit;
const ceilTo = (ms: number, unit: number) => Math.ceil(ms / unit) * unit;

/** One part of a queried range [from, to) (undefined = unbounded) and the table answering it. */
export interface RangePart {
  source: 'logs' | 'usage_hourly' | 'usage_daily';
  from?: number;
  to?: number;
}

/**
 * Splits [from, to) into the parts each source answers exactly: whole UTC days from the
 * daily rollup, whole hours from the hourly one, and the rest (under an hour at each end)
 * from the logs. The parts are disjoint and cover the range.
 */
export function splitRange(from: number | undefined, to: number | undefined): RangePart[] {
  const h0 = from === undefined ? undefined : ceilTo(from, HOUR_MS);
  const h1 = to === undefined ? undefined : floorTo(to, HOUR_MS);
  // No whole hour inside (this includes empty ranges): the logs alone, under two hours.
  if (h0 !== undefined && h1 !== undefined && h0 >= h1) return [{ source: 'logs', from, to }];
  const parts: RangePart[] = [];
  if (from !== undefined && from < h0!) parts.push({ source: 'logs', from, to: h0 });
  const d0 = h0 === undefined ? undefined : ceilTo(h0, DAY_MS);
  const d1 = h1 === undefined ? undefined : floorTo(h1, DAY_MS);
  if (d0 !== undefined && d1 !== undefined && d0 >= d1) {
    parts.push({ source: 'usage_hourly', from: h0, to: h1 });
  } else {
    if (h0 !== undefined && h0 < d0!) parts.push({ source: 'usage_hourly', from: h0, to: d0 });
    parts.push({ source: 'usage_daily', from: d0, to: d1 });
    if (h1 !== undefined && d1! < h1) parts.push({ source: 'usage_hourly', from: d1, to: h1 });
  }
  if (to !== undefined && h1! < to) parts.push({ source: 'logs', from: h1, to });
  return parts;
}

export type UsageGroup = 'day' | 'key' | 'model';

export function createUsageQueries(
  db: Db,
  dialect: Dialect,
  keys: { namesOf(ids: number[]): Promise<Map<number, { name: string; display: string }>> },
  /** rollups: false answers every sum from the logs (the reference the rollups must match). */
  opts: { rollups?: boolean } = {},
) {
  const rollups = opts.rollups ?? true;
  const dayOf = (ms: RawBuilder<number>) =>
    dialect === 'postgres'
      ? sql<string>`to_char(to_timestamp(${ms} / 1000.0) at time zone 'UTC', 'YYYY-MM-DD')`
      : sql<string>`strftime('%Y-%m-%d', ${ms} / 1000, 'unixepoch')`;
  /**
   * On SQLite, the filter columns of a log-range read are written `+col`: SQLite has no
   * statistics here and would otherwise prefer logs_user / logs_key (every row of the user
   * or key) to logs_time (the range, under an hour). PostgreSQL plans from its statistics.
   */
  const edgeRef = (col: 'key_id' | 'user_id' | 'model') =>
    dialect === 'sqlite' ? sql`+${sql.ref(col)}` : sql.ref(col);

  /**
   * One part's rows as (group, requests, sums...): unsummed rollup rows, or one per log row.
   * `group` is null when no grouping is asked for.
   */
  function partRows(part: RangePart, f: Omit<LogFilter, 'status'>, groupBy: UsageGroup | null) {
    const sums = SUM_COLUMNS.map((c) => sql.ref(c).as(c));
    if (part.source === 'logs') {
      // With the rollups on, a log part is at most two hours long.
      const edge = rollups;
      let q = db.selectFrom('logs');
      if (f.keyId !== undefined) q = q.where(edge ? edgeRef('key_id') : sql.ref('key_id'), '=', f.keyId);
      if (f.userId !== undefined) q = q.where(edge ? edgeRef('user_id') : sql.ref('user_id'), '=', f.userId);
      if (f.model !== undefined) q = q.where(edge ? edgeRef('model') : sql.ref('model'), '=', f.model);
      if (part.from !== undefined) q = q.where('created_at', '>=', part.from);
      if (part.to !== undefined) q = q.where('created_at', '<', part.to);
      const group =
        groupBy === 'day'
          ? dayOf(sql.ref('created_at'))
          : groupBy === 'key'
            ? sql.ref('key_id')
            : groupBy === 'model'
              ? sql`coalesce(model, '')`
              : sql.lit(null);
      return q.select([group.as('grp'), sql.lit(1).as('requests'), ...sums]);
    }
    let q = db.selectFrom(part.source);
    if (f.keyId !== undefined) q = q.where('key_id', '=', f.keyId);
    if (f.userId !== undefined) q = q.where('user_id', '=', f.userId);
    if (f.model !== undefined) q = q.where('model', '=', f.model);
    let dayGroup: RawBuilder<unknown>;
    if (part.source === 'usage_daily') {
      if (part.from !== undefined) {
        // Beyond year 9999 no day is stored (and the text no longer sorts).
        if (part.from >= DAY_TEXT_END) q = q.where(sql.lit(false));
        else q = q.where('day', '>=', dayString(part.from));
      }
      if (part.to !== undefined && part.to < DAY_TEXT_END) q = q.where('day', '<', dayString(part.to));
      dayGroup = sql.ref('day');
    } else {
      if (part.from !== undefined) q = q.where('hour', '>=', part.from);
      if (part.to !== undefined) q = q.where('hour', '<', part.to);
      dayGroup = dayOf(sql.ref('hour'));
    }
    const grp =
      groupBy === 'day'
        ? dayGroup
        : groupBy === 'key'
          ? sql.ref('key_id')
          : groupBy === 'model'
            ? sql.ref('model')
            : sql.lit(null);
    return (q as SelectQueryBuilder<Database, 'usage_daily', object>).select([
      grp.as('grp'),
      sql.ref('requests').as('requests'),
      ...sums,
    ]);
  }

  /** Every part of the filter's range, as one union (all rows, unsummed). */
  function unionOf(f: Omit<LogFilter, 'status'>, groupBy: UsageGroup | null) {
    const parts = rollups ? splitRange(f.from, f.to) : [{ source: 'logs' as const, from: f.from, to: f.to }];
    let q = partRows(parts[0]!, f, groupBy) as SelectQueryBuilder<Database, 'logs', UnionRow>;
    for (const p of parts.slice(1))
      q = q.unionAll(partRows(p, f, groupBy) as SelectQueryBuilder<Database, 'logs', UnionRow>);
    return q;
  }

  const SUMS = [
    sql<number>`sum(requests)`.as('requests'),
    ...SUM_COLUMNS.map((c) => sql<number>`sum(${sql.ref(c)})`.as(c)),
  ] as const;

  /**
   * Sums per day, key or model, ordered (days ascending; keys and models by cost, then
   * requests, descending, then key id or model name): `page.offset` groups skipped, at most
   * `page.limit` returned. As the database answers them: no key names, nano-USD.
   */
  async function groups(
    groupBy: UsageGroup,
    f: Omit<LogFilter, 'status'>,
    page?: { limit: number; offset: number },
  ): Promise<UsageSums[]> {
    let q = db
      .selectFrom(unionOf(f, groupBy).as('u'))
      .select([sql.ref('grp').as('grp'), ...SUMS])
      .groupBy(sql.ref('grp'));
    q =
      groupBy === 'day'
        ? q.orderBy(sql`grp asc`)
        : q.orderBy(sql`sum(cost_nano) desc`).orderBy(sql`sum(requests) desc`).orderBy(sql`grp asc`);
    if (page) q = q.limit(page.limit).offset(page.offset);
    return (await q.execute()) as UsageSums[];
  }

  /** Groups as the API shows them: key names are fetched for these groups' keys only. */
  async function present(groupBy: UsageGroup, rows: readonly UsageSums[]) {
    const names =
      groupBy === 'key'
        ? await keys.namesOf(rows.map((r) => Number(r.grp)))
        : new Map<number, { name: string; display: string }>();
    return rows.map((r) => ({
      ...(groupBy === 'day'
        ? { day: String(r.grp) }
        : groupBy === 'key'
          ? {
              key_id: Number(r.grp),
              key_name: names.get(Number(r.grp))?.name ?? null,
              key_display: names.get(Number(r.grp))?.display ?? null,
            }
          : { model: r.grp === '' ? null : String(r.grp) }),
      requests: Number(r.requests),
      prompt_tokens: Number(r.prompt_tokens),
      cached_tokens: Number(r.cached_tokens),
      completion_tokens: Number(r.completion_tokens),
      cost: nanoToUsd(Number(r.cost_nano)),
    }));
  }

  return {
    async listLogs(f: LogFilter, page: { limit: number; cursor?: number }) {
      return readIdPage(applyFilter(db.selectFrom('logs').selectAll(), f), page, toLogJson);
    },

    /** Sums over everything the filter matches: from the rollups unless a status filter needs the logs. */
    async totals(f: LogFilter) {
      const r =
        f.status === undefined
          ? await db.selectFrom(unionOf(f, null).as('u')).select(SUMS).executeTakeFirstOrThrow()
          : await applyFilter(db.selectFrom('logs'), f)
              .select((eb) => [
                eb.fn.countAll<number>().as('requests'),
                ...SUM_COLUMNS.map((c) => sql<number>`sum(${sql.ref(c)})`.as(c)),
              ])
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

    groups,
    present,

    /**
     * One page of `groups` as the API shows them: `next_cursor` (the next offset) while more
     * remain. Each page groups everything again (api/usage pages through usage/pages.ts).
     */
    async usage(groupBy: UsageGroup, f: Omit<LogFilter, 'status'>, page?: { limit: number; offset: number }) {
      let rows = await groups(groupBy, f, page && { limit: page.limit + 1, offset: page.offset });
      const more = page !== undefined && rows.length > page.limit;
      if (more) rows = rows.slice(0, page.limit);
      return {
        data: await present(groupBy, rows),
        next_cursor: more ? String(page.offset + page.limit) : null,
      };
    },
  };
}

/** One group's sums, as the database answers them. */
export interface UsageSums {
  grp: string | number | null;
  requests: number;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  cost_nano: number;
}

type UnionRow = {
  grp: unknown;
  requests: number;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  cost_nano: number;
};

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
