/**
 * The floor: a bare pass-through HTTP proxy, node:http in front of an undici Pool.
 * No auth, no body parsing, no logging, no accounting: bytes in, bytes out. Every gateway
 * pays at least this much, so the benchmark reports everything as a ratio to it.
 *
 *   tsx bench/bare-proxy.ts --upstream http://127.0.0.1:PORT [--port 0] [--host 127.0.0.1]
 *
 * Prints `bare proxy listening on http://HOST:PORT`. SIGTERM closes it.
 */
import http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'host',
]);

export interface BareProxy {
  url: string;
  close(): Promise<void>;
}

export async function startBareProxy(opts: {
  upstream: string;
  port?: number;
  host?: string;
}): Promise<BareProxy> {
  const upstream = new URL(opts.upstream);
  // Unlimited connections (undici's default), keep-alive, no pipelining: what a proxy would use.
  const pool = new Pool(upstream.origin, { keepAliveTimeout: 30_000, pipelining: 1 });

  const server = http.createServer((req, res) => {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    pool.request({ method: req.method as 'POST', path: req.url!, headers, body: hasBody ? req : null }).then(
      (up) => {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(up.headers))
          if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
        res.writeHead(up.statusCode, out);
        pipeline(up.body, res, () => {});
      },
      () => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
        res.end(
          '{"error":{"message":"upstream failed","type":"proxy_error","param":null,"code":"upstream_error"}}',
        );
      },
    );
  });
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 35_000;
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve));
  const addr = server.address() as { port: number };
  return {
    url: `http://${opts.host ?? '127.0.0.1'}:${addr.port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await pool.close();
    },
  };
}

// CLI
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const upstreamArg = arg('--upstream');
  if (!upstreamArg) {
    process.stderr.write(
      'usage: tsx bench/bare-proxy.ts --upstream http://127.0.0.1:PORT [--port 0] [--host 127.0.0.1]\n',
    );
    process.exit(2);
  }
  const proxy = await startBareProxy({
    upstream: upstreamArg,
    port: Number(arg('--port') ?? 0),
    host: arg('--host') ?? '127.0.0.1',
  });
  process.stdout.write(`bare proxy listening on ${proxy.url}\n`);
  const stop = () => void proxy.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
