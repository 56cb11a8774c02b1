// Prices per model and multipliers per group. Small tables, held whole in memory and
// reloaded when a change is announced, so pricing a request touches no database.
import type { Db } from '../db/index.js';
import type { BudgetPeriod } from '../db/schema.js';
import type { Logger } from 'pino';
import { type InvalidationBus, reloadOnAnnouncement } from '../shared/bus.js';
import { nanoToUsd, PPM, type Price } from './money.js';

export interface PriceJson {
  model: string;
  input: number;
  output: number;
  cached_input: number | null;
  /** USD per 1M prompt-cache-write tokens; null = the input price. */
  cache_write: number | null;
  updated_at: string;
}

export interface GroupJson {
  name: string;
  multiplier: number;
  /** Default budget for each key of the group (USD per period); null = none. */
  budget: { amount: number; period: BudgetPeriod } | null;
  updated_at: string;
}

/** A group's default budget for its keys, in nano-USD. */
export interface GroupBudget {
  amountNano: number;
  period: BudgetPeriod;
}

/** What a PUT of a group changes: fields left undefined keep their value (a new group: 1×, no budget). */
export interface GroupChange {
  ppm?: number;
  budget?: GroupBudget | null;
}

/** Work done inside a change's transaction (the audit row): when it throws, the change is undone. */
export type OnChange<T> = (trx: Db, result: T) => Promise<void>;

const perM = (nano: number) => nanoToUsd(nano);

export async function createPriceCatalog(db: Db, bus: InvalidationBus, logger: Logger) {
  let prices = new Map<string, Price & { updatedAt: number }>();
  let groups = new Map<string, { ppm: number; budget: GroupBudget | null; updatedAt: number }>();

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
          updatedAt: Number(r.updated_at),
        },
      ]),
    );
    groups = new Map(
      g.map((r) => [
        r.name,
        {
          ppm: Number(r.multiplier_ppm),
          budget:
            r.budget_nano === null || r.budget_period === null
              ? null
              : { amountNano: Number(r.budget_nano), period: r.budget_period },
          updatedAt: Number(r.updated_at),
        },
      ]),
    );
  }
  await reload();
  const reloaded = reloadOnAnnouncement(
    bus,
    (msg) => msg.kind === 'prices' || msg.kind === 'group',
    reload,
    (err) => logger.error({ err: String(err) }, 'prices: reload failed; the previous prices stay'),
  );

  const groupJson = (name: string, ppm: number, budget: GroupBudget | null, at: number): GroupJson => ({
    name,
    multiplier: ppm / PPM,
    budget: budget && { amount: nanoToUsd(budget.amountNano), period: budget.period },
    updated_at: new Date(at).toISOString(),
  });

  const priceJson = (model: string, p: Price & { updatedAt: number }): PriceJson => ({
    model,
    input: perM(p.inputNanoPerM),
    output: perM(p.outputNanoPerM),
    cached_input: p.cachedInputNanoPerM === null ? null : perM(p.cachedInputNanoPerM),
    cache_write: p.cacheWriteNanoPerM === null ? null : perM(p.cacheWriteNanoPerM),
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
    listPrices: () =>
      [...prices.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([m, p]) => priceJson(m, p)),
    listGroups: () =>
      [...groups.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, g]): GroupJson => groupJson(name, g.ppm, g.budget, g.updatedAt)),

    /** `onSet` runs in the change's transaction (the audit row): when it throws, nothing changes. */
    async setPrice(model: string, p: Price, onSet?: OnChange<PriceJson>): Promise<PriceJson> {
      const now = Date.now();
      const row = {
        model,
        input_nano_per_m: p.inputNanoPerM,
        output_nano_per_m: p.outputNanoPerM,
        cached_input_nano_per_m: p.cachedInputNanoPerM,
        cache_write_nano_per_m: p.cacheWriteNanoPerM,
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
    async setGroup(name: string, change: GroupChange, onSet?: OnChange<GroupJson>): Promise<GroupJson> {
      const now = Date.now();
      const set = {
        ...(change.ppm !== undefined ? { multiplier_ppm: change.ppm } : {}),
        ...(change.budget !== undefined
          ? { budget_nano: change.budget?.amountNano ?? null, budget_period: change.budget?.period ?? null }
          : {}),
        updated_at: now,
      };
      const json = await db.transaction().execute(async (trx) => {
        const row = await trx
          .insertInto('groups')
          .values({ name, multiplier_ppm: change.ppm ?? PPM, ...set })
          .onConflict((oc) => oc.column('name').doUpdateSet(set))
          .returningAll()
          .executeTakeFirstOrThrow();
        const out = groupJson(
          name,
          Number(row.multiplier_ppm),
          row.budget_nano === null || row.budget_period === null
            ? null
            : { amountNano: Number(row.budget_nano), period: row.budget_period },
          now,
        );
        await onSet?.(trx, out);
        return out;
      });
      bus.publish({ kind: 'group', name });
      await reloaded();
      return json;
    },
  };
}

export type PriceCatalog = Awaited<ReturnType<typeof createPriceCatalog>>;
