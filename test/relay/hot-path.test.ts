// The relay's hot path reaches no database: keys, prices, channels, limits and the ledger are
// in memory, and the log row, spend and last use go out in the writer's batch. Counted, not
// timed: after a first request has warmed the caches, many more (plain and streamed) run
// with the batch writer held still, and the database sees no query at all.
import { describe, expect, it } from 'vitest';
import { countQueries } from '../helpers/queries.js';
import { backends, userWithKey, type TestServer } from '../helpers/server.js';
import { relaySuite } from '../helpers/relay-suite.js';

describe.each(backends())('relay hot path [%s]', (backend) => {
  let s: TestServer;
  relaySuite(
    // A writer interval far beyond the test: only the explicit flush below writes the batch.
    { backend, env: { MOLE_FLUSH_INTERVAL_MS: '60000' } },
    { apiKey: 'upstream-secret', prices: { 'gpt-4o-mini': { input: 0.15, output: 0.6 } } },
    (started) => {
      s = started.s;
    },
  );

  it('answers plain and streamed requests with no database query, then logs every one', async () => {
    const { secret } = await userWithKey(s);
    const call = (stream: boolean) =>
      fetch(s.url + '/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'gpt-4o-mini',
          stream,
          messages: [{ role: 'user', content: 'hello' }],
        }),
      }).then(async (r) => ({ status: r.status, body: await r.text() }));
    expect((await call(false)).status).toBe(200);
    await s.services.usageWriter.flush();
    const counted = countQueries(s);
    try {
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => call(i % 2 === 1)));
      for (const a of answers) expect(a.status).toBe(200);
      // The key-expiry notice scan runs soon after a key change, on its own timer: not a request's.
      expect(counted.seen.filter((q) => !/"expires_at" > .* "expires_at" <=/.test(q))).toEqual([]);
    } finally {
      counted.restore();
    }
    await s.services.usageWriter.flush();
    const logs = await s.api('GET', '/api/logs?limit=100');
    expect(logs.body.data.length).toBe(21);
  });
});
