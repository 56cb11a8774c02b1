// AttemptSignal stands in for an AbortController's signal on undici requests: aborting it
// fails a pending request (and a body being read) exactly as an AbortController does.
import { Agent, request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { localHttpServer } from '../../../test/helpers/local-http.js';
import { AttemptSignal } from './transport.js';

const agent = new Agent();
// /slow never answers; /stream sends headers and one chunk, then holds the body open.
const local = localHttpServer((req, res) => {
  if (req.url === '/stream') {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: 1\n\n');
  }
});
afterAll(() => agent.close());

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
    const arrived = local.arrivals(2);
    const a = failure(request(`${local.url}/slow`, { dispatcher: agent, signal: ac.signal }));
    const b = failure(request(`${local.url}/slow`, { dispatcher: agent, signal: mine }));
    await arrived;
    ac.abort();
    mine.abort();
    expect(await b).toEqual(await a);
    expect((await b).name).toBe('AbortError');
    expect(mine.listenerCount('abort')).toBe(0);
  });

  it('aborts a body being read, and an already-aborted signal fails at once', async () => {
    const mine = new AttemptSignal();
    const res = await request(`${local.url}/stream`, { dispatcher: agent, signal: mine });
    expect(res.statusCode).toBe(200);
    const read = failure(
      (async () => {
        for await (const _ of res.body) mine.abort();
      })(),
    );
    expect((await read).name).toBe('AbortError');
    const done = new AttemptSignal();
    done.abort();
    expect((await failure(request(`${local.url}/slow`, { dispatcher: agent, signal: done }))).name).toBe(
      'AbortError',
    );
  });
});
