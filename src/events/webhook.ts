// The webhook outbox: every stored event with `next_attempt_at` set is due for delivery to
// MOLE_WEBHOOK_URL. A background loop (and a nudge after each new event) claims due rows, up to
// DELIVERIES_AT_ONCE posting side by side: a receiver that hangs holds one try for its timeout,
// not the events behind it, and a new event goes out while older tries wait. Each takes a
// lease (a conditional UPDATE only one instance can win, so gateways sharing
// PostgreSQL never deliver the same event at the same time), POSTs the event signed with
// MOLE_WEBHOOK_SECRET, and marks it delivered on a 2xx or reschedules it with capped,
// jittered exponential backoff. The state is all in the row, so a restart picks up where the
// last process stopped: delivery is at-least-once, and the stable event id lets receivers
// drop repeats. The secret is never logged, stored or put in an error.
import { createHmac, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Db } from '../db/index.js';
import type { Clock } from '../shared/clock.js';
import { loadUndici } from '../shared/undici.js';
import { toEventJson } from './service.js';

/** First retry after about this long; each further failure doubles it. */
export const BACKOFF_BASE_MS = 2_000;
/** Longest wait between two tries. */
export const BACKOFF_CAP_MS = 60 * 60_000;
/** Due rows taken per pass of the loop. */
const BATCH = 25;
/** POSTs in flight at once: a hanging receiver delays each try by the timeout, not every event. */
const DELIVERIES_AT_ONCE = 8;

/**
 * Wait before the try after `attempts` failed ones: base·2^(attempts-1), capped, of which a
 * random half is dropped ("equal jitter") so that failed deliveries do not retry in step.
 */
export function backoffMs(attempts: number, random: () => number = Math.random): number {
  const full = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(30, Math.max(0, attempts - 1)));
  return Math.round(full / 2 + (full / 2) * random());
}

/** `x-mole-signature` for a body sent at `t` (unix seconds): "t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>">". */
export function signature(secret: string, t: number, body: string): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

export interface WebhookOptions {
  url: string;
  secret: string;
  timeoutMs: number;
  pollMs: number;
}

