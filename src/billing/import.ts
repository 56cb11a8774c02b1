// Prices and group multipliers carried over by `mole import new-api` (src/import/). Existing
// rows are never overwritten: the importer skips models and groups already here.
import type { Db } from '../db/index.js';

export async function pricedModels(db: Db): Promise<Set<string>> {
  const rows = await db.selectFrom('prices').select('model').execute();
  return new Set(rows.map((r) => r.model));
}

export async function knownGroups(db: Db): Promise<Set<string>> {
  const rows = await db.selectFrom('groups').select('name').execute();
  return new Set(rows.map((r) => r.name));
}

export async function importPrice(
  trx: Db,
  model: string,
  p: { inputNanoPerM: number; outputNanoPerM: number },
  now = Date.now(),
): Promise<void> {
  await trx
    .insertInto('prices')
    .values({
      model,
      input_nano_per_m: p.inputNanoPerM,
      output_nano_per_m: p.outputNanoPerM,
      cached_input_nano_per_m: null,
      cache_write_nano_per_m: null,
      cache_write_1h_nano_per_m: null,
      web_search_nano_per_k: null,
      priority_ppm: null,
      updated_at: now,
    })
    .execute();
}

export async function importGroup(trx: Db, name: string, multiplierPpm: number, now = Date.now()) {
  await trx.insertInto('groups').values({ name, multiplier_ppm: multiplierPpm, updated_at: now }).execute();
}
