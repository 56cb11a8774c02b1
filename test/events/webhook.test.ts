// Webhook delivery: a real receiver verifies the documented signature; failed deliveries are
// retried with backoff (an injected clock, no sleeping) until a 2xx; events stored while the
// receiver was down survive a restart and arrive once; the secret is never logged or stored.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { BACKOFF_BASE_MS, BACKOFF_CAP_MS } from '../../src/events/webhook.js';
import { backends, startTestServer, type TestServer } from '../helpers/server.js';
import { startReceiver } from './receiver.js';

const SECRET = 'whsec-test-0123456789abcdef-' + Math.random().toString(36).slice(2);

/** The recipe the README documents for receivers. */
function verify(secret: string, header: string, rawBody: string, toleranceS = 300): boolean {
  const parts = Object.fromEntries(header.split(',').map((kv) => kv.split('=') as [string, string]));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > toleranceS) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest('hex');
  const given = parts.v1 ?? '';
  return given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

const webhookEnv = (url: string) => ({
  MOLE_WEBHOOK_URL: url,
  MOLE_WEBHOOK_SECRET: SECRET,
  MOLE_WEBHOOK_POLL_MS: '50',
  MOLE_WEBHOOK_TIMEOUT_MS: '2000',
});

const until = { timeout: 10_000, interval: 20 };

