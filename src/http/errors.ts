// The one error catalogue: every internal error code → HTTP status + OpenAI-style `type`.
// Both APIs answer {"error":{"message","type","param","code"}}; the management API's
// documented shape {"error":{"code","message"}} is a subset of it.
import { isDatabaseUnreachable } from '../db/unreachable.js';
import { isRedisUnreachable } from '../shared/redis.js';
export const ERROR_CATALOGUE = {
  // relay — authentication and policy (contract §4, in check order)
  missing_api_key: { status: 401, type: 'authentication_error' },
  invalid_api_key: { status: 401, type: 'authentication_error' },
  key_disabled: { status: 401, type: 'authentication_error' },
  key_expired: { status: 401, type: 'authentication_error' },
  account_disabled: { status: 401, type: 'authentication_error' },
  ip_not_allowed: { status: 403, type: 'permission_error' },
  browser_origin_not_allowed: { status: 403, type: 'permission_error' },
  model_not_allowed: { status: 403, type: 'permission_error' },
  model_not_found: { status: 404, type: 'invalid_request_error' },
  model_not_priced: { status: 403, type: 'permission_error' },
  rate_limit_exceeded: { status: 429, type: 'rate_limit_error' },
  concurrency_limit_exceeded: { status: 429, type: 'rate_limit_error' },
  insufficient_quota: { status: 429, type: 'insufficient_quota' },
  budget_exceeded: { status: 429, type: 'insufficient_quota' },
  upstream_error: { status: 502, type: 'upstream_error' },
  upstream_timeout: { status: 504, type: 'upstream_error' },
  // input
  invalid_request: { status: 400, type: 'invalid_request_error' },
  /** A Responses follow-up naming a response this account did not make (OpenAI's own code). */
  previous_response_not_found: { status: 400, type: 'invalid_request_error' },
  request_too_large: { status: 413, type: 'invalid_request_error' },
  headers_too_large: { status: 431, type: 'invalid_request_error' },
  request_timeout: { status: 408, type: 'invalid_request_error' },
  validation_error: { status: 422, type: 'invalid_request_error' },
  limit_above_group: { status: 422, type: 'invalid_request_error' },
  unsupported_media_type: { status: 415, type: 'invalid_request_error' },
  // management API
  unauthorized: { status: 401, type: 'authentication_error' },
  login_failed: { status: 401, type: 'authentication_error' },
  login_throttled: { status: 429, type: 'rate_limit_error' },
  forbidden: { status: 403, type: 'permission_error' },
  csrf_failed: { status: 403, type: 'permission_error' },
  /** A management token used outside its scopes, or on a route that takes no token. */
  insufficient_scope: { status: 403, type: 'permission_error' },
  not_found: { status: 404, type: 'invalid_request_error' },
  method_not_allowed: { status: 405, type: 'invalid_request_error' },
  conflict: { status: 409, type: 'invalid_request_error' },
  key_limit_reached: { status: 409, type: 'invalid_request_error' },
  internal_error: { status: 500, type: 'server_error' },
  service_unavailable: { status: 503, type: 'server_error' },
  // GitHub secret-scanning reports (security/)
  invalid_signature: { status: 401, type: 'authentication_error' },
  secret_scanning_disabled: { status: 404, type: 'invalid_request_error' },
} as const satisfies Record<string, { status: number; type: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly param: string | null;
  /** Extra response headers (retry-after, x-should-retry). */
  readonly headers: Record<string, string>;
  constructor(
    code: ErrorCode,
    message: string,
    opts: { param?: string | null; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.code = code;
    this.param = opts.param ?? null;
    this.headers = opts.headers ?? {};
  }
  get status(): number {
    return ERROR_CATALOGUE[this.code].status;
  }
}

export function errorBody(code: ErrorCode, message: string, param: string | null = null) {
  return { error: { message, type: ERROR_CATALOGUE[code].type, param, code } };
}

export const notFound = (what: string) => new AppError('not_found', `${what} not found`);

/**
 * The shared counters (Redis, with REDIS_URL) could not be reached: retry shortly. Nothing the
 * request would have cost was charged or held.
 */
export const sharedStateUnavailable = () => storeUnavailable('its shared counters');

/** The database could not be reached (PostgreSQL restarting, failing over, cut off): retry shortly. */
export const databaseUnavailable = () => storeUnavailable('its database');

const storeUnavailable = (what: string) =>
  new AppError('service_unavailable', `the gateway cannot reach ${what} right now; retry shortly`, {
    headers: { 'retry-after': '1' },
  });

/**
 * What a request that met `err` is answered when a store it needs is out of reach (Redis or
 * the database), else null.
 */
export const unreachableStoreError = (err: unknown): AppError | null =>
  isRedisUnreachable(err)
    ? sharedStateUnavailable()
    : isDatabaseUnreachable(err)
      ? databaseUnavailable()
      : null;
