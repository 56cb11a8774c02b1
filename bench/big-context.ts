/**
 * What a long prompt costs the gateway: Anthropic Messages (`POST /v1/messages`, the coding
 * agents' protocol) translated to the mock's OpenAI channel (with `--anthropic`, passed through
 * to an Anthropic channel of the mock; with `--gemini`, Gemini's generateContent in Gemini CLI's
 * shape, with no output cap of its own, to a Gemini channel), 4 connections for 5 s each after
 * 3 s of warm-up. Prints req/s and the gateway's CPU per request (whole process and main
 * thread). The text is pseudo-random words, so the tokenizer's own cache helps less than with
 * one repeated sentence.
 *
 * Rows: one user message of 0, 30 and 100 KB, the same body every time (which flatters any
 * per-request tokenizing); then, with `--agent`, conversations as a coding agent holds them:
 * a 12 KB system prompt and 24 KB of tool definitions, and a history that grows by a new
 * 2 KB user turn and a 1 KB reply with every request, a new conversation after 30 turns
 * (~125 KB), 4 conversations side by side. Nothing in an agent's request is new but its
 * last turn.
 *
 *   npx tsx bench/big-context.ts [--stream] [--agent] [--anthropic | --gemini] [--sizes 0,30,100]
 *   MOLE_MAIN=/path/to/other/build/main.js npx tsx bench/big-context.ts   # another build (A/B)
 *   BIG_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" npx tsx bench/big-context.ts   # profile it
 */
import autocannon from 'autocannon';
import { argOf, flag } from './lib/args.js';
import { cpuMicros, mainThreadCpuMicros } from './lib/proc.js';
import { clientFromEnv } from '../src/cli/client.js';
import { buildMole, MASTER_KEY, startMock, startMole, UPSTREAM_KEY } from './lib/targets.js';

const WORDS =
  'the gateway forwards request upstream model records usage per key function return const let value async await import export class interface type string number object array map set promise error result config server client stream token billing ledger admission limit budget channel'.split(
    ' ',
  );

/** `bytes` of word-like text, the same for every run of a seed. */
function text(bytes: number, seedOf = 7): string {
  let seed = seedOf;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  let s = '';
  while (s.length < bytes)
    s += WORDS[Math.floor(rnd() * WORDS.length)]! + (rnd() < 0.1 ? `(${Math.floor(rnd() * 1e6)});\n` : ' ');
  return s;
}

