// Serves the built web console (web/ → dist/web) from the gateway's own port:
//   /assets/*   content-hashed files, cached for a year (immutable)
//   /<file>     the few unhashed files Vite copies from web/public (favicon …), cached briefly
//   a console route (/, /keys/…, /logs, … CONSOLE_SECTIONS) a browser navigates to → index.html,
//               never cached, with a strict Content-Security-Policy, so client-side routes
//               survive a reload.
//   anything else → 404: JSON for API clients, probes and scrapers (/healthzz, /api/nope, /v2/x,
//               /metrics.txt), and for a browser's page navigation (Accept: text/html) the
//               console's page with status 404, so the app can say "Page not found".
//   A new console page needs its first path segment added to CONSOLE_SECTIONS.
// When the console has not been built, a small page says how to build it.
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** <repo>/dist/web, both from src/console (tsx) and from dist/console (compiled). */
export function defaultWebDir(): string {
  return fileURLToPath(new URL('../../dist/web/', import.meta.url));
}

export const HTML_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const IMMUTABLE = 'public, max-age=31536000, immutable';
/** Never the console: the APIs, probes and hashed assets (a missing asset is a 404). */
const RESERVED = /^\/(api|v\d+[a-z0-9]*|assets|healthz|readyz|metrics)(\/|$)/i;

/** First path segments of the console's client-side routes (web/src/App.tsx). */
export const CONSOLE_SECTIONS: ReadonlySet<string> = new Set([
  '',
  'index.html',
  'login',
  'keys',
  'logs',
  'usage',
  'users',
  'channels',
  'pricing',
  'security',
  'notifications',
  'tokens',
]);

const PUBLIC_TYPES: Record<string, string> = {
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.json': 'application/json; charset=utf-8',
};

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>MoleAPI console not built</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5;color:#2a211c}code{background:#f3ece6;padding:.1rem .3rem;border-radius:4px}</style>
</head><body>
<h1>The web console isn't built yet</h1>
<p>The gateway is running: the relay API is under <code>/v1</code> and the management API under <code>/api</code>.</p>
<p>To get the console, run <code>npm run build:web</code> (or <code>npm start</code>, which builds it first) and reload this page.</p>
</body></html>
`;

interface CachedIndex {
  mtimeMs: number;
  size: number;
  body: Buffer;
  etag: string;
}

function acceptsHtml(req: FastifyRequest): boolean {
  const accept = req.headers.accept;
  if (!accept) return true;
  return /text\/html|application\/xhtml\+xml|\*\/\*/i.test(accept);
}

export async function registerConsole(
  app: FastifyInstance,
  opts: {
    webDir?: string;
    /** Answers a GET for an unknown relay path (/v1…), in its protocol's error shape. */
    relayNotFound?: (req: FastifyRequest, reply: FastifyReply) => void;
  } = {},
): Promise<void> {
  const webDir = path.resolve(opts.webDir ?? defaultWebDir());
  const indexPath = path.join(webDir, 'index.html');

  // Hashed bundles. The directory may appear after start-up (built later): files are looked
  // up per request, so that works without a restart.
  await app.register(fastifyStatic, {
    root: path.join(webDir, 'assets'),
    prefix: '/assets/',
    decorateReply: false,
    wildcard: true,
    index: false,
    list: false,
    dotfiles: 'deny',
    etag: true,
    lastModified: true,
    cacheControl: false,
    suppressWarning: true,
    setHeaders(reply) {
      reply.header('cache-control', IMMUTABLE);
      reply.header('x-content-type-options', 'nosniff');
    },
  });

  let cached: CachedIndex | null = null;
  async function loadIndex(): Promise<CachedIndex | null> {
    try {
      const st = await fs.stat(indexPath);
      if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached;
      const body = await fs.readFile(indexPath);
      cached = {
        mtimeMs: st.mtimeMs,
        size: st.size,
        body,
        etag: `W/"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`,
      };
      return cached;
    } catch {
      cached = null;
      return null;
    }
  }

  async function sendIndex(req: FastifyRequest, reply: FastifyReply, status = 200) {
    reply.headers(HTML_SECURITY_HEADERS);
    const index = await loadIndex();
    if (!index && status !== 200) return reply.callNotFound();
    if (!index) {
      // Clients probe `HEAD /` before they call (contract §6): the gateway serves, console or not.
      if (req.method === 'HEAD') return reply.code(200).header('cache-control', 'no-store').send();
      return reply
        .code(503)
        .header('cache-control', 'no-store')
        .type('text/html; charset=utf-8')
        .send(NOT_BUILT_PAGE);
    }
    if (status !== 200)
      return reply
        .code(status)
        .header('cache-control', 'no-store')
        .type('text/html; charset=utf-8')
        .send(index.body);
    reply.header('cache-control', 'no-cache').header('etag', index.etag).type('text/html; charset=utf-8');
    if (req.headers['if-none-match'] === index.etag) return reply.code(304).send();
    return reply.send(index.body);
  }

  /** A top-level file from web/public (favicon.svg …); null when there is none. */
  async function publicFile(urlPath: string): Promise<{ body: Buffer; type: string } | null> {
    const name = urlPath.slice(1);
    if (!name || name.includes('/') || name.includes('\\') || name.startsWith('.') || name === 'index.html')
      return null;
    const type = PUBLIC_TYPES[path.extname(name).toLowerCase()];
    if (!type) return null;
    try {
      return { body: await fs.readFile(path.join(webDir, name)), type };
    } catch {
      return null;
    }
  }

  app.get('/*', { schema: { hide: true } }, async (req, reply) => {
    let urlPath: string;
    try {
      urlPath = decodeURIComponent((req.url.split('?')[0] ?? '/').replace(/\/{2,}/g, '/'));
    } catch {
      return reply.callNotFound();
    }
    if (RESERVED.test(urlPath)) {
      if (opts.relayNotFound && /^\/v\d+[a-z0-9]*(\/|$)/i.test(urlPath))
        return opts.relayNotFound(req, reply);
      return reply.callNotFound();
    }

    const file = await publicFile(urlPath);
    if (file) {
      return reply
        .header('cache-control', 'public, max-age=3600')
        .header('x-content-type-options', 'nosniff')
        .type(file.type)
        .send(file.body);
    }
    const section = urlPath.split('/')[1] ?? '';
    const last = urlPath.slice(urlPath.lastIndexOf('/') + 1);
    const explicitHtml = /text\/html/i.test(req.headers.accept ?? '');
    if (CONSOLE_SECTIONS.has(section)) {
      // a missing file (has an extension) asked for by a non-browser: plain 404
      if (!acceptsHtml(req) || (last.includes('.') && !explicitHtml && last !== 'index.html'))
        return reply.callNotFound();
      return sendIndex(req, reply);
    }
    // Not a console route: never a 200. A browser navigating there gets the app's own
    // "Page not found" (status 404); everyone else the JSON 404.
    if (!explicitHtml || last.includes('.')) return reply.callNotFound();
    return sendIndex(req, reply, 404);
  });
}
