/**
 * What the gateway retains per open stream, as live heap: the gateway runs in this process
 * (test/helpers/server.ts, SQLite), the mock upstream in its own, and N clients here read
 * long streams (one event every 10 ms) and discard them. Every 2 s the heap is measured after
 * two full GCs, against the same measure before the streams opened. RSS (what `npm run bench`'s
 * long-stream table shows) grows with allocation churn too and hid a 256 KiB-a-stream buffer
 * that this measure showed (see the kept-frames bound in relay/protocols/openai.ts).
 *
 *   node --expose-gc --import tsx bench/stream-heap.ts [--streams 100] [--tokens 1000] [--messages]
 *
 * `--messages`: the clients speak Anthropic Messages to the OpenAI channel (the translation
 * path, whose stream is decoded and re-encoded event by event).
 *
 * The figure includes this process's own clients (fetch readers): an upper bound on the
 * gateway's part.
 */
import { numArg } from './lib/args.js';
import { startMock } from './lib/targets.js';
import { startTestServer, userWithKey } from '../test/helpers/server.js';

const STREAMS = numArg('--streams', 100);
const TOKENS = numArg('--tokens', 1000);
const MESSAGES = process.argv.includes('--messages');
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc --import tsx bench/stream-heap.ts');

const mock = await startMock({ scenario: { chunkDelayMs: 10, completionTokens: TOKENS } });
const s = await startTestServer();
try {
  await s.api('POST', '/api/channels', {
    name: 'mock',
    type: 'openai',
    base_url: mock.url,
    api_key: 'sk-upstream',
    models: ['gpt-4o-mini'],
  });
  await s.api('PUT', '/api/prices/gpt-4o-mini', { input: 0.15, output: 0.6 });
  const { secret } = await userWithKey(s, { balance: 1000 });
  const heap = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const stream = async () => {
    const res = await fetch(`${s.url}/v1/${MESSAGES ? 'messages' : 'chat/completions'}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${secret}`,
        'content-type': 'application/json',
        ...(MESSAGES ? { 'anthropic-version': '2023-06-01' } : {}),
      },
      body: JSON.stringify({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'a long answer' }],
        max_tokens: TOKENS,
        stream: true,
      }),
    });
    const reader = res.body!.getReader();
    let bytes = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return bytes;
      bytes += value.length;
    }
  };
  await stream();
  const before = heap();
  const perStream = () => `${((heap() - before) / 1024 / STREAMS).toFixed(0)} KiB`;
  const all = Promise.all(Array.from({ length: STREAMS }, stream));
  const seconds = Math.ceil((TOKENS * 10) / 1000);
  for (let t = 2; t < seconds; t += 2) {
    await new Promise((r) => setTimeout(r, 2000));
    console.log(`${t} s: live heap +${perStream()} a stream`);
  }
  const bytes = await all;
  console.log(`all ${STREAMS} ended (${bytes[0]} bytes each): live heap +${perStream()} a stream`);
} finally {
  await s.close();
  await mock.stop();
}
