// How many Redis commands one relay request costs with REDIS_URL (admission/admission-redis.ts):
// with every limit, a budget and an ephemeral key's max_cost in force, admission is ONE script
// and settle ONE script, which also gives the concurrency slot back (before the answer, so
// nothing follows it). A client IP new to the key this hour costs one more call, when an IP guard
// watches the key (security/guard.ts); the same IP again costs none.
// Counted on node-redis's tracing channels in this process; the hold leases are long, so no
// heartbeat lands while a request is counted.
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { watchRedisCommands } from '../../src/shared/redis.spec.js';
import { redisUrl, userWithKey, type TestServer } from '../helpers/server.js';
import { offlineSuite } from '../helpers/relay-suite.js';
import { rawRelay, uniq } from './relay-helpers.js';

describe.skipIf(!redisUrl())('Redis round trips of one relay request', () => {
  let s: TestServer;
  const model = uniq('rt-model');
  /** Commands sent while `counting`, by name (and the script's SHA for EVALSHA). */
  let sent: string[] = [];
  let counting = false;
  let watch: { off(): void } | null = null;

  offlineSuite(
    { redis: true, env: { MOLE_HOLD_LEASE_MS: '600000', MOLE_TRUSTED_PROXIES: '127.0.0.1' } },
    { [model]: { input: 1, output: 2 } },
    (started) => {
      s = started;
    },
  );
  beforeAll(() => {
    watch = watchRedisCommands(
      () => counting,
      (name) => sent.push(name),
    );
  });
  afterAll(() => watch?.off());

  /** The commands of one request, split at the moments it is admitted and settled. */
  async function countOne(secret: string, ip: string) {
    const marks: Record<string, number> = {};
    const admission = s.services.admission;
    const { admit, settle } = admission;
    admission.admit = async (req) => {
      marks.admitStart = sent.length;
      const out = await admit(req);
      marks.admitEnd = sent.length;
      return out;
    };
    admission.settle = async (...a) => {
      marks.settleStart = sent.length;
      const out = await settle(...a);
      marks.settleEnd = sent.length;
      return out;
    };
    sent = [];
    counting = true;
    try {
      const r = await rawRelay(s, '/chat/completions', {
        key: secret,
        headers: { 'x-forwarded-for': ip },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'count me' }], max_tokens: 8 }),
      });
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      // Anything sent after the answer (nothing is expected) is sent by the time the next tick
      // runs (nothing else is in flight).
      await new Promise((done) => setImmediate(done));
    } finally {
      counting = false;
      admission.admit = admit;
      admission.settle = settle;
    }
    return {
      before: sent.slice(0, marks.admitStart),
      admit: sent.slice(marks.admitStart, marks.admitEnd),
      between: sent.slice(marks.admitEnd, marks.settleStart),
      settle: sent.slice(marks.settleStart, marks.settleEnd),
      after: sent.slice(marks.settleEnd),
    };
  }

  it('admission is one script and settle one, with limits, a budget and an ephemeral max_cost in force', async () => {
    const parent = await userWithKey(s, {
      balance: 100,
      key: {
        rpm: 1000,
        tpm: 1_000_000,
        max_concurrency: 10,
        budget: { amount: 50, period: 'daily' },
        guard: { max_ips_per_hour: 100, action: 'alert' },
      },
    });
    const minted = await rawRelay(s, '/keys/ephemeral', {
      key: parent.secret,
      body: JSON.stringify({ ttl_seconds: 600, max_cost: 5 }),
    });
    expect(minted.status, JSON.stringify(minted.json)).toBe(201);
    const secret = minted.json.key as string;

    // Both requests in one clock hour (and day): a new hour between them would count the IP
    // anew, a new day seed the budget's counter again.
    const thaw = s.clock.freeze();
    onTestFinished(thaw);

    // The first request: this client IP is new to the key this hour (one guard call before
    // admission), and its counters are new to Redis: the script answers NEEDS_SEED, the
    // stored values are read, and it runs again.
    const first = await countOne(secret, '203.0.113.7');
    expect(first.before).toEqual(['EVAL']);
    expect(first.admit, 'the script, then again with the stored values').toHaveLength(2);

    // Every request after it.
    const next = await countOne(secret, '203.0.113.7');
    expect(next.before, 'the IP is counted already this hour').toEqual([]);
    expect(next.admit, 'admission: one script').toHaveLength(1);
    expect(next.admit[0]).toMatch(/^EVALSHA:/);
    expect(next.between, 'nothing while forwarding').toEqual([]);
    expect(next.settle, 'settle: one script').toHaveLength(1);
    expect(next.settle[0]).toMatch(/^EVALSHA:/);
    expect(next.settle[0]).not.toBe(next.admit[0]);
    expect(next.after, 'nothing after the answer: settle gave the concurrency slot back').toEqual([]);
    console.log(
      `[redis round trips] first request: ${first.before.length} before admission, ${first.admit.length} admitting, ${first.settle.length} settling; then ${next.admit.length} + ${next.settle.length}`,
    );
  });
});
