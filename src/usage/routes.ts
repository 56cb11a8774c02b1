// GET /api/logs and GET /api/usage (JSON or CSV). Users see only their own rows.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { type Principal, scopedUserId } from '../http/principal.js';
import { DAY_MS } from '../db/partitions.js';
import { route, zTime } from '../http/route.js';
import { zCursor, zId, zIsoTime, zLimit } from '../http/validate.js';
import { type UsagePages, USAGE_CURSOR, parseUsageCursor } from './pages.js';
import { toCsv, type LogFilter, type UsageQueries } from './queries.js';

const filterFields = {
  key_id: zId.optional(),
  user_id: zId.optional(),
  model: z.string().min(1).max(128).optional(),
  from: zIsoTime.optional(),
  to: zIsoTime.optional(),
  format: z.enum(['json', 'csv']).default('json'),
};

const CSV_MAX_ROWS = 200_000;
const USAGE_DEFAULT_LIMIT = 1000;
const USAGE_MAX_LIMIT = 10_000;

// Answers (the OpenAPI document, and from it the console's types: web/src/api-types.ts).
// format=csv answers text/csv instead.
/** One upstream try of a request (usage/queries.ts `AttemptJson`). */
export const LogAttemptSchema = z
  .object({
    channel_id: z.number().int().nullable(),
    channel_name: z.string().nullable(),
    status: z.number().int().nullable(),
    error: z.string().nullable(),
    latency_ms: z.number(),
  })
  .meta({ title: 'LogAttempt' });
/** One relay request (usage/queries.ts `toLogJson`). */
export const LogEntrySchema = z
  .object({
    id: z.number().int(),
    request_id: z.string(),
    created_at: zTime,
    user_id: z.number().int(),
    key_id: z.number().int(),
    key_name: z.string().nullable(),
    model: z.string().nullable(),
    upstream_model: z.string().nullable(),
    channel_id: z.number().int().nullable(),
    endpoint: z.string().nullable(),
    stream: z.boolean(),
    status: z.number().int(),
    error_code: z.string().nullable(),
    prompt_tokens: z.number().int(),
    cached_tokens: z.number().int(),
    completion_tokens: z.number().int(),
    cost: z.number().describe('USD'),
    latency_ms: z.number(),
    ttft_ms: z.number().nullable(),
    ip: z.string().nullable(),
    estimated: z.boolean(),
    protocol: z.string().describe('the ingress protocol the client spoke'),
    cache_write_tokens: z.number().int(),
    reasoning_tokens: z.number().int(),
    ephemeral_id: z
      .number()
      .int()
      .nullable()
      .optional()
      .describe('the ephemeral key that made the call (key_id is its parent); null = the key itself'),
    attempts: z.array(LogAttemptSchema).describe('every upstream try, in order'),
    // Fields added later go last: the CSV export's columns keep their places.
    cache_write_1h_tokens: z
      .number()
      .int()
      .describe('part of cache_write_tokens kept for an hour (Anthropic `ttl: "1h"`), at its own price'),
    web_searches: z.number().int().describe("searches the provider's search tool ran, billed in cost"),
    service_tier: z
      .string()
      .nullable()
      .describe('the processing tier the upstream said it served (OpenAI `service_tier`); null = none said'),
  })
  .meta({ title: 'LogEntry' });
/** The CSV export's columns: every field of a log entry but its nested attempts. */
const LOG_CSV_COLUMNS = LogEntrySchema.keyof().options.filter(
  (c): c is Exclude<typeof c, 'attempts'> => c !== 'attempts',
);
/** The sums over a set of requests: log totals, and each group of /api/usage. */
const usageSums = {
  requests: z.number().int(),
  prompt_tokens: z.number().int(),
  cached_tokens: z.number().int(),
  completion_tokens: z.number().int(),
  cost: z.number(),
};
export const LogTotalsSchema = z.object(usageSums).meta({ title: 'LogTotals' });
const LogPageSchema = z
  .object({
    data: z.array(LogEntrySchema),
    next_cursor: z.string().nullable(),
    totals: LogTotalsSchema.optional().describe('with totals=1'),
  })
  .meta({ title: 'LogPage' });
/** One group of /api/usage: the group's column (day, key_id + key_name, or model), then the sums. */
export const UsageRowSchema = z
  .object({
    day: z.string().optional().describe('YYYY-MM-DD (UTC), with group_by=day'),
    key_id: z.number().int().optional(),
    key_name: z.string().nullable().optional(),
    key_display: z.string().nullable().optional().describe("the key's masked form, with group_by=key"),
    model: z.string().nullable().optional(),
    ...usageSums,
  })
  .meta({ title: 'UsageRow' });

