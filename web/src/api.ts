// Thin client for the management API (/api). Cookie session + CSRF header on writes.

export type Role = 'admin' | 'user';

export interface User {
  id: number;
  username: string;
  role: Role;
  group: string;
  balance: number;
  status: 'active' | 'disabled';
  created_at: string;
  updated_at: string;
}

export type KeyStatus = 'active' | 'disabled' | 'expired' | 'exhausted';

export interface ApiKey {
  id: number;
  name: string;
  user_id: number;
  status: KeyStatus;
  display: string;
  models: string[] | null;
  allowed_ips: string[] | null;
  quota: number | null;
  used: number;
  remaining?: number | null;
  group: string | null;
  rpm?: number | null;
  expires_at: string | null;
  created_at: string;
  last_used_at: string | null;
  last_used_ip: string | null;
  /** Only right after create / rotate. */
  key?: string;
}

export interface LogEntry {
  id: number | string;
  request_id: string;
  created_at: string;
  user_id: number;
  key_id: number;
  key_name: string | null;
  model: string | null;
  upstream_model: string | null;
  channel_id: number | null;
  endpoint: string | null;
  stream: boolean;
  status: number;
  error_code: string | null;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  cost: number;
  latency_ms: number | null;
  ttft_ms: number | null;
  ip: string | null;
  estimated: boolean;
  /** Ingress protocol the client spoke (older servers omit it). */
  protocol?: string;
  cache_write_tokens?: number;
  reasoning_tokens?: number;
  /** Every upstream try in order. */
  attempts?: LogAttempt[];
}

export interface LogAttempt {
  channel_id: number | null;
  channel_name: string | null;
  status: number | null;
  error: string | null;
  latency_ms: number;
}

export interface LogTotals {
  requests: number;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  cost: number;
}

export interface UsageRow {
  day?: string;
  key_id?: number;
  key_name?: string | null;
  model?: string;
  requests: number;
  prompt_tokens: number;
  cached_tokens?: number;
  completion_tokens: number;
  cost: number;
}

export interface AuditEntry {
  id: number | string;
  created_at: string;
  actor: string | null;
  action: string;
  key_id: number | null;
  user_id: number | null;
  ip: string | null;
  changes: unknown;
}

export interface Channel {
  id: number;
  name: string;
  type: string;
  base_url: string | null;
  models: string[];
  model_map: Record<string, string> | null;
  priority: number;
  weight: number;
  groups: string[] | null;
  status: string;
  disabled_reason: string | null;
  /** Health as the answering instance saw it. */
  cooling_down_until?: string | null;
  consecutive_failures?: number;
  last_error?: string | null;
  last_error_at?: string | null;
  created_at: string;
  updated_at: string;
}

export interface Price {
  model: string;
  input: number;
  output: number;
  cached_input: number | null;
  /** Prompt-cache writes; null = the input price. */
  cache_write?: number | null;
}

export interface Group {
  name: string;
  multiplier: number;
}

export interface Page<T> {
  data: T[];
  next_cursor: string | number | null;
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
