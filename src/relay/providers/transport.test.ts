// AttemptSignal stands in for an AbortController's signal on undici requests: aborting it
// fails a pending request (and a body being read) exactly as an AbortController does.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttemptSignal } from './transport.js';

let server: http.Server;
let url: string;
const agent = new Agent();
beforeAll(async () => {
  server = http.createServer((req, res) => {
    // /slow never answers; /stream sends headers and one chunk, then holds the body open.
    if (req.url === '/stream') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await agent.close();
});

async function failure(p: Promise<unknown>): Promise<{ name: string; message: string; code: unknown }> {
  try {
    await p;
  } catch (e) {
    const err = e as { name: string; message: string; code: unknown };
    return { name: err.name, message: err.message, code: err.code };
  }
  throw new Error('expected a failure');
}

describe('AttemptSignal', () => {
  it('aborts a request waiting for headers like an AbortController', async () => {
    const ac = new AbortController();
    const mine = new AttemptSignal();
    const a = failure(request(`${url}/slow`, { dispatcher: agent, signal: ac.signal }));
    const b = failure(request(`${url}/slow`, { dispatcher: agent, signal: mine }));
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    mine.abort();
    expect(await b).toEqual(await a);
    expect((await b).name).toBe('AbortError');
    expect(mine.listenerCount('abort')).toBe(0);
  });

  it('aborts a body being read, and an already-aborted signal fails at once', async () => {
    const mine = new AttemptSignal();
    const res = await request(`${url}/stream`, { dispatcher: agent, signal: mine });
    expect(res.statusCode).toBe(200);
    const read = failure(
      (async () => {
        for await (const _ of res.body) mine.abort();
      })(),
    );
    expect((await read).name).toBe('AbortError');
    const done = new AttemptSignal();
    done.abort();
    expect((await failure(request(`${url}/slow`, { dispatcher: agent, signal: done }))).name).toBe(
      'AbortError',
    );
  });
});