function toFilter(
  q: {
    key_id?: number | undefined;
    user_id?: number | undefined;
    model?: string | undefined;
    from?: string | undefined;
    to?: string | undefined;
  },
  principal: Principal,
): LogFilter {
  const f: LogFilter = {};
  if (q.key_id !== undefined) f.keyId = q.key_id;
  const userId = scopedUserId(principal, q.user_id);
  if (userId !== undefined) f.userId = userId;
  if (q.model !== undefined) f.model = q.model;
  if (q.from !== undefined) f.from = Date.parse(q.from);
  if (q.to !== undefined) f.to = endOf(q.to);
  return f;
}

/**
 * Where a range ends (exclusive): at a time, that time; at a date alone (`2026-12-07`), after
 * that day (UTC), so `from=2026-12-07&to=2026-12-07` is the whole day, as a reader means it.
 */
function endOf(to: string): number {
  const at = Date.parse(to);
  return /^\d{4}-\d{2}-\d{2}$/.test(to.trim()) ? at + DAY_MS : at;
}

export function registerUsageRoutes(
  app: FastifyInstance,
  deps: { usage: UsageQueries; usagePages: UsagePages; flush: () => Promise<void> },
) {
  route(app, {
    method: 'GET',
    url: '/api/logs',
    summary: 'Call logs, newest first (totals=1 adds sums for the filter; format=csv exports)',
    tags: ['usage'],
    auth: 'any',
    scope: 'logs:read',
    query: z
      .object({
        ...filterFields,
        status: z.union([z.coerce.number().int().min(100).max(599), z.enum(['ok', 'error'])]).optional(),
        limit: zLimit,
        cursor: zCursor,
        totals: z.enum(['0', '1', 'true', 'false']).optional(),
      })
      .strict(),
    response: LogPageSchema,
    handler: async ({ query, principal, reply }) => {
      await deps.flush();
      const f = toFilter(query, principal);
      if (query.status !== undefined) f.status = query.status;
      if (query.format === 'csv') {
        const rows: unknown[][] = [];
        for await (const r of deps.usage.allLogs(f, CSV_MAX_ROWS))
          rows.push(LOG_CSV_COLUMNS.map((c) => r[c]));
        reply
          .header('content-type', 'text/csv; charset=utf-8')
          .header('content-disposition', 'attachment; filename="moleapi-logs.csv"');
        return toCsv([...LOG_CSV_COLUMNS], rows);
      }
      const page = await deps.usage.listLogs(f, {
        limit: query.limit,
        ...(query.cursor ? { cursor: query.cursor } : {}),
      });
      if (query.totals === '1' || query.totals === 'true')
        return { ...page, totals: await deps.usage.totals(f) };
      return page;
    },
  });

  route(app, {
    method: 'GET',
    url: '/api/usage',
    summary: 'Requests, tokens and cost grouped by day (UTC), key or model; paginated (limit, cursor)',
    tags: ['usage'],
    auth: 'any',
    scope: 'usage:read',
    query: z
      .object({
        ...filterFields,
        group_by: z.enum(['day', 'key', 'model']).default('day'),
        // JSON pages hold at most `limit` groups (default 1000); `next_cursor` asks for the next.
        // A CSV export holds every group (up to 200,000) unless `limit` is given.
        limit: z.coerce.number().int().min(1).max(USAGE_MAX_LIMIT).optional(),
        // `next_cursor` as given: `<offset>.<snapshot>` (pages of one walk), or an offset.
        cursor: z.string().regex(USAGE_CURSOR, 'must be a next_cursor of this list').optional(),
      })
      .strict(),
    response: z
      .object({ data: z.array(UsageRowSchema), next_cursor: z.string().nullable() })
      .meta({ title: 'UsageList' }),
    handler: async ({ query, principal, reply }) => {
      await deps.flush();
      const limit = query.limit ?? (query.format === 'csv' ? CSV_MAX_ROWS : USAGE_DEFAULT_LIMIT);
      const filter = toFilter(query, principal);
      const cursor = query.cursor === undefined ? undefined : parseUsageCursor(query.cursor)!;
      // A CSV export is one answer: it needs no snapshot for pages to come.
      const result =
        query.format === 'csv'
          ? await deps.usage.usage(query.group_by, filter, { limit, offset: cursor?.offset ?? 0 })
          : await deps.usagePages.page(query.group_by, filter, limit, cursor);
      if (query.format === 'csv') {
        const first = query.group_by === 'key' ? ['key_id', 'key_name'] : [query.group_by];
        const cols = [...first, 'requests', 'prompt_tokens', 'cached_tokens', 'completion_tokens', 'cost'];
        reply
          .header('content-type', 'text/csv; charset=utf-8')
          .header('content-disposition', `attachment; filename="moleapi-usage-by-${query.group_by}.csv"`);
        return toCsv(
          cols,
          result.data.map((r) => cols.map((c) => (r as Record<string, unknown>)[c])),
        );
      }
      return result;
    },
  });
}
