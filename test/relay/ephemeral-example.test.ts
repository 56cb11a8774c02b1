// examples/ephemeral runs as documented: its server mints an ephemeral key with its own key,
// and the page's origin can call the gateway with it (and nobody else's origin can).
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestServer, userWithKey } from '../helpers/server.js';
import { offlineSuite } from '../helpers/relay-suite.js';

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('examples/ephemeral', () => {
  let s: TestServer;
  let child: ChildProcess | null = null;
  let port = 0;
  offlineSuite({}, { 'mole-mini': { input: 0.15, output: 0.6 } }, (started) => {
    s = started;
  });
  beforeAll(async () => {
    const { secret } = await userWithKey(s);
    port = await freePort();
    child = spawn(
      process.execPath,
      [path.resolve(import.meta.dirname, '../../examples/ephemeral/server.mjs')],
      {
        env: { ...process.env, MOLE_URL: s.url, MOLE_KEY: secret, MODEL: 'mole-mini', PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    await new Promise<void>((resolve, reject) => {
      child!.stdout!.on('data', (d: Buffer) => d.toString().includes('open') && resolve());
      child!.on('exit', (code) => reject(new Error(`example exited with ${code}`)));
    });
  });
  afterAll(async () => {
    child?.kill();
  });

  it('serves the page and an ephemeral key the page origin can use', async () => {
    const page = await fetch(`http://localhost:${port}/`);
    expect(await page.text()).toContain('/browser-key');
    const k = (await (await fetch(`http://localhost:${port}/browser-key`)).json()) as Record<string, string>;
    expect(k.key).toMatch(/^sk-[0-9A-Za-z]{48}$/);
    expect(JSON.stringify(k)).not.toContain(process.env.MOLE_KEY ?? '\u0000');
    const call = (origin: string) =>
      fetch(`${k.base_url}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${k.key}`, 'content-type': 'application/json', origin },
        body: JSON.stringify({ model: k.model, messages: [{ role: 'user', content: 'hi' }] }),
      });
    const ok = await call(`http://localhost:${port}`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe(`http://localhost:${port}`);
    expect((await call('https://elsewhere.example')).status).toBe(403);
  });
});
