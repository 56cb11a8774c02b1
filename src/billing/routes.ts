// Prices and group multipliers: validate the input, call billing/actions.ts (which writes the
// audit trail with each change), answer.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { listOf, route, zTime } from '../http/route.js';
import { zGroupName, zModelName, zModelPattern } from '../http/validate.js';
import { zLimitFields, zLifetimeDays } from '../limits/validate.js';
import type { BillingActions } from './actions.js';
import { type GroupPatch, PriceSchema } from './catalog.js';
import { multiplierPpm, usdNano } from './money.js';
import { GuardSchema, guardFromJson, zGuard } from './guard.js';

const zPerM = z.number().finite().min(0).max(1_000_000);
// Model names may contain "/" (org/model), so the rest of the path is the name.
const ModelParams = z.object({ '*': zModelName }).strict();

// Answers (the OpenAPI document, and from it the console's types: web/src/api-types.ts).
/** A group's price multiplier (billing/catalog.ts `GroupJson`). */
const PERIODS = ['daily', 'weekly', 'monthly'] as const;
const zGroupBudget = z
  .object({ amount: z.number().finite().min(0).max(9_000_000), period: z.enum(PERIODS) })
  .strict();
export const GroupSchema = z
  .object({
    name: z.string(),
    multiplier: z.number(),
    budget: z
      .object({ amount: z.number(), period: z.enum(PERIODS) })
      .nullable()
      .optional()
      .describe('default budget for each key of the group (USD per period); null = none'),
    guard: GuardSchema.nullable()
      .optional()
      .describe("anomaly guard for every key of the group (beside a key's own)"),
    rpm: z.number().int().nullable().optional().describe('requests per minute: default and ceiling'),
    tpm: z.number().int().nullable().optional().describe('tokens per minute: default and ceiling'),
    max_concurrency: z.number().int().nullable().optional().describe('requests at once: default and ceiling'),
    models: z.array(z.string()).nullable().optional().describe('what the group may use; null = all'),
    max_key_lifetime_days: z.number().int().nullable().optional(),
    updated_at: zTime,
  })
  .meta({ title: 'Group' });

export function registerBillingRoutes(app: FastifyInstance, deps: { billingActions: BillingActions }) {
  const actions = deps.billingActions;

  route(app, {
    method: 'GET',
    url: '/api/prices',
    summary: 'Prices, USD per 1M tokens',
    tags: ['pricing'],
    auth: 'any',
    scope: 'channels:read',
    response: listOf(PriceSchema, 'PriceList'),
    handler: () => actions.listPrices(),
  });

  route(app, {
    method: 'PUT',
    url: '/api/prices/*',
    summary: 'Set a model price (USD per 1M input / output / cached-input tokens; per 1,000 web searches)',
    tags: ['pricing'],
    auth: 'admin',
    scope: 'channels:write',
    params: ModelParams,
    body: z
      .object({
        input: zPerM,
        output: zPerM,
        cached_input: zPerM.nullable().optional(),
        cache_write: zPerM.nullable().optional(),
        cache_write_1h: zPerM.nullable().optional(),
        web_search_per_1k: zPerM.nullable().optional(),
        priority_multiplier: z.number().finite().min(1).max(100).nullable().optional(),
      })
      .strict(),
    response: PriceSchema,
    handler: ({ params, body, principal, ip }) =>
      actions.setPrice(
        { principal, ip },
        params['*'],
        {
          inputNanoPerM: usdNano(body.input, 'input'),
          outputNanoPerM: usdNano(body.output, 'output'),
          cachedInputNanoPerM: body.cached_input == null ? null : usdNano(body.cached_input, 'cached_input'),
          cacheWriteNanoPerM: body.cache_write == null ? null : usdNano(body.cache_write, 'cache_write'),
          cacheWrite1hNanoPerM:
            body.cache_write_1h == null ? null : usdNano(body.cache_write_1h, 'cache_write_1h'),
          webSearchNanoPerK:
            body.web_search_per_1k == null ? null : usdNano(body.web_search_per_1k, 'web_search_per_1k'),
          priorityPpm:
            body.priority_multiplier == null
              ? null
              : multiplierPpm(body.priority_multiplier, 'priority_multiplier'),
        },
        body,
      ),
  });

  route(app, {
    method: 'DELETE',
    url: '/api/prices/*',
    summary: 'Remove a price (the model is refused until priced again)',
    tags: ['pricing'],
    auth: 'admin',
    scope: 'channels:write',
    params: ModelParams,
    response: z.object({ model: z.string(), deleted: z.literal(true) }),
    handler: ({ params, principal, ip }) => actions.deletePrice({ principal, ip }, params['*']),
  });

  route(app, {
    method: 'GET',
    url: '/api/groups',
    summary: 'Groups and their price multipliers (a user sees only their own)',
    tags: ['pricing'],
    auth: 'any',
    scope: 'channels:read',
    response: listOf(GroupSchema, 'GroupList'),
    handler: ({ principal }) => actions.listGroups(principal),
  });

  route(app, {
    method: 'PUT',
    url: '/api/groups/:name',
    summary:
      'Create or change a group: multiplier, limits, models, key lifetime, key budget (fields not sent stay)',
    tags: ['pricing'],
    auth: 'admin',
    scope: 'channels:write',
    params: z.object({ name: zGroupName }).strict(),
    body: z
      .object({
        multiplier: z.number().finite().min(0).max(1000).optional(),
        budget: zGroupBudget.nullable().optional(),
        ...zLimitFields,
        models: z.array(zModelPattern).max(500).nullable().optional(),
        max_key_lifetime_days: zLifetimeDays.nullable().optional(),
        guard: zGuard.nullable().optional(),
      })
      .strict(),
    response: GroupSchema,
    handler: ({ params, body, principal, ip }) => {
      const patch: GroupPatch = {};
      if (body.multiplier !== undefined) patch.multiplierPpm = multiplierPpm(body.multiplier, 'multiplier');
      if (body.rpm !== undefined) patch.rpm = body.rpm;
      if (body.tpm !== undefined) patch.tpm = body.tpm;
      if (body.max_concurrency !== undefined) patch.maxConcurrency = body.max_concurrency;
      if (body.models !== undefined) patch.models = body.models === null ? null : [...new Set(body.models)];
      if (body.max_key_lifetime_days !== undefined) patch.maxKeyLifetimeDays = body.max_key_lifetime_days;
      if (body.budget !== undefined)
        patch.budget =
          body.budget === null
            ? null
            : { amountNano: usdNano(body.budget.amount, 'budget.amount'), period: body.budget.period };
      if (body.guard !== undefined) patch.guard = body.guard && guardFromJson(body.guard);
      return actions.setGroup({ principal, ip }, params.name, patch, body);
    },
  });
}
