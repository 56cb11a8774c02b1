// Channels carried over by `mole import new-api` (src/import/). The credential is sealed
// with MOLE_SECRET here, like every channel's; the plaintext is never stored.
import type { Db } from '../db/index.js';
import { withoutUserinfo } from './base-url.js';
import type { SecretBox } from './secretbox.js';
import type { ChannelInput } from './service.js';

/** A channel as created through the API, with its credential and status always given. */
export interface ImportedChannel extends Omit<ChannelInput, 'apiKey' | 'status' | 'responses'> {
  apiKey: string;
  status: 'active' | 'disabled';
  disabledReason: string | null;
  /** Which source row this is, e.g. "new-api:channels:3" (":2" for a multi-key channel's second key). */
  source: string;
}

/** Source markers of the channels imported earlier (deleted ones included: not imported again). */
export async function importedChannelSources(db: Db): Promise<Set<string>> {
  const rows = await db
    .selectFrom('channels')
    .select('import_source')
    .where('import_source', 'is not', null)
    .execute();
  return new Set(rows.map((r) => r.import_source!));
}

export async function importChannel(
  trx: Db,
  box: SecretBox,
  c: ImportedChannel,
  now = Date.now(),
): Promise<number> {
  const row = await trx
    .insertInto('channels')
    .values({
      name: c.name,
      type: c.type,
      base_url: withoutUserinfo(c.baseUrl),
      api_key_enc: box.seal(c.apiKey),
      models: JSON.stringify(c.models),
      model_map: c.modelMap === null ? null : JSON.stringify(c.modelMap),
      priority: c.priority,
      weight: c.weight,
      groups: c.groups === null ? null : JSON.stringify(c.groups),
      status: c.status,
      disabled_reason: c.status === 'disabled' ? c.disabledReason : null,
      responses: 1,
      created_at: now,
      updated_at: now,
      deleted_at: null,
      import_source: c.source,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return Number(row.id);
}

/**
 * Whether `box` opens what this database's channels were sealed with. A channel sealed under
 * another MOLE_SECRET would be imported as active, and the gateway would skip it at load
 * ("channel unreadable") while its models answered model_not_found. True with no channel yet.
 */
export async function opensSealedChannels(db: Db, box: SecretBox): Promise<boolean> {
  const row = await db
    .selectFrom('channels')
    .select('api_key_enc')
    .where('deleted_at', 'is', null)
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!row) return true;
  try {
    box.open(row.api_key_enc);
    return true;
  } catch {
    return false;
  }
}
