// mole usage [--from --to --by key|model|day] — over GET /api/usage (days are UTC).
import { Option, type Command } from 'commander';
import type { CliContext } from './context.js';
import { parseId, parseTime, table, usd, type Column } from './output.js';

interface UsageRow {
  day?: string;
  key_id?: number;
  key_name?: string;
  model?: string;
  requests: number;
  prompt_tokens: number;
  cached_tokens?: number;
  completion_tokens: number;
  cost: number;
}

export function registerUsage(program: Command, ctx: CliContext): void {
  program
    .command('usage')
    .description('requests, tokens and cost, grouped by day (UTC), key or model')
    .addOption(new Option('--by <what>', 'group by').choices(['day', 'key', 'model']).default('day'))
    .option('--from <time>', 'from this time: ISO 8601 (2026-12-01), or ago like 7d, 12h', (v) =>
      parseTime(v),
    )
    .option('--to <time>', 'until this time (same forms)', (v) => parseTime(v))
    .option('--key <id>', 'only this key', parseId)
    .option('--user <id>', 'only this user (admin)', parseId)
    .option('--model <name>', 'only this model')
    .action(
      async (
        o: {
          by: 'day' | 'key' | 'model';
          from?: string;
          to?: string;
          key?: number;
          user?: number;
          model?: string;
        },
        cmd,
      ) => {
        const res = await ctx.api().request<{ data: UsageRow[] }>('GET', '/api/usage', {
          query: {
            group_by: o.by,
            from: o.from,
            to: o.to,
            key_id: o.key,
            user_id: o.user,
            model: o.model,
          },
        });
        const rows = res.data;
        const first: Column<UsageRow>[] =
          o.by === 'day'
            ? [{ header: 'DAY', get: (r) => r.day }]
            : o.by === 'model'
              ? [{ header: 'MODEL', get: (r) => r.model }]
              : [
                  { header: 'KEY', get: (r) => r.key_id, right: true },
                  { header: 'NAME', get: (r) => r.key_name },
                ];
        const total: UsageRow = {
          requests: 0,
          prompt_tokens: 0,
          cached_tokens: 0,
          completion_tokens: 0,
          cost: 0,
        };
        for (const r of rows) {
          total.requests += r.requests;
          total.prompt_tokens += r.prompt_tokens;
          total.cached_tokens! += r.cached_tokens ?? 0;
          total.completion_tokens += r.completion_tokens;
          total.cost += r.cost;
        }
        const totalRow: UsageRow =
          o.by === 'day'
            ? { ...total, day: 'total' }
            : o.by === 'model'
              ? { ...total, model: 'total' }
              : { ...total, key_name: 'total' };
        ctx.out(cmd).result(res, () =>
          table(
            rows.length ? [...rows, totalRow] : [],
            [
              ...first,
              { header: 'REQUESTS', get: (r) => r.requests, right: true },
              { header: 'PROMPT', get: (r) => r.prompt_tokens, right: true },
              { header: 'CACHED', get: (r) => r.cached_tokens ?? 0, right: true },
              { header: 'COMPLETION', get: (r) => r.completion_tokens, right: true },
              // Sum in nano-USD so the total is exact.
              { header: 'COST', get: (r) => usd(r === totalRow ? sumUsd(rows) : r.cost), right: true },
            ],
            'No usage in this period.',
          ),
        );
      },
    );
}

const sumUsd = (rows: UsageRow[]) => rows.reduce((a, r) => a + Math.round(r.cost * 1e9), 0) / 1e9;
