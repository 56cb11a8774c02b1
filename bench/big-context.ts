/**
 * What a long prompt costs the gateway: Anthropic Messages (`POST /v1/messages`, the coding
 * agents' protocol) with a 0, 30 and 100 KB user message, translated to the mock's OpenAI
 * channel, 4 connections for 5 s each after 3 s of warm-up. Prints req/s and the gateway's CPU
 * per request (whole process and main thread). The text is pseudo-random words, so the
 * tokenizer's cache helps less than with one repeated sentence (it still sees the same body
 * every time, which flatters any per-request tokenizing).
 *
 *   npx tsx bench/big-context.ts                       # this checkout, built
 *   MOLE_MAIN=/path/to/other/build/main.js npx tsx bench/big-context.ts   # another build (A/B)
 */
import autocannon from 'autocannon';
import { cpuMicros, mainThreadCpuMicros } from './lib/proc.js';
import { buildMole, startMock, startMole } from './lib/targets.js';

const WORDS =
  'the gateway forwards request upstream model records usage per key function return const let value async await import export class interface type string number object array map set promise error result config server client stream token billing ledger admission limit budget channel'.split(
    ' ',
  );

/** `bytes` of word-like text, the same for every run (a fixed seed). */
function text(bytes: number): string {
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  let s = '';
  while (s.length < bytes)
    s += WORDS[Math.floor(rnd() * WORDS.length)]! + (rnd() < 0.1 ? `(${Math.floor(rnd() * 1e6)});\n` : ' ');
  return s;
}

const main = process.env.MOLE_MAIN ?? (await buildMole());
const mock = await startMock({ name: 'mock' });
const mole = await startMole({ main, mockUrl: mock.url, name: 'mole' });
const pid = mole.server.pid!;
try {
  for (const kb of [0, 30, 100]) {
    const content = kb ? text(kb * 1024) : 'Hello, mole! Say something short.';
    const body = JSON.stringify({
      model: 'gpt-4o-mini',
      max_tokens: 16,
      messages: [{ role: 'user', content }],
    });
    const run = (duration: number) =>
      autocannon({
        url: `${mole.url}/v1/messages`,
        method: 'POST',
        connections: 4,
        duration,
        headers: { ...mole.headers, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
        body,
      });
    await run(3);
    const cpu0 = cpuMicros(pid);
    const main0 = mainThreadCpuMicros(pid);
    const r = await run(5);
    const n = r['2xx'];
    console.log(
      `${String(kb).padStart(3)} KB: ${(n / 5).toFixed(0).padStart(5)} req/s, non-2xx ${r.non2xx}, CPU ${((cpuMicros(pid) - cpu0) / n).toFixed(0)} µs/req (main thread ${((mainThreadCpuMicros(pid) - main0) / n).toFixed(0)})`,
    );
  }
} finally {
  await mole.server.stop();
  await mock.stop();
}
