// A request whose body stops coming (a slowloris, or a client gone quiet mid-upload) is answered
// 408 request_timeout once MOLE_REQUEST_TIMEOUT_MS has passed, with or without credentials,
// rather than holding its connection for good.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { userWithKey } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';

/** Sends `head` and one byte of a longer body, then nothing; resolves with all the server said. */
function stalledRequest(url: string, head: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), hostname, () => sock.write(`${head}\r\n\r\n{`));
    let said = '';
    sock.on('data', (c) => {
      said += c.toString();
    });
    sock.on('close', () => resolve(said));
    sock.on('error', reject);
    sock.setTimeout(10_000, () => sock.destroy(new Error(`no answer yet: ${JSON.stringify(said)}`)));
  });
}

describe('a request body that stops coming', () => {
  const s = suiteServer({ env: { MOLE_REQUEST_TIMEOUT_MS: '500' } });

  it('gets 408 request_timeout, on the management API without credentials and on the relay with a key', async () => {
    const { secret } = await userWithKey(s);
    const heads = [
      'POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000',
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n400`,
    ];
    for (const head of heads) {
      const said = await stalledRequest(s.url, head);
      expect(said).toMatch(/^HTTP\/1\.1 408 /);
      expect(said).toContain('"code":"request_timeout"');
    }
  });
});
