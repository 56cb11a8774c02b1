// Keys carried over by `mole import new-api` (src/import/). Their secrets are the source's
// own ("sk-" + 48 characters, no checksum): only the SHA-256 hash is stored, and the row is
// marked `imported` so the verifier lets that hash past the checksum rule (verify.ts).
import type { Db } from '../db/index.js';
import { displayKey, hashKey } from './format.js';
import { newKeyRow } from './service.js';

export interface ImportedKey {
  userId: number;
  /** The full secret as clients send it ("sk-…"); hashed here, never stored. */
  secret: string;
  name: string;
  status: 'active' | 'disabled';
  models: string[] | null;
  allowedIps: string[] | null;
  quotaNano: number | null;
  usedNano: number;
  group: string | null;
  /** The group was chosen for the key (not its owner's): it applies whatever the owner's group. */
  groupByAdmin: boolean;
  expiresAt: number | null;
  createdAt: number;
  /** Which source row this is, e.g. "new-api:tokens:12". */
  source: string;
}

/** Which of these secrets' hashes are already held by a key (deleted ones included). */
export async function knownKeyHashes(db: Db, hashes: string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (let i = 0; i < hashes.length; i += 500) {
    const chunk = hashes.slice(i, i + 500);
    const rows = await db
      .selectFrom('api_keys')
      .select(['key_hash', 'prev_key_hash'])
      .where((eb) => eb.or([eb('key_hash', 'in', chunk), eb('prev_key_hash', 'in', chunk)]))
      .execute();
    for (const r of rows) {
      found.add(r.key_hash);
      if (r.prev_key_hash) found.add(r.prev_key_hash);
    }
  }
  return found;
}

/**
 * Which of these source markers were imported before (deleted keys included): a key rotated
 * since no longer holds its old hash, and must not come back under it.
 */
export async function importedKeySources(db: Db, sources: string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (let i = 0; i < sources.length; i += 500) {
    const rows = await db
      .selectFrom('api_keys')
      .select('import_source')
      .where('import_source', 'in', sources.slice(i, i + 500))
      .execute();
    for (const r of rows) if (r.import_source) found.add(r.import_source);
  }
  return found;
}

export async function importKey(trx: Db, k: ImportedKey, now = Date.now()): Promise<number> {
  const row = await trx
    .insertInto('api_keys')
    .values({
      ...newKeyRow(
        { userId: k.userId, name: k.name, keyHash: hashKey(k.secret), display: displayKey(k.secret) },
        now,
      ),
      status: k.status,
      models: k.models === null ? null : JSON.stringify(k.models),
      allowed_ips: k.allowedIps === null ? null : JSON.stringify(k.allowedIps),
      quota_nano: k.quotaNano,
      used_nano: k.usedNano,
      group_name: k.group,
      group_by_admin: k.group !== null && k.groupByAdmin ? 1 : 0,
      expires_at: k.expiresAt,
      created_at: k.createdAt,
      imported: 1,
      import_source: k.source,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return Number(row.id);
}
