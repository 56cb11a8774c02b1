import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { recordingDb } from './recording.js';

describe('recordingDb', () => {
  it('records writes as SQLite would run them, answering no rows', async () => {
    const { db, statements } = recordingDb();
    const raw = await sql`update "api_keys" set "used_nano" = "used_nano" + ${5} where "id" = ${7}`.execute(
      db,
    );
    expect(raw.rows).toEqual([]);
    await db.insertInto('meta').values({ name: 'n', value: 'v' }).execute();
    await db.deleteFrom('sessions').where('user_id', '=', 3).execute();
    expect(statements).toEqual([
      { sql: 'update "api_keys" set "used_nano" = "used_nano" + ? where "id" = ?', parameters: [5, 7] },
      { sql: 'insert into "meta" ("name", "value") values (?, ?)', parameters: ['n', 'v'] },
      { sql: 'delete from "sessions" where "user_id" = ?', parameters: [3] },
    ]);
  });

  it('refuses loudly whatever would need an answer: selects, returning, a transaction of its own', async () => {
    const { db, statements } = recordingDb();
    await expect(db.selectFrom('api_keys').select('used_nano').execute()).rejects.toThrow(/recording db/);
    await expect(sql`select 1`.execute(db)).rejects.toThrow(/answers rows/);
    await expect(
      db.updateTable('users').set({ balance_nano: 1 }).where('id', '=', 1).returning('id').execute(),
    ).rejects.toThrow(/answers rows/);
    await expect(db.transaction().execute(async () => {})).rejects.toThrow(/transaction/);
    expect(statements).toEqual([]);
  });
});
