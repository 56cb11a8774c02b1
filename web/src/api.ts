// Thin client for the management API (/api). Cookie session + CSRF header on writes.

// The answers' types are generated from the server's OpenAPI document (api-types.ts, by
// `npm run gen:api-types`); these are the names the pages use.
import type * as Api from './api-types';

export type {
  AuditEntry,
  Budget,
  BudgetUsage,
  Channel,
  Group,
  LogAttempt,
  LogEntry,
  LogTotals,
  ManagementToken,
  NewManagementToken,
  Price,
  UsageRow,
  User,
} from './api-types';
/** A notification (GET /api/events); not named `Event`, which is the DOM's. */
export type GatewayEvent = Api.Event;
export type EventType = Api.Event['type'];
export type Role = Api.User['role'];
export type KeyStatus = Api.ApiKey['status'];
/** A key; `key` (the secret) only in the answer to a create or a rotation. */
export type ApiKey = Api.ApiKey & Partial<Pick<Api.NewApiKey, 'key'>>;

/** One page of a cursor-paginated list (ApiKeyPage, UserPage, LogPage, AuditPage). */
export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly param: string | null;
  constructor(status: number, code: string, message: string, param: string | null = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

let csrfToken: string | null = null;
const unauthorizedListeners = new Set<() => void>();

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called when any request answers 401 while signed in (session expired). */
export function onUnauthorized(fn: () => void): () => void {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    qs.set(k, String(v));
  }
  const s = qs.toString();
  return s ? `${path}?${s}` : path;
}

async function errorFrom(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = `The server answered ${res.status} ${res.statusText}.`;
  let param: string | null = null;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string; param?: string | null } };
    if (body?.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      param = body.error.param ?? null;
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, code, message, param);
}

export async function request<T>(
  method: string,
  path: string,
  opts: { query?: Query; body?: unknown; quiet401?: boolean; signal?: AbortSignal } = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(withQuery(path, opts.query), {
      method,
      headers,
      credentials: 'same-origin',
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      signal: opts.signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(
      0,
      'network_error',
      'Could not reach the gateway. Check that it is running and try again.',
    );
  }
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401 && !opts.quiet401) for (const fn of unauthorizedListeners) fn();
    throw err;
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export const api = {
  get: <T>(path: string, query?: Query, signal?: AbortSignal) => request<T>('GET', path, { query, signal }),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, { body: body ?? {} }),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, { body }),
  put: <T>(path: string, body: unknown) => request<T>('PUT', path, { body }),
  del: <T>(path: string) => request<T>('DELETE', path),
};

/** Fetches a CSV export and hands it to the browser as a download. */
export async function downloadCsv(path: string, query: Query, filename: string): Promise<void> {
  const res = await fetch(withQuery(path, { ...query, format: 'csv' }), {
    credentials: 'same-origin',
    headers: { accept: 'text/csv' },
  });
  if (!res.ok) throw await errorFrom(res);
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
