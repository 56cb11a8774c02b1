// Accounts carried over by `mole import new-api` (src/import/). Written here because this
// domain owns the users table; the importer passes its own transaction.
import type { Db } from '../db/index.js';

export interface ImportedUser {
  username: string;
  /** The source's password hash as stored (bcrypt), verified and re-hashed at first sign-in. */
  passwordHash: string;
  role: 'admin' | 'user';
  group: string;
  balanceNano: number;
  status: 'active' | 'disabled';
  /** Which source row this is, e.g. "new-api:users:12". */
  source: string;
}

/** The MoleAPI user holding this name (live), with the source it was imported from, if any. */
export async function findUserForImport(
  db: Db,
  username: string,
): Promise<{ id: number; importSource: string | null } | undefined> {
  const row = await db
    .selectFrom('users')
    .select(['id', 'import_source'])
    .where('username', '=', username)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return row ? { id: Number(row.id), importSource: row.import_source } : undefined;
}

/** Every user imported earlier, by source marker (deleted ones too: they are not imported again). */
export async function importedUsers(
  db: Db,
): Promise<Map<string, { id: number; username: string; deleted: boolean }>> {
  const rows = await db
    .selectFrom('users')
    .select(['id', 'username', 'import_source', 'deleted_at'])
    .where('import_source', 'is not', null)
    .execute();
  return new Map(
    rows.map((r) => [
      r.import_source!,
      { id: Number(r.id), username: r.username, deleted: r.deleted_at !== null },
    ]),
  );
}

export async function importUser(trx: Db, u: ImportedUser, now = Date.now()): Promise<number> {
  const row = await trx
    .insertInto('users')
    .values({
      username: u.username,
      password_hash: u.passwordHash,
      role: u.role,
      group_name: u.group,
      balance_nano: u.balanceNano,
      status: u.status,
      created_at: now,
      updated_at: now,
      deleted_at: null,
      import_source: u.source,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return Number(row.id);
}