describe.each(backends())('webhook delivery (%s)', (backend) => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  async function receiver() {
    const r = await startReceiver();
    cleanup.push(() => r.close());
    return r;
  }
  async function server(opts: Parameters<typeof startTestServer>[0]) {
    const s = await startTestServer({ backend, ...opts });
    let closed = false;
    cleanup.push(async () => {
      if (!closed) await s.close();
    });
    return Object.assign(s, {
      stop: async () => {
        closed = true;
        await s.close();
      },
    });
  }

  it('POSTs each event signed as documented, with its stable id', async () => {
    const r = await receiver();
    const s = await server({ env: webhookEnv(r.url) });
    await s.services.events.emit({
      type: 'key.expiring',
      userId: 3,
      keyId: 5,
      data: { key_name: 'ci', days_before: 7 },
    });
    await expect.poll(() => r.received.length, until).toBe(1);
    const d = r.received[0]!;
    expect(d.headers['content-type']).toBe('application/json');
    expect(verify(SECRET, String(d.headers['x-mole-signature']), d.body)).toBe(true);
    expect(verify('another-secret-0123456789', String(d.headers['x-mole-signature']), d.body)).toBe(false);
    expect(verify(SECRET, String(d.headers['x-mole-signature']), d.body.replace('ci', 'cj'))).toBe(false);
    const body = JSON.parse(d.body);
    expect(Object.keys(body)).toEqual(['id', 'type', 'created_at', 'user_id', 'key_id', 'data']);
    expect(body).toMatchObject({
      type: 'key.expiring',
      user_id: 3,
      key_id: 5,
      data: { key_name: 'ci', days_before: 7 },
    });
    expect(d.headers['x-mole-event-id']).toBe(body.id);
    const listed = async () => (await s.api('GET', '/api/events')).body.data[0];
    await expect.poll(async () => (await listed()).delivery?.state, until).toBe('delivered');
    const { delivery, ...event } = await listed();
    expect(event).toEqual(body);
    expect(delivery).toMatchObject({ attempts: 1, last_error: null, next_attempt_at: null });
    // Delivered: no further tries.
    expect(await s.services.webhook!.drainOnce()).toBe(0);
    expect(r.received).toHaveLength(1);
  });

  it('retries a failing receiver with backoff until a 2xx, then stops', async () => {
    const r = await receiver();
    const statuses = [500, 503, 200];
    r.respond = () => statuses.shift() ?? 200;
    const s = await server({ env: webhookEnv(r.url) });
    await s.services.events.emit({ type: 'channel.disabled', userId: null, data: { channel_id: 1 } });
    await expect.poll(() => r.received.length, until).toBe(1);
    // Rescheduled: not due again before its backoff (at least half the base) has passed.
    const row = async () => s.services.storage.db.selectFrom('events').selectAll().executeTakeFirstOrThrow();
    await expect.poll(async () => Number((await row()).attempts), until).toBe(1);
    const failed = await row();
    expect(failed.last_error).toBe('HTTP 500');
    expect(failed.delivered_at).toBeNull();
    expect(Number(failed.next_attempt_at) - Number(failed.created_at)).toBeGreaterThanOrEqual(
      BACKOFF_BASE_MS / 2,
    );

    // The clock moves only between tries: a jump during one would lapse its lease.
    s.clock.advance(BACKOFF_CAP_MS);
    await expect.poll(async () => Number((await row()).attempts), until).toBe(2);
    expect(r.received).toHaveLength(2);
    expect((await row()).last_error).toBe('HTTP 503');
    s.clock.advance(BACKOFF_CAP_MS);
    await expect.poll(async () => Number((await row()).attempts), until).toBe(3);
    expect((await row()).delivered_at).not.toBeNull();
    expect((await row()).next_attempt_at).toBeNull();
    s.clock.advance(BACKOFF_CAP_MS);
    expect(await s.services.webhook!.drainOnce()).toBe(0);
    expect(r.received).toHaveLength(3);
    const ids = new Set(r.received.map((d) => d.headers['x-mole-event-id']));
    expect(ids.size).toBe(1);
    for (const d of r.received)
      expect(verify(SECRET, String(d.headers['x-mole-signature']), d.body)).toBe(true);
  });

  it('a receiver that hangs holds one try, not the events behind it; a timeout says so', async () => {
    const r = await receiver();
    let release = () => {};
    const held = new Promise<number>((resolve) => (release = () => resolve(200)));
    r.respond = () => held;
    // The timeout is far off: only deliveries side by side can all arrive while the first hangs.
    const s = await server({ env: { ...webhookEnv(r.url), MOLE_WEBHOOK_TIMEOUT_MS: '60000' } });
    for (let n = 0; n < 5; n++)
      await s.services.events.emit({ type: 'key.auto_disabled', userId: 9, keyId: n, data: { n } });
    await expect.poll(() => r.received.length, until).toBe(5);
    release();
    const rows = () => s.services.storage.db.selectFrom('events').selectAll().execute();
    await expect
      .poll(async () => (await rows()).filter((e) => e.delivered_at !== null).length, until)
      .toBe(5);
    expect((await rows()).map((e) => Number(e.attempts))).toEqual([1, 1, 1, 1, 1]);
    await s.stop();

    // A receiver that never answers: the row names the timeout, not a DOMException's code.
    r.respond = () => new Promise<number>(() => {});
    const t = await server({ env: { ...webhookEnv(r.url), MOLE_WEBHOOK_TIMEOUT_MS: '300' } });
    await t.services.events.emit({ type: 'channel.disabled', userId: null, data: { channel_id: 2 } });
    const row = async () => t.services.storage.db.selectFrom('events').selectAll().executeTakeFirstOrThrow();
    await expect.poll(async () => Number((await row()).attempts), until).toBe(1);
    expect((await row()).last_error).toBe('timed out after 300 ms');
  });

  it('delivers events stored before a restart once the receiver is back, once each', async () => {
    const r = await receiver();
    r.down = true;
    const url = r.url;

    const first = await server({ env: webhookEnv(url), keep: true });
    for (const n of [1, 2, 3])
      await first.services.events.emit({ type: 'key.auto_disabled', userId: 9, keyId: n, data: { n } });
    const tried = async (s: TestServer) =>
      (await s.services.storage.db.selectFrom('events').select(['attempts', 'delivered_at']).execute()).map(
        (e) => [Number(e.attempts) > 0, e.delivered_at !== null],
      );
    /** Waits until all three have been tried, each `delivered` or not. */
    const allTried = (s: TestServer, delivered: boolean) =>
      expect.poll(() => tried(s), until).toEqual(Array(3).fill([true, delivered]));
    // Each has been tried (the connection dropped) and waits for its backoff.
    await allTried(first, false);
    await first.stop();

    expect(r.received).toEqual([]);
    r.down = false;
    const second = await server({ env: webhookEnv(url), restartOf: first });
    second.clock.advance(BACKOFF_CAP_MS);
    second.services.webhook!.nudge();
    await allTried(second, true);
    second.clock.advance(BACKOFF_CAP_MS);
    expect(await second.services.webhook!.drainOnce()).toBe(0);
    expect(r.received.map((d) => JSON.parse(d.body).data.n).sort()).toEqual([1, 2, 3]);
    expect(new Set(r.received.map((d) => d.headers['x-mole-event-id'])).size).toBe(3);
  });

  it('never writes the webhook secret to logs, the database or an answer', async () => {
    const r = await receiver();
    r.respond = () => 500;
    const s = await server({ env: webhookEnv(r.url) });
    await s.services.events.emit({
      type: 'key.leaked',
      userId: 1,
      keyId: 1,
      data: { url: 'https://github.com/x/y', secret: SECRET, note: 'found' },
    });
    await expect.poll(() => r.received.length, until).toBeGreaterThan(0);
    await expect.poll(() => s.logs().includes('webhook delivery failed'), until).toBe(true);
    expect(s.logs()).not.toContain(SECRET);
    const rows = await s.services.storage.db.selectFrom('events').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(SECRET);
    expect(rows[0]!.last_error).toBe('HTTP 500');
    const listed = await s.api('GET', '/api/events');
    expect(listed.body.data[0].delivery).toMatchObject({ state: 'pending', last_error: 'HTTP 500' });
    expect(JSON.stringify(listed.body)).not.toContain(SECRET);
    expect(r.received.map((d) => d.body).join('')).not.toContain(SECRET);
  });
});

describe('webhook configuration', () => {
  it('needs a secret with the URL, and an http(s) URL', () => {
    expect(() => loadConfig({ MOLE_WEBHOOK_URL: 'https://hooks.example.test/x' })).toThrow(
      /MOLE_WEBHOOK_SECRET: required/,
    );
    expect(() => loadConfig({ MOLE_WEBHOOK_URL: 'ftp://x', MOLE_WEBHOOK_SECRET: SECRET })).toThrow(
      /MOLE_WEBHOOK_URL/,
    );
    expect(() =>
      loadConfig({ MOLE_WEBHOOK_URL: 'https://hooks.example.test/x', MOLE_WEBHOOK_SECRET: 'short' }),
    ).toThrow(/MOLE_WEBHOOK_SECRET/);
    expect(loadConfig({}).webhook).toBeNull();
  });
});
