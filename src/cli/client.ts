// The CLI's view of a running gateway: its management API at MOLE_URL, authenticated with
// MOLE_TOKEN (a management token or the master key) as a Bearer token. Going through the API,
// never the database, keeps every instance's caches right (contract §10).

/**
 * A failure the user should read: one line on stderr, exit code 1 (or 2 for bad usage,
 * including an argument the gateway refused with 400 or 422: see exitCodeOf).
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
    /** The API's `error.param`: the request field at fault, when it named one. */
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

export const usageError = (message: string) => new CliError(message, 2);

export interface ApiClient {
  readonly baseUrl: string;
  request<T = unknown>(method: string, path: string, opts?: { body?: unknown; query?: Query }): Promise<T>;
}

export type Query = Record<string, string | number | boolean | undefined>;

const TIMEOUT_MS = 30_000;

/**
 * The exit code for an API error: 400 and 422 refuse what the user gave (a value out of range,
 * a field missing), which is bad usage (2); anything else — a wrong token (401/403), an id that
 * is not there (404), a conflict (409), a server error (5xx) — is a failure (1).
 */
export function exitCodeOf(status: number): 1 | 2 {
  return status === 400 || status === 422 ? 2 : 1;
}

/** MOLE_URL and MOLE_TOKEN from the environment; nothing is read until a command needs it. */
export function clientFromEnv(env: NodeJS.ProcessEnv = process.env): ApiClient {
  const raw = (env.MOLE_URL || 'http://localhost:3000').trim();
  let base: URL;
  try {
    base = new URL(raw);
  } catch {
    throw usageError(`MOLE_URL is not a URL: ${raw.slice(0, 200)}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw usageError('MOLE_URL must start with http:// or https://');
  const baseUrl = base.toString().replace(/\/+$/, '');
  const token = env.MOLE_TOKEN?.trim();

  return {
    baseUrl,
    async request<T>(method: string, path: string, opts: { body?: unknown; query?: Query } = {}) {
      if (!token)
        throw usageError('set MOLE_TOKEN (or pass --token) to a management token (mg-…) or the master key');
      const url = new URL(baseUrl + path);
      for (const [k, v] of Object.entries(opts.query ?? {}))
        if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            accept: 'application/json',
            ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
          signal: AbortSignal.timeout(TIMEOUT_MS),
        });
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        const why =
          (err as Error).name === 'TimeoutError'
            ? `no answer within ${TIMEOUT_MS / 1000} s`
            : (cause?.code ?? cause?.message ?? (err as Error).message);
        throw new CliError(`cannot reach ${baseUrl}: ${why}`);
      }
      const text = await res.text();
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        throw new CliError(
          `unexpected answer from ${baseUrl}${path} (HTTP ${res.status}, not JSON): is MOLE_URL a MoleAPI gateway?`,
        );
      }
      if (!res.ok) {
        const e = (body as { error?: { code?: string; message?: string; param?: string | null } } | null)
          ?.error;
        const message = (e?.message ?? `HTTP ${res.status}`).replace(/\s+/g, ' ');
        throw new CliError(
          `${message} (HTTP ${res.status}${e?.code ? ` ${e.code}` : ''})`,
          exitCodeOf(res.status),
          e?.param ?? null,
        );
      }
      return body as T;
    },
  };
}

/** Follows `next_cursor` until `limit` rows or the end. */
export async function listAll<T>(api: ApiClient, path: string, query: Query, limit: number): Promise<T[]> {
  const out: T[] = [];
  let cursor: number | null | undefined;
  do {
    const page = await api.request<{ data: T[]; next_cursor?: number | null }>('GET', path, {
      query: { ...query, limit: Math.min(500, limit - out.length), cursor: cursor ?? undefined },
    });
    out.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor != null && out.length < limit);
  return out;
}
