// The floor: a bare pass-through proxy (node:http + undici Pool), copied unchanged in behaviour
// from ../shared/bench/bare-proxy.mjs. The request body is buffered (one write upstream, with a
// content-length) and the answer goes through `pool.stream` straight into the response: no
// auth, no parsing, no accounting. Every gateway pays at least this much.
//   node bench/bare-proxy.mjs PORT UPSTREAM_ORIGIN      (run from the repository root; prints "ready")
import http from 'node:http';
import { createRequire } from 'node:module';

const { Pool } = createRequire(`${process.cwd()}/package.json`)('undici');

const [port, upstream] = process.argv.slice(2);
// No cap on connections: every in-flight stream holds one.
const pool = new Pool(upstream, { pipelining: 1, keepAliveTimeout: 30_000 });
const HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
  'content-length',
]);
const filter = (h) => Object.fromEntries(Object.entries(h).filter(([k]) => !HOP.has(k)));

http
  .createServer((req, res) => {
    const bufs = [];
    req.on('data', (d) => bufs.push(d));
    req.on('end', () => {
      const body = Buffer.concat(bufs);
      const headers = { ...filter(req.headers), 'content-length': String(body.length) };
      pool.stream(
        { path: req.url, method: req.method, headers, body },
        ({ statusCode, headers: uh }) => {
          const h = filter(uh);
          if (uh['content-length'] !== undefined) h['content-length'] = uh['content-length'];
          res.writeHead(statusCode, h);
          return res;
        },
        (err) => {
          if (!err) return;
          if (!res.headersSent) {
            res.writeHead(502);
            res.end();
          } else res.destroy(err);
        },
      );
    });
  })
  .listen(Number(port), '127.0.0.1', () => console.log('ready'));
