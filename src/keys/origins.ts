// Browser origins a key serves (contract §8): `scheme://host[:port]`, where the host may start
// with `*.` (any subdomain, at any depth, never the bare domain; not of a bare top-level
// domain such as `*.com`). Entries are normalised when
// stored (lower case, no trailing slash, no default port), and a browser's `Origin` header is
// normalised the same way before it is matched, so `https://App.example.com:443` and
// `https://app.example.com` are one origin.

/** The most entries a key may list. */
export const MAX_ORIGINS = 100;

const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443', ws: '80', wss: '443' };
// scheme :// [*.] host-or-[ipv6] [:port] — nothing else (no path, query, user info).
const ORIGIN_RE =
  /^([a-z][a-z0-9+.-]*):\/\/(\*\.)?((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/;

interface Parsed {
  scheme: string;
  wildcard: boolean;
  host: string;
  /** Explicit non-default port, or '' for the scheme's default. */
  port: string;
}

function parse(input: string): Parsed | null {
  let s = input.trim().toLowerCase();
  if (s.endsWith('/')) s = s.slice(0, -1);
  if (s.length > 255) return null;
  const m = ORIGIN_RE.exec(s);
  if (!m) return null;
  const [, scheme, star, host, port] = m;
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return null;
  if (star && host!.startsWith('[')) return null;
  // `*.com` would be every site of a top-level domain; `*.localhost` stays (local development).
  if (star && !host!.includes('.') && host !== 'localhost') return null;
  const p = port === undefined || DEFAULT_PORT[scheme!] === String(Number(port)) ? '' : String(Number(port));
  return { scheme: scheme!, wildcard: !!star, host: host!, port: p };
}

const format = (p: Parsed) => `${p.scheme}://${p.wildcard ? '*.' : ''}${p.host}${p.port ? ':' + p.port : ''}`;

/** One allowed-origins entry in its stored form, or null when it is not an origin. */
export function normaliseOrigin(input: string): string | null {
  const p = parse(input);
  return p ? format(p) : null;
}

/**
 * A list of entries normalised and de-duplicated, or an error for a person naming the first bad
 * entry by its index (never echoing it: a pasted secret must not come back in an answer).
 */
export function normaliseOrigins(
  list: string[],
): { ok: true; value: string[] } | { ok: false; error: string } {
  if (list.length > MAX_ORIGINS) return { ok: false, error: `at most ${MAX_ORIGINS} origins` };
  const out = new Set<string>();
  for (const [i, e] of list.entries()) {
    const v = normaliseOrigin(e);
    if (v === null)
      return {
        ok: false,
        error: `entry ${i} is not an origin: write scheme://host[:port], e.g. https://app.example.com or https://*.example.com`,
      };
    out.add(v);
  }
  return { ok: true, value: [...out] };
}

/** Whether `pattern` (a stored entry) covers `origin` (a concrete origin or another entry). */
function covers(pattern: Parsed, origin: Parsed): boolean {
  if (pattern.scheme !== origin.scheme || pattern.port !== origin.port) return false;
  if (!pattern.wildcard) return !origin.wildcard && pattern.host === origin.host;
  // `*.example.com` covers `a.example.com`, `a.b.example.com` and `*.a.example.com`, and
  // `*.example.com` itself; never `example.com`.
  if (origin.wildcard && origin.host === pattern.host) return true;
  return origin.host.endsWith('.' + pattern.host);
}

export interface OriginList {
  /** The entries, normalised. */
  readonly entries: readonly string[];
  /** Whether a browser's `Origin` header value is listed. */
  allows(origin: string): boolean;
  /** Whether an entry (possibly a wildcard) asks for nothing beyond this list. */
  covers(entry: string): boolean;
}

/** A stored list, ready to match. Entries that no longer parse match nothing. */
export function compileOrigins(entries: readonly string[]): OriginList {
  const parsed = entries.map(parse).filter((p): p is Parsed => p !== null);
  const exact = new Set(parsed.filter((p) => !p.wildcard).map(format));
  const wild = parsed.filter((p) => p.wildcard);
  const match = (o: Parsed) => (!o.wildcard && exact.has(format(o))) || wild.some((w) => covers(w, o));
  return {
    entries,
    allows(origin) {
      const o = parse(origin);
      // A browser's Origin is never a wildcard; "null" (file://, sandboxes) never matches.
      return o !== null && !o.wildcard && match(o);
    },
    covers(entry) {
      const o = parse(entry);
      return o !== null && parsed.some((p) => covers(p, o));
    },
  };
}
