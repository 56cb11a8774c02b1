// Prices per model and multipliers per group. Small tables, held whole in memory and
// reloaded when a change is announced, so pricing a request touches no database.
import type { Db } from '../db/index.js';
import type { Logger } from 'pino';
import { type InvalidationBus, reloadOnAnnouncement } from '../shared/bus.js';
import { nanoToUsd, PPM, type Price } from './money.js';
import { type Guard, type GuardJson, guardToJson, readGuard, storeGuard } from './guard.js';

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
  /** Default anomaly guard for the group's keys (a key's own guard replaces it); null = none. */
  guard: GuardJson | null;
  updated_at: string;
}

/** Work done inside a change's transaction (the audit row): when it throws, the change is undone. */
export type OnChange<T> = (trx: Db, result: T) => Promise<void>;

const perM = (nano: number) => nanoToUsd(nano);

export async function createPriceCatalog(db: Db, bus: InvalidationBus, logger: Logger) {
  let prices = new Map<string, Price & { updatedAt: number }>();
  let groups = new Map<string, { ppm: number; guard: Guard | null; updatedAt: number }>();

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
        { ppm: Number(r.multiplier_ppm), guard: readGuard(r.guard), updatedAt: Number(r.updated_at) },
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
    /** The group's anomaly guard, for all its keys (held in memory like the multiplier); null = none. */
    guard(group: string): Guard | null {
      return groups.get(group)?.guard ?? null;
    },
    /** Groups without a row bill at 1×. */
    multiplierPpm(group: string): number {
      return groups.get(group)?.ppm ?? PPM;
    },
    listPrices: () =>
      [...prices.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([m, p]) => priceJson(m, p)),
    listGroups: () =>
      [...groups.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(
          ([name, g]): GroupJson => ({
            name,
            multiplier: g.ppm / PPM,
            guard: g.guard === null ? null : guardToJson(g.guard),
            updated_at: new Date(g.updatedAt).toISOString(),
          }),
        ),

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
    /** `guard`: undefined keeps the group's current guard, null removes it. */
    async setGroup(
      name: string,
      ppm: number,
      onSet?: OnChange<GroupJson>,
      guard?: Guard | null,
    ): Promise<GroupJson> {
      const now = Date.now();
      const kept = guard === undefined ? (groups.get(name)?.guard ?? null) : guard;
      const json = {
        name,
        multiplier: ppm / PPM,
        guard: kept === null ? null : guardToJson(kept),
        updated_at: new Date(now).toISOString(),
      };
      const guardSet = guard === undefined ? {} : { guard: storeGuard(guard) };
      await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('groups')
          .values({ name, multiplier_ppm: ppm, updated_at: now, ...guardSet })
          .onConflict((oc) =>
            oc.column('name').doUpdateSet({ multiplier_ppm: ppm, updated_at: now, ...guardSet }),
          )
          .execute();
        await onSet?.(trx, json);
      });
      bus.publish({ kind: 'group', name });
      await reloaded();
      return json;
    },
  };
}

export type PriceCatalog = Awaited<ReturnType<typeof createPriceCatalog>>;
