// Redis writes that must take effect exactly once, whatever happens to the connection: a
// settlement charges what an answered request cost, and a release gives a hold back. When such
// a script fails because Redis could not be reached, its effect is kept here and written again
// once Redis answers, unless Redis shows that the lost one ran.
//
// How Redis shows it: each script first sets a mark, this instance's key for the current
// epoch, to the script's sequence number. One connection carries this instance's scripts and
// Redis runs them in the order sent, so the mark holds the number of the last one that ran:
// a lost script whose number is not above it ran. After an answer that may be lost (the
// command was sent) a new epoch begins, so nothing sent afterwards moves the old mark; it is
// read once every script sent in its epoch has been answered or has failed. A command refused
// while the client was offline was never sent: it is written again without a look.
//
// Not covered: a script cache flushed (Redis restarted) at the very moment of a cut, where a
// script's text goes out after a later one's hash; a Redis restart loses the counters anyway.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { LuaCall } from './lua.js';
import { isRedisUnreachable, neverSent, type RedisClient } from './redis.js';

/**
 * Lua: MARK(key, seq, ttl) sets the mark `key` to the sequence number `seq`, and its expiry to
 * `ttl` seconds when given (else it keeps the one it has: measured on Redis 7, a SET with EX
 * added 1.3–3.6 µs to a settlement-shaped script, one with KEEPTTL 0–0.7 µs). Scripts pass the
 * mark call's key and its arguments (`mark.keys[0]`, `...mark.args`).
 */
export const LUA_MARK = `local function MARK(key, seq, ttl)
  if ttl then redis.call('SET', key, seq, 'EX', ttl) else redis.call('SET', key, seq, 'KEEPTTL') end
end
`;

/** How long a mark outlives its last write with a ttl; a ttl goes with one write an hour. */
const MARK_TTL_S = '86400';
const MARK_TTL_EVERY_MS = 3_600_000;

/** A write: its script run with `mark` (MARK's keys and arguments) among its steps. */
export type OnceWrite<T> = (mark: LuaCall) => Promise<T>;

export interface ExactlyOnce {
  /**
   * Runs `write`. When Redis cannot be reached it rejects with that error and keeps `redo`,
   * which is run (as `run` runs a write) once Redis answers again, unless `write` ran.
   */
  run<T>(write: OnceWrite<T>, redo: OnceWrite<unknown>): Promise<T>;
  /** Writes kept and not yet written again. */
  pending(): number;
  /** Tries the kept writes once more (Redis still away: they are logged as left). */
  close(): Promise<void>;
}

interface Kept {
  epoch: number;
  seq: number;
  sent: boolean;
  redo: OnceWrite<unknown>;
}

/**
 * Keeps its marks under `${prefix}once:<instance>:<epoch>`; tries the kept writes every
 * `retryMs` (500) until they are written.
 */
export function createExactlyOnce(
  redis: RedisClient,
  prefix: string,
  deps: { logger: Logger; retryMs?: number },
): ExactlyOnce {
  const instance = randomBytes(8).toString('hex');
  const markKey = (epoch: number) => `${prefix}once:${instance}:${epoch}`;
  let epoch = 0;
  let seq = 0;
  /** When a write of the current epoch last set the mark's expiry (0: none has, or one failed). */
  let ttlSetAt = 0;
  /** Scripts sent and not yet answered, per epoch. */
  const inFlight = new Map<number, number>();
  const kept: Kept[] = [];
  let resolving: Promise<void> | null = null;
  let timer: NodeJS.Timeout | null = null;

  const settled = (e: number) => {
    const n = inFlight.get(e)! - 1;
    if (n === 0) inFlight.delete(e);
    else inFlight.set(e, n);
  };

  function run<T>(write: OnceWrite<T>, redo: OnceWrite<unknown>): Promise<T> {
    const e = epoch;
    const n = ++seq;
    inFlight.set(e, (inFlight.get(e) ?? 0) + 1);
    const now = Date.now();
    const args = [String(n)];
    if (now - ttlSetAt > MARK_TTL_EVERY_MS) {
      args.push(MARK_TTL_S);
      ttlSetAt = now;
    }
    return write({ keys: [markKey(e)], args }).then(
      (v) => {
        settled(e);
        return v;
      },
      (err: unknown) => {
        settled(e);
        // The mark may have no expiry yet: the next write gives it one.
        ttlSetAt = 0;
        if (!isRedisUnreachable(err)) throw err;
        const sent = !neverSent(err);
        kept.push({ epoch: e, seq: n, sent, redo });
        // What is sent from now on must not move the mark this lost script is judged by.
        if (sent && e === epoch) {
          epoch++;
          seq = 0;
          ttlSetAt = 0;
        }
        schedule();
        throw err;
      },
    );
  }

  function schedule() {
    if (timer || kept.length === 0) return;
    timer = setTimeout(() => {
      timer = null;
      void resolve();
    }, deps.retryMs ?? 500);
    timer.unref();
  }

  /** Writes again what did not run; what cannot be judged yet waits for the next try. */
  function resolve(): Promise<void> {
    resolving ??= (async () => {
      try {
        const ran = new Map<number, number>();
        const judge = async (k: Kept): Promise<boolean> => {
          if (k.sent && !ran.has(k.epoch)) {
            if (inFlight.has(k.epoch)) return false;
            try {
              ran.set(k.epoch, Number((await redis.get(markKey(k.epoch))) ?? 0));
            } catch (err) {
              if (!isRedisUnreachable(err))
                deps.logger.error({ err: String(err) }, 'redis: reading a mark failed');
              return false;
            }
          }
          if (k.sent && k.seq <= ran.get(k.epoch)!) return true;
          // A failure here keeps it again (run), to be judged by the mark of its new epoch.
          await run(k.redo, k.redo).catch((err: unknown) => {
            if (!isRedisUnreachable(err))
              deps.logger.error({ err: String(err) }, 'redis: a kept write failed');
          });
          return true;
        };
        // Each stays kept until it is judged: `pending()` counts it until its write is done.
        for (const k of [...kept]) if (await judge(k)) kept.splice(kept.indexOf(k), 1);
        for (const e of ran.keys())
          if (!kept.some((k) => k.epoch === e)) void redis.del(markKey(e)).catch(() => {});
      } finally {
        resolving = null;
        schedule();
      }
    })();
    return resolving;
  }

  return {
    run,
    pending: () => kept.length,
    async close() {
      if (timer) clearTimeout(timer);
      timer = null;
      if (kept.length) await resolve();
      if (timer) clearTimeout(timer);
      timer = null;
      if (kept.length)
        deps.logger.warn(
          { writes: kept.length },
          'redis: writes kept for Redis were not written (the database has their charges)',
        );
    },
  };
}
