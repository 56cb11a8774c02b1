// Two gateways sharing PostgreSQL drain one webhook outbox: each event is delivered once,
// however the two instances' passes interleave (a row is claimed by a conditional update
// only one of them can win).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { clusterReady } from './helpers.js';
import { type Receiver, startReceiver } from '../events/receiver.js';

const enabled = clusterReady('shared outbox suite', 'PostgreSQL');

describe.skipIf(!enabled)('two instances sharing one webhook outbox', () => {
  let r: Receiver;
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    r = await startReceiver();
    // A slow receiver widens the window in which both instances look at the same due rows.
    r.respond = () => new Promise((resolve) => setTimeout(() => resolve(200), 15));
    const env = {
      MOLE_WEBHOOK_URL: r.url,
      MOLE_WEBHOOK_SECRET: 'cluster-secret-0123456789abcdef',
      MOLE_WEBHOOK_POLL_MS: '20',
    };
    a = await startTestServer({ backend: 'postgres', env });
    b = await startTestServer({ shareWith: a, env });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await r?.close();
  });

  it('delivers each event exactly once', async () => {
    const N = 40;
    await Promise.all(
      Array.from({ length: N }, (_, n) =>
        (n % 2 ? a : b).services.events.emit({ type: 'key.auto_disabled', userId: 1, keyId: n, data: { n } }),
      ),
    );
    // Both instances' loops run, and both are also told to drain at the same moment.
    await Promise.all([
      a.services.webhook!.drainOnce(),
      b.services.webhook!.drainOnce(),
      a.services.webhook!.drainOnce(),
      b.services.webhook!.drainOnce(),
    ]);
    await expect
      .poll(() => new Set(r.received.map((d) => d.headers['x-mole-event-id'])).size, {
        timeout: 15_000,
        interval: 20,
      })
      .toBe(N);
    // Every row ends delivered after one try (the receiver may see the last POST just before
    // its row is marked).
    const undelivered = async () =>
      (
        await a.services.storage.db
          .selectFrom('events')
          .select(['delivered_at', 'attempts', 'next_attempt_at'])
          .execute()
      ).filter((e) => e.delivered_at === null || Number(e.attempts) !== 1 || e.next_attempt_at !== null)
        .length;
    await expect.poll(undelivered, { timeout: 15_000, interval: 20 }).toBe(0);
    await Promise.all([a.services.webhook!.drainOnce(), b.services.webhook!.drainOnce()]);
    expect(r.received).toHaveLength(N);
  });
});
