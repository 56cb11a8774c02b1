// A PostgreSQL database restored from a backup keeps its id, and with it its Redis namespace:
// the counters of spend and holds written since the backup would govern admission (a balance
// restored lower than Redis's could be overspent). The first instance on the restored database
// sees that it is not the one Redis last counted for, and clears the namespace.
import { afterEach, describe, expect, it } from 'vitest';
import { pgOnce } from '../helpers/pg-once.js';
import { pgUrl, startTestServer, type TestServer, userWithKey } from '../helpers/server.js';
import { addPricedChannel } from '../relay/relay-helpers.js';
import { clusterReady } from './helpers.js';

const chat = (s: TestServer, secret: string) =>
  fetch(s.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'mole-mini',
      messages: [{ role: 'user', content: 'dig' }],
      max_tokens: 12,
    }),
  });

/**
 * Makes `s`'s database another incarnation of itself, as a restore from a dump does (its tables
 * come back anew, the meta table's rows with them), then runs `alsoSql` in the same transaction.
 */
async function recreateMeta(s: TestServer, alsoSql = ''): Promise<void> {
  const schema = `"${s.pgSchema}"`;
  await pgOnce(
    pgUrl()!,
    `BEGIN;
     CREATE TABLE ${schema}.meta_anew (LIKE ${schema}.meta INCLUDING ALL);
     INSERT INTO ${schema}.meta_anew SELECT * FROM ${schema}.meta;
     DROP TABLE ${schema}.meta;
     ALTER TABLE ${schema}.meta_anew RENAME TO meta;
     ${alsoSql}
     COMMIT;`,
  );
}

describe.skipIf(!clusterReady('restored-database suite'))('a restored database under Redis', () => {
  const servers: TestServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0).reverse()) await s.close();
  });

  it('its first instance clears the counters Redis kept of a later state', async () => {
    const first = await startTestServer({ backend: 'postgres', redis: true, keep: true });
    await addPricedChannel(first, { type: 'mock' }, { 'mole-mini': { input: 0.15, output: 0.6 } });
    const { user, secret } = await userWithKey(first, { balance: 1 });
    expect((await chat(first, secret)).status).toBe(200);
    await first.services.flush();
    await first.close();
    // "Restore" a backup taken when the account had nothing left.
    await recreateMeta(first, `UPDATE "${first.pgSchema}".users SET balance_nano = 0 WHERE id = ${user.id};`);
    const restored = await startTestServer({ restartOf: first, redis: true, keep: true });
    expect(restored.logs()).toMatch(/the database was restored or recreated since Redis last saw it/);
    // Admission goes by the restored balance, not by what Redis had counted since.
    const refused = await chat(restored, secret);
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('insufficient_quota');

    // The same database again: its counters are its own and stay.
    await restored.close();
    const again = await startTestServer({ restartOf: restored, redis: true });
    servers.push(again);
    expect(again.logs()).not.toMatch(/restored or recreated/);
  });

  it('a copy whose original still runs on the same Redis is refused, not let clear its counters', async () => {
    const original = await startTestServer({ backend: 'postgres', redis: true });
    servers.push(original);
    await addPricedChannel(original, { type: 'mock' }, { 'mole-mini': { input: 0.15, output: 0.6 } });
    const { secret } = await userWithKey(original, { balance: 1 });
    expect((await chat(original, secret)).status).toBe(200);
    // The same database id on another incarnation (as a restored copy has), while the original runs.
    await recreateMeta(original);
    await expect(startTestServer({ shareWith: original, redis: true })).rejects.toThrow(
      /counts for another copy of this database, and a gateway on that copy is running/,
    );
    // The original's counters are untouched: it goes on admitting by them.
    expect((await chat(original, secret)).status).toBe(200);
  });
});
