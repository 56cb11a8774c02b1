// "Server mints, browser uses": a tiny page server (plain Node, no dependencies). It keeps the
// real key (MOLE_KEY) to itself and hands each page a short-lived ephemeral key that only this
// page's origin may use, for one model, with a spending cap.
//
//   MOLE_URL=http://localhost:3000 MOLE_KEY=sk-… MODEL=mole-mini node examples/ephemeral/server.mjs
//   then open http://localhost:8787
import { readFile } from 'node:fs/promises';
import http from 'node:http';

const MOLE_URL = process.env.MOLE_URL ?? 'http://localhost:3000';
const MOLE_KEY = process.env.MOLE_KEY;
const MODEL = process.env.MODEL ?? 'mole-mini';
const PORT = Number(process.env.PORT ?? 8787);
const ORIGIN = `http://localhost:${PORT}`;
if (!MOLE_KEY) {
  console.error('set MOLE_KEY to a MoleAPI key (sk-…): it stays on this server');
  process.exit(2);
}

const page = await readFile(new URL('./index.html', import.meta.url), 'utf8');

http
  .createServer(async (req, res) => {
    if (req.url === '/browser-key') {
      // Your own sign-in check goes here: only your users should get a key.
      const r = await fetch(`${MOLE_URL}/v1/keys/ephemeral`, {
        method: 'POST',
        headers: { authorization: `Bearer ${MOLE_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          ttl_seconds: 600,
          max_cost: 0.05,
          models: [MODEL],
          allowed_origins: [ORIGIN],
        }),
      });
      const body = await r.json();
      res.writeHead(r.status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      // The page gets the ephemeral key and where to use it; never MOLE_KEY.
      res.end(
        JSON.stringify(
          r.ok
            ? { key: body.key, expires_at: body.expires_at, base_url: `${MOLE_URL}/v1`, model: MODEL }
            : body,
        ),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page);
  })
  .listen(PORT, () => console.log(`open ${ORIGIN}`));
