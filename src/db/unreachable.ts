// Whether an error means the database could not be reached (PostgreSQL restarting, failing
// over, or cut off), as opposed to an answer from it. A request that meets one is answered
// 503 service_unavailable with retry-after, like one that meets an unreachable Redis.

/** Node's socket errors for a peer that is gone or cannot be reached. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs of a server going away or not taking connections: class 08 (connection
 * exception), 57P01–57P03 (admin or crash shutdown, cannot connect now), 53300 (too many
 * connections).
 */
const UNAVAILABLE_STATE = /^(08|57P0[123]$|53300$)/;

/**
 * node-postgres's own words for a connection lost or never made in time, or a query unanswered
 * within MOLE_DB_TIMEOUT_MS (a stalled server).
 */
const PG_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout)/;

export function isDatabaseUnreachable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (SOCKET_CODES.has(code) || UNAVAILABLE_STATE.test(code))) return true;
  return PG_MESSAGES.test(err.message);
}
