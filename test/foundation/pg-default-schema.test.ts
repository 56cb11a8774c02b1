// A PostgreSQL database shared with another app (or holding a leftover schema) that has its own
// Kysely migration tables: the gateway, on the database's default schema, migrates its own
// schema and is not misled by the other one's tables.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../src/db/open.js';
import { scratchDatabase } from '../helpers/process.js';
import { pgUrl } from '../helpers/server.js';

describe.skipIf(!pgUrl())('PostgreSQL default schema', () => {
  let db: { url: string; drop: () => Promise<void> };
  beforeAll(async () => {
    db = await scratchDatabase(pgUrl()!, 'mole_schema');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("migrates public although another schema holds Kysely's migration tables", async () => {
    const other = await openStorage({ databaseUrl: db.url, dataDir: '', pgSchema: 'other_app' });
    await other.close();
    const storage = await openStorage({ databaseUrl: db.url, dataDir: '' });
    await storage.close();
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const r = await c.query(
        "SELECT table_schema FROM information_schema.tables WHERE table_name IN ('api_keys', 'kysely_migration') ORDER BY 1",
      );
      expect(r.rows.map((x) => x.table_schema)).toEqual(['other_app', 'other_app', 'public', 'public']);
    } finally {
      await c.end();
    }
  });
});