const STREAM = flag('--stream');
const AGENT = flag('--agent');
/** An Anthropic channel (pass-through) instead of the OpenAI one (translation). */
const ANTHROPIC = flag('--anthropic');
/** Gemini in (Gemini CLI's shape: no output cap of its own) to a Gemini channel (pass-through). */
const GEMINI = flag('--gemini');
const MODEL = ANTHROPIC ? 'claude-bench' : GEMINI ? 'gemini-bench' : 'gpt-4o-mini';
const CONNECTIONS = 4;
const headers = (h: Record<string, string>): Record<string, string> =>
  GEMINI
    ? { 'content-type': 'application/json', 'x-goog-api-key': h.authorization!.replace(/^Bearer /, '') }
    : { ...h, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' };

type Turn = { role: string; content: string };
/** A request's body in the protocol sent: Anthropic Messages, or Gemini's generateContent. */
function bodyOf(messages: Turn[], system?: string, tools?: ReturnType<typeof tool>[]): string {
  if (!GEMINI)
    return JSON.stringify({ model: MODEL, max_tokens: 16, stream: STREAM, system, tools, messages });
  return JSON.stringify({
    ...(system ? { systemInstruction: { parts: [{ text: system }] } } : {}),
    contents: messages.map((m) => ({
      role: m.role === 'assistant' ? 'model' : 'user',
      parts: [{ text: m.content }],
    })),
    ...(tools
      ? {
          tools: [
            {
              functionDeclarations: tools.map((t) => ({
                name: t.name,
                description: t.description,
                parameters: t.input_schema,
              })),
            },
          ],
        }
      : {}),
    generationConfig: { temperature: 0 },
  });
}

/** One row: `requests` for 3 s of warm-up, then 5 s measured; prints rate and CPU. */
async function row(
  label: string,
  url: string,
  h: Record<string, string>,
  pid: number,
  load: { body: string } | { requests: unknown[] },
): Promise<void> {
  const run = (duration: number) =>
    autocannon({ url, method: 'POST', connections: CONNECTIONS, duration, headers: h, ...load });
  await run(3);
  const cpu0 = cpuMicros(pid);
  const main0 = mainThreadCpuMicros(pid);
  const r = await run(5);
  const n = r['2xx'];
  console.log(
    `${label}: ${(n / 5).toFixed(0).padStart(5)} req/s, non-2xx ${r.non2xx}, CPU ${((cpuMicros(pid) - cpu0) / n).toFixed(0)} µs/req (main thread ${((mainThreadCpuMicros(pid) - main0) / n).toFixed(0)})`,
  );
}

/** A tool definition of ~1.2 KB, the shape Claude Code declares its tools in. */
const tool = (i: number) => ({
  name: `tool_${i}`,
  description: text(900, 1000 + i),
  input_schema: {
    type: 'object',
    properties: { path: { type: 'string', description: text(150, 2000 + i) }, limit: { type: 'number' } },
    required: ['path'],
  },
});
const SYSTEM = text(12 * 1024, 11);
const TOOLS = Array.from({ length: 20 }, (_, i) => tool(i));
const TURNS = 30;

/** Requests of `CONNECTIONS` growing conversations, taken in turn; every turn's text is new. */
function agentRequests(): unknown[] {
  let seed = 100_000;
  const conversations = Array.from(
    { length: CONNECTIONS },
    () => [] as Array<{ role: string; content: string }>,
  );
  let next = 0;
  return [
    {
      setupRequest: (req: Record<string, unknown>) => {
        const history = conversations[next++ % CONNECTIONS]!;
        if (history.length >= 2 * TURNS) history.length = 0;
        else if (history.length > 0) history.push({ role: 'assistant', content: text(1024, seed++) });
        history.push({ role: 'user', content: text(2048, seed++) });
        return { ...req, body: bodyOf(history, SYSTEM, TOOLS) };
      },
    },
  ];
}

const main = process.env.MOLE_MAIN ?? (await buildMole());
const mock = await startMock({ name: 'mock' });
const mole = await startMole({
  main,
  mockUrl: mock.url,
  name: 'mole',
  nodeArgs: process.env.BIG_NODE_ARGS?.split(' ') ?? [],
});
const pid = mole.server.pid!;
const url = GEMINI
  ? `${mole.url}/v1beta/models/${MODEL}:${STREAM ? 'streamGenerateContent?alt=sse' : 'generateContent'}`
  : `${mole.url}/v1/messages`;
try {
  if (ANTHROPIC || GEMINI) {
    const admin = clientFromEnv({ MOLE_URL: mole.url, MOLE_TOKEN: MASTER_KEY });
    await admin.request('POST', '/api/channels', {
      body: {
        name: 'bench-pass-through',
        type: ANTHROPIC ? 'anthropic' : 'gemini',
        base_url: mock.url,
        api_key: UPSTREAM_KEY,
        models: [MODEL],
      },
    });
    await admin.request('PUT', `/api/prices/${MODEL}`, { body: { input: 3, output: 15 } });
  }
  console.log(
    `${STREAM ? 'streaming' : 'plain'}, ${ANTHROPIC ? 'Anthropic channel' : GEMINI ? 'Gemini in, Gemini channel' : 'OpenAI channel'}`,
  );
  for (const kb of (argOf('--sizes') ?? '0,30,100').split(',').map(Number)) {
    const content = kb ? text(kb * 1024) : 'Hello, mole! Say something short.';
    const body = bodyOf([{ role: 'user', content }]);
    await row(`${String(kb).padStart(3)} KB`, url, headers(mole.headers), pid, { body });
  }
  if (AGENT) await row('agent', url, headers(mole.headers), pid, { requests: agentRequests() });
} finally {
  await mole.server.stop();
  await mock.stop();
}
