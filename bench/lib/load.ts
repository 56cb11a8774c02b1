// One autocannon measurement against one target, with the server's (and the upstream's) CPU
// time read from /proc around it.
import autocannon from 'autocannon';
import { cpuMicros, cpuSince, machineCpuMicros, mainThreadCpuMicros, memory, servicesCpu } from './proc.js';
import { MODEL, type Target } from './targets.js';

export interface Scenario {
  id: string;
  stream: boolean;
  connections: number;
  /**
   * The client's wire protocol. `anthropic` sends `POST /v1/messages` to a gateway whose channel
   * speaks OpenAI (the translation path); only targets with `translates` run it, and its
   * ratios are taken against the floor's OpenAI pass-through in `floor` (same round).
   */
  protocol: 'openai' | 'anthropic';
  floor: string;
}

export const SCENARIOS: Scenario[] = [
  { id: 'plain-c1', stream: false, connections: 1, protocol: 'openai', floor: 'plain-c1' },
  { id: 'plain-c50', stream: false, connections: 50, protocol: 'openai', floor: 'plain-c50' },
  { id: 'stream-c1', stream: true, connections: 1, protocol: 'openai', floor: 'stream-c1' },
  { id: 'stream-c50', stream: true, connections: 50, protocol: 'openai', floor: 'stream-c50' },
  { id: 'msgs-plain-c50', stream: false, connections: 50, protocol: 'anthropic', floor: 'plain-c50' },
  { id: 'msgs-stream-c50', stream: true, connections: 50, protocol: 'anthropic', floor: 'stream-c50' },
];

/** Does this target run this scenario? (Only translating gateways take Anthropic requests to an OpenAI channel.) */
export const runs = (t: Target, s: Scenario) => s.protocol === 'openai' || t.translates === true;

export const scenarioPath = (s: Pick<Scenario, 'protocol'>) =>
  s.protocol === 'anthropic' ? '/v1/messages' : '/v1/chat/completions';

/** Anthropic Messages: the same prompt and cap, in Anthropic's shape. */
export const messagesBody = (stream: boolean) =>
  JSON.stringify({
    model: MODEL,
    max_tokens: 16,
    messages: [{ role: 'user', content: 'Hello, mole! Say something short.' }],
    ...(stream ? { stream: true } : {}),
  });

export const bodyFor = (s: Pick<Scenario, 'protocol' | 'stream'>) =>
  s.protocol === 'anthropic' ? messagesBody(s.stream) : requestBody(s.stream);

export const headersFor = (t: Target, s: Pick<Scenario, 'protocol'>) =>
  s.protocol === 'anthropic' ? { ...t.headers, 'anthropic-version': '2023-06-01' } : t.headers;

/** An Anthropic answer: a message with usage, or an SSE stream that ends with message_stop. */
export function verifierFor(s: Pick<Scenario, 'protocol' | 'stream'>): (body: string) => boolean {
  if (s.protocol === 'openai') return verifier(s.stream);
  return s.stream
    ? (b) => b.includes('event: message_start') && /event: message_stop\ndata: [^\n]*\n\n$/.test(b)
    : (b) => b.includes('"type":"message"') && b.includes('"usage"') && b.includes('"end_turn"');
}

export const requestBody = (stream: boolean) =>
  JSON.stringify({
    model: MODEL,
    messages: [{ role: 'user', content: 'Hello, mole! Say something short.' }],
    max_tokens: 16,
    ...(stream ? { stream: true } : {}),
  });

/** A complete answer: a chat completion object, or an SSE stream that ends with [DONE]. */
export function verifier(stream: boolean): (body: string) => boolean {
  return stream
    ? (b) => b.endsWith('data: [DONE]\n\n') && b.includes('"chat.completion.chunk"')
    : (b) => b.includes('"chat.completion"') && b.includes('"usage"');
}

export interface Measurement {
  target: string;
  scenario: string;
  round: number;
  seconds: number;
  completed: number;
  ok2xx: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  /** Mean latency from Little's law for a closed loop (connections ÷ throughput): exact, unlike autocannon's 1 ms histogram. */
  meanms: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  mismatches: number;
  bytesPerResponse: number;
  serverCpuUsPerReq: number;
  /** The server's main thread alone (its event loop). */
  serverMainCpuUsPerReq: number;
  /** Share of one core the server used during the run. */
  serverCores: number;
  upstreamCpuUsPerReq: number;
  /** Redis's and PostgreSQL's CPU per request (whatever else they served meanwhile included). */
  redisCpuUsPerReq: number;
  postgresCpuUsPerReq: number;
  /** The whole machine's busy CPU per request: server, upstream, load generator, services, kernel. */
  machineCpuUsPerReq: number;
  serverRssBytes: number;
}

export async function measure(
  t: Target,
  s: Scenario,
  round: number,
  seconds: number,
  upstreamPid: number,
): Promise<Measurement> {
  const pid = t.server.pid;
  const c0 = cpuMicros(pid);
  const main0 = mainThreadCpuMicros(pid);
  const u0 = cpuMicros(upstreamPid);
  const s0 = servicesCpu();
  const m0 = machineCpuMicros();
  const w0 = performance.now();
  const r = await autocannon({ ...loadOptions(t, s, seconds), verifyBody: verifierFor(s) });
  const wall = (performance.now() - w0) / 1000;
  const c1 = cpuMicros(pid);
  const main1 = mainThreadCpuMicros(pid);
  const u1 = cpuMicros(upstreamPid);
  const m1 = machineCpuMicros();
  const services = cpuSince(s0, servicesCpu());
  const completed = r.latency.totalCount;
  const perReq = (us: number) => (completed ? us / completed : NaN);
  return {
    target: t.name,
    scenario: s.id,
    round,
    seconds: r.duration,
    completed,
    ok2xx: r['2xx'],
    rps: r['2xx'] / r.duration,
    p50ms: r.latency.p50,
    p99ms: r.latency.p99,
    meanms: completed ? (s.connections * r.duration * 1000) / completed : NaN,
    errors: r.errors,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
    mismatches: r.mismatches,
    bytesPerResponse: completed ? r.throughput.total / completed : 0,
    serverCpuUsPerReq: completed ? (c1 - c0) / completed : NaN,
    serverMainCpuUsPerReq: completed ? (main1 - main0) / completed : NaN,
    serverCores: (c1 - c0) / 1e6 / wall,
    upstreamCpuUsPerReq: perReq(u1 - u0),
    redisCpuUsPerReq: perReq(services.redis),
    postgresCpuUsPerReq: perReq(services.postgres),
    machineCpuUsPerReq: perReq(m1 - m0),
    serverRssBytes: memory(pid).rss,
  };
}

/** A short unmeasured run so every server is JIT-warm and has its pools open. */
export async function warm(t: Target, s: Scenario, seconds: number): Promise<void> {
  await autocannon(loadOptions(t, s, seconds));
}

/** The load one scenario puts on one target for `seconds` (measured or warm-up alike). */
function loadOptions(t: Target, s: Scenario, seconds: number) {
  return {
    url: t.url + scenarioPath(s),
    method: 'POST' as const,
    headers: headersFor(t, s),
    body: bodyFor(s),
    connections: s.connections,
    duration: seconds,
    timeout: 10,
  };
}
