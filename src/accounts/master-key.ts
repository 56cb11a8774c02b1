// The admin credential for the management API. From MOLE_MASTER_KEY when set; otherwise
// generated on first start, printed once, and only its hash kept in the meta table (once the
// start has succeeded: a start that fails later must not print a key the next one forgets).
// The meta table also holds the database's id.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/index.js';
import { randomBase62 } from '../shared/base62.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export interface MasterKey {
  matches(candidate: string): boolean;
  /** Stores and prints a key this start generated (nothing otherwise); see createServices. */
  keep(): Promise<void>;
}

export async function loadMasterKey(
  db: Db,
  fromEnv: string | undefined,
  announce: (key: string) => void,
): Promise<MasterKey> {
  let hash: Buffer;
  let keep = async () => {};
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
      const generated = sha256(key);
      hash = generated;
      keep = async () => {
        keep = async () => {};
        await db
          .insertInto('meta')
          .values({ name: 'master_key_sha256', value: generated.toString('hex') })
          .execute();
        announce(key);
      };
    }
  }
  return {
    matches(candidate: string) {
      return timingSafeEqual(sha256(candidate), hash);
    },
    keep: () => keep(),
  };
}

/** A random id stored once per database: the same for every instance sharing it. */
export async function databaseId(db: Db): Promise<string> {
  await db
    .insertInto('meta')
    .values({ name: 'database_id', value: randomBytes(8).toString('hex') })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  return (
    await db.selectFrom('meta').select('value').where('name', '=', 'database_id').executeTakeFirstOrThrow()
  ).value;
}

/**
 * What changes when a PostgreSQL database is restored or copied, though its id (a row) comes
 * back with it: the object ids of the database (a new one for a copy made from it as a
 * template, or one restored into a new database) and of its meta table (which a restore from a
 * dump creates anew). A copy of the whole server's files (a snapshot, point-in-time recovery)
 * keeps both.
 */
export async function databaseIncarnation(db: Db): Promise<string> {
  const { rows } = await sql<{ mark: string }>`SELECT
      (SELECT oid FROM pg_database WHERE datname = current_database())::text || ':' ||
      CAST(CAST('meta' AS regclass) AS oid)::text AS mark`.execute(db);
  return rows[0]!.mark;
}

/** Reads the accounts' own table: a readiness probe that fails when the schema is gone. */
export async function probeDatabase(db: Db): Promise<void> {
  await db.selectFrom('meta').select('name').limit(1).execute();
}
