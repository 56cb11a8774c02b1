/**
 * Micro benchmark: the per-frame stream check (SSE parse + decode + StreamCheck) on a
 * pass-through path (OpenAI, Anthropic or Responses), without sockets or the rest of the relay.
 *
 *   npx tsx bench/stream-check.ts [--protocol openai|anthropic|responses] [--deltas N]
 *                                 [--obfuscation] [--streams 10000] [--rounds 7]
 *                                 [--against <checkout>]
 *
 * The stream is recorded once from test/mock-provider, 16 tokens: for OpenAI (POST
 * /v1/chat/completions, include_usage as the gateway asks upstream) role chunk, 16 token
 * chunks, finish, usage, [DONE]; for Anthropic (POST /v1/messages) message_start,
 * content_block_start, ping, 16 content_block_deltas, content_block_stop, message_delta,
 * message_stop; for Responses (POST /v1/responses) created, in_progress, the message item and
 * its part opened, 16 output_text deltas, the text, part and item done, completed. `--deltas N`
 * repeats the text deltas to N, a longer answer. `--obfuscation` (OpenAI) pads every chunk with
 * a random `obfuscation` member, as api.openai.com does by default. It is then fed through a
 * fresh StreamCheck --streams times per round, in two chunkings: the whole stream as one chunk
 * (what a loopback upstream delivers) and one chunk per frame (a slow upstream); then whole
 * again with the generated text read, as for a stream cut short or an upstream that reports no
 * usage (the relay reads it only then). Prints CPU µs per stream (best and median round; CPU
 * time, not wall time, as the machine is shared). `--against` names another checkout (e.g. an
 * export of the previous commit, with node_modules linked) whose StreamCheck runs in alternate
 * rounds in this same process, for a before/after under the same noise. The "JSON.parse only"
 * line is the floor: parsing each frame's data, nothing else.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { IngressRequest } from '../src/relay/protocols/types.js';
import { startMockProvider } from '../test/mock-provider/server.js';
import { argOf, numArg } from './lib/args.js';

const PROTOCOL = argOf('--protocol') ?? 'openai';
if (!['openai', 'anthropic', 'responses'].includes(PROTOCOL))
  throw new Error('--protocol is openai, anthropic or responses');
const STREAMS = numArg('--streams', 10000);
const ROUNDS = numArg('--rounds', 7);
const AGAINST = argOf('--against');

type Runner = (chunks: Buffer[], readProduced?: boolean) => number;

/** A runner over `root`'s StreamCheck and OpenAI codec, with its own copy of the runner code. */
async function load(root: string, copy: string): Promise<Runner> {
  const url = (p: string) => pathToFileURL(path.resolve(root, p)).href;
  const stream = await import(url('src/relay/stream.ts'));
  const codec = await import(url(`src/relay/protocols/${PROTOCOL}.ts`));
  const run = await import(`./lib/stream-check-run.ts?${copy}`);
  return run.streamRunner(stream.StreamCheck, codec[`${PROTOCOL}Codec`], r);
}

const mock = await startMockProvider({ recordRequests: false });
if (process.argv.includes('--obfuscation')) mock.setScenario('*', { obfuscation: true });
const prompt = 'Hello, mole! Say something short.';
const messages = [{ role: 'user', content: prompt }];
/** Each protocol's streamed request to the mock: its path, extra headers and body. */
const REQUESTS: Record<string, [string, Record<string, string>, object]> = {
  openai: [
    'chat/completions',
    {},
    { model: 'gpt-4o-mini', messages, max_tokens: 16, stream: true, stream_options: { include_usage: true } },
  ],
  anthropic: [
    'messages',
    { 'anthropic-version': '2023-06-01' },
    { model: 'claude-sonnet-4-5', messages, max_tokens: 16, stream: true },
  ],
  responses: ['responses', {}, { model: 'gpt-4o-mini', input: prompt, max_output_tokens: 16, stream: true }],
};
const [route, headers, body] = REQUESTS[PROTOCOL]!;
const res = await fetch(`${mock.url}/${route}`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(body),
});
const recorded = Buffer.from(await res.arrayBuffer());
await mock.close();

// --deltas N: a longer answer, the recorded text deltas repeated until there are N of them.
const DELTAS = numArg('--deltas', 0);
const isDelta = (f: string) => /output_text\.delta|content_block_delta|"content":"[^"]/.test(f);
const frames = (() => {
  const all = recorded.toString('utf8').split(/(?<=\n\n)/);
  const first = all.findIndex(isDelta);
  const last = all.findLastIndex(isDelta);
  if (DELTAS === 0 || first < 0) return all;
  const deltas = all.slice(first, last + 1);
  const many = Array.from({ length: DELTAS }, (_, i) => deltas[i % deltas.length]!);
  return [...all.slice(0, first), ...many, ...all.slice(last + 1)];
})();
const wire = Buffer.from(frames.join(''));
const whole = [wire];
const perFrame = frames.map((f) => Buffer.from(f));
const frameData = frames.map((f) => f.slice(f.indexOf('data: ') + 6, -2));

// The client did not ask for usage (the bench's own request): the usage chunk is hidden.
const r = {
  protocol: PROTOCOL,
  operation: 'generate',
  model: 'gpt-4o-mini',
  stream: true,
  promptTokens: 20,
  maxOutputTokens: 16,
  impliedOutputCap: null,
  clientWantsUsage: false,
  body: {},
} as unknown as IngressRequest;

let sink = 0;
const parseOnly = () => {
  for (const d of frameData) if (d !== '[DONE]') sink += JSON.parse(d) ? 1 : 0;
};

/** CPU µs per stream of `run`, one round. */
function round(run: () => void): number {
  const t0 = process.cpuUsage();
  for (let i = 0; i < STREAMS; i++) run();
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / STREAMS;
}

function report(name: string, perStream: number[]): void {
  perStream.sort((a, b) => a - b);
  const best = perStream[0]!.toFixed(2);
  const median = perStream[Math.floor(perStream.length / 2)]!.toFixed(2);
  console.log(`${name.padEnd(40)} best ${best.padStart(7)}   median ${median.padStart(7)} µs/stream`);
}

const here = await load(path.resolve(import.meta.dirname, '..'), 'here');
const there = AGAINST ? await load(AGAINST, 'there') : null;

console.log(
  `${frames.length} frames, ${wire.length} bytes; ${STREAMS} streams × ${ROUNDS} rounds (CPU time)`,
);
for (const [name, chunks, readProduced] of [
  ['one chunk per stream', whole, false],
  ['one chunk per frame', perFrame, false],
  ['one chunk per stream, text read', whole, true],
] as const) {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < 2000; i++) {
    sink += here(chunks, readProduced); // warm-up: let the JIT settle
    sink += there?.(chunks, readProduced) ?? 0;
  }
  for (let i = 0; i < ROUNDS; i++) {
    a.push(round(() => (sink += here(chunks, readProduced))));
    if (there) b.push(round(() => (sink += there(chunks, readProduced))));
  }
  report(`${name}: this checkout`, a);
  if (there) report(`${name}: ${AGAINST}`, b);
}
const p: number[] = [];
for (let i = 0; i < ROUNDS; i++) p.push(round(parseOnly));
report('JSON.parse only (floor)', p);
if (sink === 0) console.log('(nothing produced)');
