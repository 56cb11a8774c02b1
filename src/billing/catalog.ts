// Prices per model and multipliers per group. Small tables, held whole in memory and
// reloaded when a change is announced, so pricing a request touches no database.
import type { Db, OnChange } from '../db/index.js';
import type { BudgetPeriod } from '../db/schema.js';
import type { Logger } from 'pino';
import { z } from 'zod';
import { zTime } from '../http/route.js';
import { type InvalidationBus, reloadOnAnnouncement } from '../shared/bus.js';
import { compileModelList } from '../shared/models.js';
import { budgetAndLimitColumns } from '../shared/limit-columns.js';
import type { GroupPolicy } from '../limits/policy.js';
import { nanoToUsd, PPM, type Price } from './money.js';
import { type Guard, type GuardJson, guardToJson, readGuard, storeGuard } from './guard.js';

/** A model's price as the API answers it, USD per 1M tokens. */
export const PriceSchema = z
  .object({
    model: z.string(),
    input: z.number(),
    output: z.number(),
    cached_input: z.number().nullable().describe('cache reads; null = the input price'),
    cache_write: z.number().nullable().describe('prompt-cache writes; null = the input price'),
    cache_write_1h: z
      .number()
      .nullable()
      .describe('prompt-cache writes kept for an hour (Anthropic `ttl: "1h"`); null = twice the input price'),
    web_search_per_1k: z
      .number()
      .nullable()
      .describe(
        "USD per 1,000 searches of a provider's search tool (Anthropic, OpenAI Responses, Gemini grounding); null = 10",
      ),
    priority_multiplier: z
      .number()
      .nullable()
      .describe(
        'what an answer at OpenAI priority processing (`service_tier: "priority"`) costs against the standard one (2 = twice); null = priority is refused',
      ),
    updated_at: zTime,
  })
  .meta({ title: 'Price' });
export type PriceJson = z.infer<typeof PriceSchema>;

export interface GroupJson {
  name: string;
  multiplier: number;
  /** Defaults and ceilings for the group's keys and accounts (null = none). */
  rpm: number | null;
  tpm: number | null;
  max_concurrency: number | null;
  /** What the group may use at all (null = every model its channels serve). */
  models: string[] | null;
  /** Keys of the group must expire within this many days (null = no rule). */
  max_key_lifetime_days: number | null;
  /** Default budget for each key of the group (USD per period); null = none. */
  budget: { amount: number; period: BudgetPeriod } | null;
  /** Default anomaly guard for the group's keys (both it and a key's own apply); null = none. */
  guard: GuardJson | null;
  updated_at: string;
}

/** A group's default budget for its keys, in nano-USD. */
export interface GroupBudget {
  amountNano: number;
  period: BudgetPeriod;
}

/** A change to a group: only the fields given change (a new group starts at 1× and no limits). */
export interface GroupPatch {
  multiplierPpm?: number;
  rpm?: number | null;
  tpm?: number | null;
  maxConcurrency?: number | null;
  models?: string[] | null;
  maxKeyLifetimeDays?: number | null;
  budget?: GroupBudget | null;
  guard?: Guard | null;
}

type GroupRow = {
  name: string;
  multiplier_ppm: number;
  updated_at: number;
  rpm_limit: number | null;
  tpm_limit: number | null;
  max_concurrency: number | null;
  models: string | null;
  max_key_lifetime_days: number | null;
  budget_nano: number | null;
  budget_period: BudgetPeriod | null;
  guard: string | null;
};

const numOrNull = (v: number | null | undefined) => (v === null || v === undefined ? null : Number(v));

function groupJson(r: GroupRow): GroupJson {
  return {
    name: r.name,
    multiplier: Number(r.multiplier_ppm) / PPM,
    rpm: numOrNull(r.rpm_limit),
    tpm: numOrNull(r.tpm_limit),
    max_concurrency: numOrNull(r.max_concurrency),
    models: r.models === null ? null : (JSON.parse(r.models) as string[]),
    max_key_lifetime_days: numOrNull(r.max_key_lifetime_days),
    budget:
      r.budget_nano == null || r.budget_period == null
        ? null
        : { amount: nanoToUsd(Number(r.budget_nano)), period: r.budget_period },
    guard: guardJsonOf(readGuard(r.guard)),
    updated_at: new Date(Number(r.updated_at)).toISOString(),
  };
}

