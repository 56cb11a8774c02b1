// The admin credential for the management API. From MOLE_MASTER_KEY when set; otherwise
// generated on first start, printed once, and only its hash kept in the meta table.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Db } from '../db/index.js';
import { randomBase62 } from '../shared/base62.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export interface MasterKey {
  matches(candidate: string): boolean;
}

export async function loadMasterKey(
  db: Db,
  fromEnv: string | undefined,
  announce: (key: string) => void,
): Promise<MasterKey> {
  let hash: Buffer;
  if (fromEnv) {
    hash = sha256(fromEnv);
  } else {
    const row = await db
      .selectFrom('meta')
      .select('value')
      .where('name', '=', 'master_key_sha256')
      .executeTakeFirst();
    if (row) {
      hash = Buffer.from(row.value, 'hex');
    } else {
      const key = `mk-${randomBase62(48)}`;
      hash = sha256(key);
      await db
        .insertInto('meta')
        .values({ name: 'master_key_sha256', value: hash.toString('hex') })
        .execute();
      announce(key);
    }
  }
  return {
    matches(candidate: string) {
      return timingSafeEqual(sha256(candidate), hash);
    },
  };
}