export function createWebhookOutbox(deps: {
  db: Db;
  logger: Logger;
  options: WebhookOptions;
  /** Due times, backoff and leases (tests move it forward instead of sleeping). */
  now: Clock;
  random?: () => number;
}) {
  const { db, logger, options } = deps;
  const random = deps.random ?? Math.random;
  const instance = `i_${randomBytes(8).toString('hex')}`;
  // A claim outlives the longest POST, so it only lapses when its instance died mid-try.
  const leaseMs = options.timeoutMs + 30_000;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = true;
  const inFlight = new AbortController();
  /** Rows this instance is posting now: never claimed twice here, whatever the clock says. */
  const posting = new Set<number>();

  /** Takes one due row for this instance, or null when another instance holds it or it is done. */
  async function claim(id: number, now: number) {
    const res = await db
      .updateTable('events')
      .set({ lease_owner: instance, lease_until: now + leaseMs })
      .where('id', '=', id)
      .where('next_attempt_at', 'is not', null)
      .where('next_attempt_at', '<=', now)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return null;
    return (
      (await db
        .selectFrom('events')
        .selectAll()
        .where('id', '=', id)
        .where('lease_owner', '=', instance)
        .executeTakeFirst()) ?? null
    );
  }

  /** One POST; resolves to null on a 2xx, else what went wrong (never the secret or the URL). */
  async function post(body: string, uid: string, type: string): Promise<string | null> {
    const t = Math.floor(Date.now() / 1000);
    try {
      const res = await loadUndici().request(options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'MoleAPI-Webhook/1',
          'x-mole-event-id': uid,
          'x-mole-event-type': type,
          'x-mole-signature': signature(options.secret, t, body),
        },
        body,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
        signal: AbortSignal.any([inFlight.signal, AbortSignal.timeout(options.timeoutMs)]),
      });
      await res.body.dump().catch(() => {});
      return res.statusCode >= 200 && res.statusCode < 300 ? null : `HTTP ${res.statusCode}`;
    } catch (err) {
      // AbortSignal.timeout's DOMException has a numeric `code` (23): its name says what it was.
      const code = (err as { code?: unknown } | null)?.code;
      const name = typeof code === 'string' ? code : err instanceof Error ? err.name : 'Error';
      if (name === 'TimeoutError' || name === 'UND_ERR_HEADERS_TIMEOUT' || name === 'UND_ERR_BODY_TIMEOUT')
        return `timed out after ${options.timeoutMs} ms`;
      return `request failed: ${name}`.slice(0, 200);
    }
  }

  async function deliver(id: number): Promise<boolean> {
    if (posting.has(id)) return false;
    posting.add(id);
    try {
      return await claimAndPost(id);
    } finally {
      posting.delete(id);
    }
  }

  async function claimAndPost(id: number): Promise<boolean> {
    const row = await claim(id, deps.now());
    if (!row) return false;
    const body = JSON.stringify(toEventJson(row));
    const error = await post(body, row.uid, row.type);
    if (stopped && inFlight.signal.aborted) {
      // Shutting down mid-try: not a failure of the receiver; the row is due again at once.
      await db
        .updateTable('events')
        .set({ lease_owner: null, lease_until: null })
        .where('id', '=', id)
        .where('lease_owner', '=', instance)
        .execute();
      return false;
    }
    const now = deps.now();
    const attempts = Number(row.attempts) + 1;
    if (error === null) {
      await db
        .updateTable('events')
        .set({
          attempts,
          delivered_at: now,
          next_attempt_at: null,
          last_error: null,
          lease_owner: null,
          lease_until: null,
        })
        .where('id', '=', id)
        .execute();
      logger.debug({ event: row.uid, attempts }, 'webhook delivered');
      return true;
    }
    const wait = backoffMs(attempts, random);
    await db
      .updateTable('events')
      .set({ attempts, next_attempt_at: now + wait, last_error: error, lease_owner: null, lease_until: null })
      .where('id', '=', id)
      // A lapsed lease another instance took over: its outcome stands, not this one.
      .where('lease_owner', '=', instance)
      .where('delivered_at', 'is', null)
      .execute();
    logger.warn(
      { event: row.uid, attempts, error, retry_in_ms: wait },
      'webhook delivery failed; will retry',
    );
    return true;
  }

  /** Deliveries under way (their rows are in `posting`): the loop never waits on them. */
  const underWay = new Set<Promise<boolean>>();

  /**
   * Starts delivering what is due now, as far as free slots go; each delivery that ends looks
   * again. Answers the deliveries it started.
   */
  async function startDue(): Promise<Promise<boolean>[]> {
    const now = deps.now();
    const due = await db
      .selectFrom('events')
      .select('id')
      .where('next_attempt_at', 'is not', null)
      .where('next_attempt_at', '<=', now)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .orderBy('next_attempt_at')
      .orderBy('id')
      .limit(BATCH)
      .execute();
    const started: Promise<boolean>[] = [];
    for (const r of due) {
      if (stopped || posting.size >= DELIVERIES_AT_ONCE) break;
      if (posting.has(Number(r.id))) continue;
      const d = deliver(Number(r.id)).catch((err) => {
        logger.error({ err: String(err) }, 'webhook delivery failed to run');
        return false;
      });
      underWay.add(d);
      void d.finally(() => {
        underWay.delete(d);
        schedule(0);
      });
      started.push(d);
    }
    return started;
  }

  /** Delivers what is due now and waits for it (tests; the loop does not wait). Returns how many tries it made. */
  async function drainOnce(): Promise<number> {
    let tries = 0;
    for (;;) {
      if (stopped) return tries;
      const tried = (await Promise.all(await startDue())).filter(Boolean).length;
      tries += tried;
      if (tried === 0) return tries;
    }
  }

  function schedule(ms: number) {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(run, ms);
    timer.unref();
  }

  function run() {
    timer = null;
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = startDue()
      .then(() => {})
      .catch((err) => logger.error({ err: String(err) }, 'webhook outbox pass failed'))
      .finally(() => {
        running = null;
        if (again) {
          again = false;
          schedule(0);
        } else schedule(options.pollMs);
      });
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      schedule(0);
    },
    /** A new event is stored: look now rather than at the next poll. */
    nudge() {
      if (!stopped) schedule(0);
    },
    /** Runs one pass now (tests; the loop does the same on its own). */
    drainOnce,
    /** Stops the loop; a POST in flight is abandoned and its row stays due. */
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      inFlight.abort();
      await running;
      await Promise.allSettled([...underWay]);
    },
  };
}

export type WebhookOutbox = ReturnType<typeof createWebhookOutbox>;