const guardJsonOf = (g: Guard | null) => (g === null ? null : guardToJson(g));

function policyOf(j: GroupJson): GroupPolicy {
  return {
    rpm: j.rpm,
    tpm: j.tpm,
    maxConcurrency: j.max_concurrency,
    models: compileModelList(j.models),
    maxKeyLifetimeDays: j.max_key_lifetime_days,
  };
}

const perM = (nano: number) => nanoToUsd(nano);

export async function createPriceCatalog(db: Db, bus: InvalidationBus, logger: Logger) {
  let prices = new Map<string, Price & { updatedAt: number }>();
  let groups = new Map<
    string,
    {
      ppm: number;
      json: GroupJson;
      policy: GroupPolicy;
      budget: GroupBudget | null;
      guard: Guard | null;
    }
  >();

  async function reload() {
    const [p, g] = await Promise.all([
      db.selectFrom('prices').selectAll().execute(),
      db.selectFrom('groups').selectAll().execute(),
    ]);
    prices = new Map(
      p.map((r) => [
        r.model,
        {
          inputNanoPerM: Number(r.input_nano_per_m),
          outputNanoPerM: Number(r.output_nano_per_m),
          cachedInputNanoPerM: r.cached_input_nano_per_m === null ? null : Number(r.cached_input_nano_per_m),
          cacheWriteNanoPerM: r.cache_write_nano_per_m === null ? null : Number(r.cache_write_nano_per_m),
          cacheWrite1hNanoPerM:
            r.cache_write_1h_nano_per_m === null ? null : Number(r.cache_write_1h_nano_per_m),
          webSearchNanoPerK: r.web_search_nano_per_k == null ? null : Number(r.web_search_nano_per_k),
          priorityPpm: r.priority_ppm == null ? null : Number(r.priority_ppm),
          updatedAt: Number(r.updated_at),
        },
      ]),
    );
    groups = new Map(
      g.map((r) => {
        const json = groupJson(r);
        const budget =
          r.budget_nano == null || r.budget_period == null
            ? null
            : { amountNano: Number(r.budget_nano), period: r.budget_period };
        const guard = readGuard(r.guard);
        return [r.name, { ppm: Number(r.multiplier_ppm), json, policy: policyOf(json), budget, guard }];
      }),
    );
  }
  await reload();
  const reloaded = reloadOnAnnouncement(
    bus,
    (msg) => msg.kind === 'prices' || msg.kind === 'group' || msg.kind === 'all',
    reload,
    (err) => logger.error({ err: String(err) }, 'prices: reload failed; the previous prices stay'),
  );

  const priceJson = (model: string, p: Price & { updatedAt: number }): PriceJson => ({
    model,
    input: perM(p.inputNanoPerM),
    output: perM(p.outputNanoPerM),
    cached_input: p.cachedInputNanoPerM === null ? null : perM(p.cachedInputNanoPerM),
    cache_write: p.cacheWriteNanoPerM === null ? null : perM(p.cacheWriteNanoPerM),
    cache_write_1h: p.cacheWrite1hNanoPerM === null ? null : perM(p.cacheWrite1hNanoPerM),
    web_search_per_1k: p.webSearchNanoPerK === null ? null : nanoToUsd(p.webSearchNanoPerK),
    priority_multiplier: p.priorityPpm === null ? null : p.priorityPpm / PPM,
    updated_at: new Date(p.updatedAt).toISOString(),
  });

  return {
    /** null = not priced: the relay refuses it. */
    price(model: string): Price | null {
      return prices.get(model) ?? null;
    },
    /** Groups without a row bill at 1×. */
    multiplierPpm(group: string): number {
      return groups.get(group)?.ppm ?? PPM;
    },
    /** The group's default budget for each of its keys; null = none. */
    groupBudget(group: string): GroupBudget | null {
      return groups.get(group)?.budget ?? null;
    },
    /** The group's anomaly guard, for all its keys (held in memory like the multiplier); null = none. */
    guard(group: string): Guard | null {
      return groups.get(group)?.guard ?? null;
    },
    /** The names of the priced models. */
    pricedModels: (): string[] => [...prices.keys()],
    listPrices: () =>
      [...prices.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([m, p]) => priceJson(m, p)),
    /** A group's limits, models and key lifetime; null = a group without a row (no policy). */
    group(name: string): GroupPolicy | null {
      return groups.get(name)?.policy ?? null;
    },
    listGroups: () =>
      [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, g]): GroupJson => g.json),

    /** `onSet` runs in the change's transaction (the audit row): when it throws, nothing changes. */
    async setPrice(model: string, p: Price, onSet?: OnChange<PriceJson>): Promise<PriceJson> {
      const now = Date.now();
      const row = {
        model,
        input_nano_per_m: p.inputNanoPerM,
        output_nano_per_m: p.outputNanoPerM,
        cached_input_nano_per_m: p.cachedInputNanoPerM,
        cache_write_nano_per_m: p.cacheWriteNanoPerM,
        cache_write_1h_nano_per_m: p.cacheWrite1hNanoPerM,
        web_search_nano_per_k: p.webSearchNanoPerK,
        priority_ppm: p.priorityPpm,
        updated_at: now,
      };
      const json = priceJson(model, { ...p, updatedAt: now });
      await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('prices')
          .values(row)
          .onConflict((oc) =>
            oc.column('model').doUpdateSet({
              input_nano_per_m: row.input_nano_per_m,
              output_nano_per_m: row.output_nano_per_m,
              cached_input_nano_per_m: row.cached_input_nano_per_m,
              cache_write_nano_per_m: row.cache_write_nano_per_m,
              cache_write_1h_nano_per_m: row.cache_write_1h_nano_per_m,
              web_search_nano_per_k: row.web_search_nano_per_k,
              priority_ppm: row.priority_ppm,
              updated_at: now,
            }),
          )
          .execute();
        await onSet?.(trx, json);
      });
      bus.publish({ kind: 'prices' });
      await reloaded();
      return json;
    },
    /** False when the model had no price (nothing changes, `onDeleted` does not run). */
    async deletePrice(model: string, onDeleted?: OnChange<string>): Promise<boolean> {
      const deleted = await db.transaction().execute(async (trx) => {
        const r = await trx.deleteFrom('prices').where('model', '=', model).executeTakeFirst();
        const gone = Number(r.numDeletedRows) > 0;
        if (gone) await onDeleted?.(trx, model);
        return gone;
      });
      bus.publish({ kind: 'prices' });
      await reloaded();
      return deleted;
    },
    /** Creates or changes a group: only the fields in `patch` change. */
    async setGroup(name: string, patch: GroupPatch, onSet?: OnChange<GroupJson>): Promise<GroupJson> {
      const now = Date.now();
      const set: Partial<GroupRow> = { updated_at: now, ...budgetAndLimitColumns(patch) };
      if (patch.multiplierPpm !== undefined) set.multiplier_ppm = patch.multiplierPpm;
      if (patch.models !== undefined)
        set.models = patch.models === null ? null : JSON.stringify(patch.models);
      if (patch.maxKeyLifetimeDays !== undefined) set.max_key_lifetime_days = patch.maxKeyLifetimeDays;
      if (patch.guard !== undefined) set.guard = storeGuard(patch.guard);
      const json = await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('groups')
          .values({ name, multiplier_ppm: PPM, ...set, updated_at: now })
          .onConflict((oc) => oc.column('name').doUpdateSet(set))
          .execute();
        const row = await trx
          .selectFrom('groups')
          .selectAll()
          .where('name', '=', name)
          .executeTakeFirstOrThrow();
        const j = groupJson(row);
        await onSet?.(trx, j);
        return j;
      });
      bus.publish({ kind: 'group', name });
      await reloaded();
      return json;
    },
  };
}

export type PriceCatalog = Awaited<ReturnType<typeof createPriceCatalog>>;
