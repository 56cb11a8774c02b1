// The Redis client (node-redis) every domain with REDIS_URL talks through. node-redis rather
// than ioredis: a relay request runs two scripts, and node-redis issues a command for about a
// third of ioredis's CPU (2.6 against 8.7 µs an EVALSHA; a plain relay request on PostgreSQL +
// Redis went from 159 to 134 µs of gateway CPU in `npm run bench`, 5 rounds A/B).
import {
  ClientClosedError,
  ClientOfflineError,
  ConnectionTimeoutError,
  createClient,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
  TimeoutError,
  TimeoutReadError,
} from '@redis/client';
import type { Logger } from 'pino';
import { nowAndThen } from './now-and-then.js';

/**
 * A client for `url`, not yet connected (`connect()` it). RESP2, as the scripts expect: a
 * Lua false or a missing value answers null.
 *
 * While the connection is down a command fails at once (the relay answers 503) rather than
 * waiting in a queue for Redis to come back; the client reconnects on its own. A first
 * connection that fails makes `connect()` fail (a gateway does not start without its Redis).
 * With `timeoutMs`, a command whose answer has not come after that long fails too (Redis
 * stalled, or a link that drops packets without closing): sent, it fails as a lost answer
 * would (the script may have run), and its late answer is discarded.
 */
export function createRedis(url: string, logger?: Logger, opts: { timeoutMs?: number } = {}) {
  let connected = false;
  const client = createClient({
    url,
    RESP: 2,
    disableOfflineQueue: true,
    ...(opts.timeoutMs ? { commandOptions: { timeout: opts.timeoutMs, rejectInFlight: true } } : {}),
    socket: {
      reconnectStrategy: (retries, cause) => (connected ? Math.min(50 * (retries + 1), 1_000) : cause),
    },
  });
  client.on('ready', () => {
    connected = true;
  });
  // Without a listener an 'error' event would end the process; each reconnect attempt emits one.
  const report = nowAndThen(10_000, (err: unknown) =>
    logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'redis: connection error'),
  );
  client.on('error', report);
  return client;
}

export type RedisClient = ReturnType<typeof createRedis>;

/**
 * Whether `err` says Redis could not be reached (the connection is down, was cut while the
 * command waited, or timed out), as opposed to an answer from Redis. The request that met it
 * is answered 503 service_unavailable: a client may retry it, and it was not charged.
 */
export const isRedisUnreachable = (err: unknown): boolean =>
  err instanceof ClientOfflineError ||
  err instanceof SocketClosedUnexpectedlyError ||
  err instanceof ClientClosedError ||
  err instanceof ConnectionTimeoutError ||
  err instanceof SocketTimeoutError ||
  err instanceof TimeoutError ||
  err instanceof TimeoutReadError;

/** Whether `err` (one isRedisUnreachable knows) failed a command that was never sent. */
export const neverSent = (err: unknown): boolean =>
  err instanceof ClientOfflineError || err instanceof TimeoutError;
