/**
 * What reading an upstream answer costs us, by undici API: CPU µs per request (this process's
 * process.cpuUsage, user + system) for --requests requests at --inflight in flight against the
 * mock provider (its own process, so its CPU is not counted).
 *
 *   npx tsx bench/upstream-io.ts [--requests 20000] [--inflight 50] [--rounds 3] [--ways dispatch,postJson]
 *
 * Ways, each for a plain and an SSE answer:
 *   request   Agent + request() + the BodyReadable read by 'data' events (the relay before issue 12)
 *   request-for-await  the same, the SSE body read by `for await` (relayStream before issue 12)
 *   dispatch  Agent.dispatch() with a small legacy handler (onHeaders/onData/onComplete) that
 *             collects the chunks (plain) or hands each to a callback (SSE)
 *   dispatch-controller  the same with undici 7's controller handler (onResponseStart…): undici
 *             wraps it and parses the headers into an object for it
 *   stream    Agent.stream() into a small Writable
 *   postJson  the relay's own transport (src/relay/providers/openai.ts) and UpstreamBody: readAll
 *             for plain answers, consume() for SSE
 * Rounds interleave the ways; the table shows each way's median round.
 */
import { Writable } from 'node:stream';
import { Agent, type Dispatcher, request } from 'undici';
import type { Channel } from '../src/channels/service.js';
import { postJson } from '../src/relay/providers/openai.js';
import { AttemptSignal, type UpstreamCall } from '../src/relay/providers/transport.js';
import { readAll } from '../src/relay/upstream-body.js';
import { argOf, numArg } from './lib/args.js';
import { MODEL, startMock } from './lib/targets.js';

const REQUESTS = numArg('--requests', 20_000);
const INFLIGHT = numArg('--inflight', 50);
const ROUNDS = numArg('--rounds', 3);

const mock = await startMock();
const url = new URL(mock.url);
const origin = url.origin;
const path = `${url.pathname}/chat/completions`;
const agent = new Agent({
  headersTimeout: 30_000,
  bodyTimeout: 30_000,
  pipelining: 1,
  keepAliveTimeout: 30_000,
});

const bodyOf = (stream: boolean) =>
  JSON.stringify({ model: MODEL, stream, messages: [{ role: 'user', content: 'Say hello in five words.' }] });
const headersOf = (stream: boolean) => ({
  'content-type': 'application/json',
  accept: stream ? 'text/event-stream' : 'application/json',
  authorization: 'Bearer sk-bench',
});

type One = (stream: boolean) => Promise<number>;

function readByEvents(body: NodeJS.ReadableStream): Promise<number> {
  return new Promise((resolve, reject) => {
    let size = 0;
    body.on('data', (c: Buffer) => {
      size += c.length;
    });
    body.once('end', () => resolve(size));
    body.once('error', reject);
  });
}

/** The POST every way sends (plain or SSE), in undici's dispatch shape. */
const postOf = (stream: boolean) => ({
  origin,
  path,
  method: 'POST' as const,
  headers: headersOf(stream),
  body: bodyOf(stream),
});

/** What a way reads of the answer: the chunks kept whole (plain) or only counted (SSE). */
function collector(stream: boolean, resolve: (size: number) => void) {
  const chunks: Buffer[] = [];
  let size = 0;
  return {
    chunk(c: Buffer) {
      if (stream) size += c.length;
      else chunks.push(c);
    },
    end: () => resolve(stream ? size : Buffer.concat(chunks).length),
  };
}

const viaRequest: One = async (stream) => {
  const { origin: o, path: p, ...opts } = postOf(stream);
  return readByEvents((await request(o + p, { ...opts, dispatcher: agent })).body);
};

const viaRequestForAwait: One = async (stream) => {
  const { origin: o, path: p, ...opts } = postOf(stream);
  const res = await request(o + p, { ...opts, dispatcher: agent });
  let size = 0;
  for await (const c of res.body) size += (c as Buffer).length;
  return size;
};

const viaDispatch: One = (stream) =>
  new Promise((resolve, reject) => {
    const read = collector(stream, resolve);
    agent.dispatch(postOf(stream), {
      onConnect() {},
      onHeaders: () => true,
      onData(c: Buffer) {
        read.chunk(c);
        return true;
      },
      onComplete: read.end,
      onError: reject,
    } as Dispatcher.DispatchHandler);
  });

const viaDispatchController: One = (stream) =>
  new Promise((resolve, reject) => {
    const read = collector(stream, resolve);
    agent.dispatch(postOf(stream), {
      onRequestStart() {},
      onResponseStart() {},
      onResponseData: (_c, chunk) => read.chunk(chunk),
      onResponseEnd: read.end,
      onResponseError: (_c, err) => reject(err),
    });
  });

const viaStream: One = async (stream) => {
  let size = 0;
  await agent.stream(
    postOf(stream),
    () =>
      new Writable({
        write(c: Buffer, _e, cb) {
          size += c.length;
          cb();
        },
      }),
  );
  return size;
};

const viaPostJson: One = async (stream) => {
  const call: UpstreamCall = {
    channel: {} as Channel,
    protocol: 'openai',
    operation: 'generate',
    model: MODEL,
    body: { model: MODEL, stream, messages: [{ role: 'user', content: 'Say hello in five words.' }] },
    stream,
    signal: new AttemptSignal(),
    headers: {},
  };
  const res = await postJson(agent, origin + path, call, { authorization: 'Bearer sk-bench' });
  if (!stream) return (await readAll(res.body, 1 << 20)).length;
  let size = 0;
  await res.body.consume((c) => {
    size += c.length;
  });
  return size;
};

async function run(one: One, stream: boolean, n: number): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const size = await one(stream);
      if (size === 0) throw new Error('empty answer');
    }
  };
  const before = process.cpuUsage();
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / n;
}

const allWays: [string, One][] = [
  ['request', viaRequest],
  ['request-for-await', viaRequestForAwait],
  ['dispatch', viaDispatch],
  ['dispatch-controller', viaDispatchController],
  ['stream', viaStream],
  ['postJson', viaPostJson],
];
const only = argOf('--ways')?.split(',');
const ways = only ? allWays.filter(([name]) => only.includes(name)) : allWays;
const results = new Map<string, number[]>();
try {
  for (const [, one] of ways) for (const s of [false, true]) await run(one, s, 2_000); // warm-up
  for (let round = 0; round < ROUNDS; round++)
    for (const [name, one] of ways)
      for (const s of [false, true]) {
        const key = `${name} ${s ? 'sse' : 'plain'}`;
        results.set(key, [...(results.get(key) ?? []), await run(one, s, REQUESTS)]);
      }
} finally {
  await agent.close();
  await mock.stop();
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`${REQUESTS} requests at ${INFLIGHT} in flight, median of ${ROUNDS} rounds (CPU µs/request):`);
console.log('| way | plain | sse |\n| --- | ---: | ---: |');
for (const [name] of ways)
  console.log(
    `| ${name} | ${median(results.get(`${name} plain`)!).toFixed(1)} | ${median(results.get(`${name} sse`)!).toFixed(1)} |`,
  );
