// The Redis client (node-redis) every domain with REDIS_URL talks through. node-redis rather
// than ioredis: a relay request runs two scripts, and node-redis issues a command for about a
// third of ioredis's CPU (2.6 against 8.7 µs an EVALSHA; a plain relay request on PostgreSQL +
// Redis went from 159 to 134 µs of gateway CPU in `npm run bench`, 5 rounds A/B).
import type { Logger } from 'pino';
import { lazyModule } from './lazy-module.js';
import { nowAndThen } from './now-and-then.js';

/**
 * node-redis, loaded by the first client rather than at start: its ~500 files cost a gateway
 * ~0.15 s of CPU to load, and one without REDIS_URL never uses them. Every client in the
 * gateway is made by createRedis, so an error of node-redis's classes exists only once this ran.
 */
const nodeRedis = lazyModule<typeof import('@redis/client')>('@redis/client');

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
  const client = nodeRedis.load().createClient({
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
 * Connects `client`, or fails after `ms`: a server that takes the connection and never
 * answers (a firewall, a proxy whose Redis is gone, another service on the port) would
 * otherwise hold the gateway's start silently for good.
 */
export async function connectWithin(client: RedisClient, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms of connecting`)), ms);
  });
  try {
    await Promise.race([client.connect(), late]);
  } catch (err) {
    client.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Whether `err` says Redis could not be reached (the connection is down, was cut while the
 * command waited, or timed out), as opposed to an answer from Redis. The request that met it
 * is answered 503 service_unavailable: a client may retry it, and it was not charged.
 */
export function isRedisUnreachable(err: unknown): boolean {
  const m = nodeRedis.loaded();
  return (
    m !== null &&
    (err instanceof m.ClientOfflineError ||
      err instanceof m.SocketClosedUnexpectedlyError ||
      err instanceof m.ClientClosedError ||
      err instanceof m.ConnectionTimeoutError ||
      err instanceof m.SocketTimeoutError ||
      err instanceof m.TimeoutError ||
      err instanceof m.TimeoutReadError)
  );
}

/** Whether `err` (one isRedisUnreachable knows) failed a command that was never sent. */
export const neverSent = (err: unknown): boolean => {
  const m = nodeRedis.loaded();
  return m !== null && (err instanceof m.ClientOfflineError || err instanceof m.TimeoutError);
};

/** Whether `err` says the client was closed (this process is stopping). */
export const isClientClosed = (err: unknown): boolean => {
  const m = nodeRedis.loaded();
  return m !== null && err instanceof m.ClientClosedError;
};

/**
 * Deletes a namespace's keys (`prefix:*`) when the database they count for is not the one
 * they were written for (restored from a backup, or a copy: `incarnation` differs from the one
 * last recorded), so they are read anew from it; then records `incarnation`. Answers how many
 * keys went, or null when they were the database's own (or there were none yet). Refuses
 * (throws) while an instance of the other incarnation still runs (`live`, a pattern of the
 * instances' liveness keys): its counters are not this copy's to clear.
 */
export async function forgetAnotherIncarnation(
  redis: RedisClient,
  prefix: string,
  incarnation: string,
  live: string,
): Promise<number | null> {
  const marker = `${prefix}:incarnation`;
  const known = await redis.get(marker);
  if (known === incarnation) return null;
  let cleared: number | null = null;
  if (known !== null) {
    for await (const keys of scanKeys(redis, live))
      if (keys.length > 0)
        throw new Error(
          `Redis (namespace ${prefix}) counts for another copy of this database, and a gateway on that copy is running: give this one a Redis of its own (another REDIS_URL or database index), or stop the other first (one that stopped uncleanly counts as running for MOLE_HOLD_LEASE_MS)`,
        );
    cleared = 0;
    for await (const keys of scanKeys(redis, `${prefix}:*`)) {
      const gone = keys.filter((k) => k !== marker);
      if (gone.length > 0) cleared += Number(await redis.sendCommand(['UNLINK', ...gone]));
    }
  }
  await redis.set(marker, incarnation);
  return cleared;
}

/** The keys matching `pattern`, a batch at a time (SCAN). */
async function* scanKeys(redis: RedisClient, pattern: string): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const [next, keys] = (await redis.sendCommand(['SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000'])) as [
      string,
      string[],
    ];
    cursor = next;
    yield keys;
  } while (cursor !== '0');
}
