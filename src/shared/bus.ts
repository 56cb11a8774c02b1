// Cache invalidation messages. Every change to a key, user, group, channel or price is
// announced here; caches subscribe. In-process by default; with REDIS_URL the same messages
// travel over Redis pub/sub so every instance drops the same entries.
//
// Pub/sub keeps nothing: a subscriber that is away misses what is published meanwhile, and a
// publish made while the link is down fails. Neither may leave a cache stale for good (a key
// switched off during a Redis blip would keep working elsewhere), so a subscriber that
// reconnects drops everything itself, and a publisher whose announcement failed announces
// `all` once it reaches Redis again.
import { randomUUID } from 'node:crypto';
import { isClientClosed, type RedisClient } from './redis.js';

export type Invalidation =
  | { kind: 'key'; keyId: number; hashes: string[] }
  | { kind: 'user'; userId: number }
  | { kind: 'group'; name: string }
  | { kind: 'channels' }
  | { kind: 'prices' }
  /** Keys were imported (`mole import new-api`): reload the set of imported key hashes. */
  | { kind: 'imported-keys' }
  /** Announcements may have been missed: every cache drops (or reloads) everything. */
  | { kind: 'all' };

type Handler = (msg: Invalidation) => void;
/** How often a failed announcement is retried (as `all`) until Redis takes it. */
const RETRY_MS = 500;

/** The channel of the gateways that share the Redis prefix `prefix` (one database's). */
const channelOf = (prefix: string) => `${prefix}:invalidate`;

export class InvalidationBus {
  private readonly handlers: Handler[] = [];
  private readonly origin = randomUUID();
  private pub: RedisClient | null = null;
  /**
   * The shared channel: one per database (pub/sub ignores Redis database numbers), so gateways
   * of other databases on the same Redis neither hear these announcements nor drop caches for them.
   */
  channel = '';
  /** The retry of a failed announcement, while one is pending. */
  private retry: NodeJS.Timeout | null = null;
  /** Announcements Redis has not taken yet. */
  private readonly unsent = new Set<Promise<unknown>>();

  on(handler: Handler): void {
    this.handlers.push(handler);
  }

  publish(msg: Invalidation): void {
    this.deliver(msg);
    if (!this.pub) return;
    const sent = this.pub.publish(this.channel, this.encode(msg)).catch((err: unknown) => this.missed(err));
    this.unsent.add(sent);
    void sent.finally(() => this.unsent.delete(sent));
  }

  /**
   * Resolves once Redis has taken (or failed to take) every announcement made so far: a change
   * answered after it is on its way to every instance, not still in this one's hands.
   */
  async sent(): Promise<void> {
    if (this.unsent.size > 0) await Promise.all(this.unsent);
  }

  /** Publishes and waits until Redis has taken the message (a short-lived process, e.g. `mole import`). */
  async publishAndWait(msg: Invalidation): Promise<void> {
    this.deliver(msg);
    await this.pub?.publish(this.channel, JSON.stringify({ origin: this.origin, msg }));
  }

  /** Publishes to the shared channel of `prefix` without listening (a process that holds no caches). */
  publishTo(pub: RedisClient, prefix: string): void {
    this.pub = pub;
    this.channel = channelOf(prefix);
  }

  private deliver(msg: Invalidation): void {
    for (const h of this.handlers) h(msg);
  }

  private encode(msg: Invalidation): string {
    return JSON.stringify({ origin: this.origin, msg });
  }

  /**
   * An announcement did not reach Redis: the other instances are told to drop everything once
   * it does (one `all` stands for every announcement lost meanwhile). A closed client (this
   * process is stopping) has no one left to tell.
   */
  private missed(err: unknown): void {
    if (isClientClosed(err) || this.retry !== null) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.pub?.publish(this.channel, this.encode({ kind: 'all' })).catch((e: unknown) => this.missed(e));
    }, RETRY_MS);
    this.retry.unref();
  }

  /** Joins the shared channel of `prefix`: `pub` publishes, `sub` (a dedicated connection) listens. */
  async connectRedis(pub: RedisClient, sub: RedisClient, prefix: string): Promise<void> {
    this.pub = pub;
    this.channel = channelOf(prefix);
    // Every 'ready' after the first is a reconnection, its subscription restored: whatever was
    // published while it was away is lost, so everything goes.
    sub.on('ready', () => this.deliver({ kind: 'all' }));
    await sub.subscribe(this.channel, (raw: string) => {
      try {
        const { origin, msg } = JSON.parse(raw) as { origin: string; msg: Invalidation };
        if (origin !== this.origin) this.deliver(msg);
      } catch {
        /* ignore foreign messages */
      }
    });
  }
}

/**
 * Reloads a whole-table cache on each announcement `wanted` accepts. Reloads run one at a
 * time: two overlapping reads can finish out of order, and the older one would then replace
 * the newer table for good (two prices set back to back left the first alone in another
 * instance's cache). Announcements that arrive during a reload are folded into one more
 * reload after it, which starts after all of them. A failed reload keeps the previous data
 * and is reported (a message can arrive while the database is closing); the next
 * announcement retries. The returned function waits until no reload is running or owed, so
 * whoever made a change reads it back.
 */
export function reloadOnAnnouncement(
  bus: InvalidationBus,
  wanted: (msg: Invalidation) => boolean,
  reload: () => Promise<void>,
  onError: (err: unknown) => void,
): () => Promise<void> {
  let running: Promise<void> | null = null;
  let owed = false;
  const reloadUntilCurrent = async () => {
    try {
      do {
        owed = false;
        await reload().catch(onError);
      } while (owed);
    } finally {
      // Even if onError threw: a loop left marked running would take no announcement again.
      running = null;
    }
  };
  bus.on((msg) => {
    if (!wanted(msg)) return;
    if (running) owed = true;
    else running = reloadUntilCurrent();
  });
  return async () => {
    await running;
  };
}
