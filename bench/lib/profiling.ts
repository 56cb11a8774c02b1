// What the profilers share (bench/profile.ts: CPU; bench/alloc-profile.ts: allocation): the
// load modes, a gateway per mode, how a frame's script is named, and where reports go.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { bodyFor, headersFor, type SCENARIOS, scenarioPath } from './load.js';
import { pgEnv, pgSchema } from './pg-schema.js';
import { BENCH_DIR, REPO, startMock, startMole } from './targets.js';

export const MODE = {
  plain: { protocol: 'openai', stream: false, title: 'Plain' },
  stream: { protocol: 'openai', stream: true, title: 'Streaming (stream: true)' },
  'msgs-plain': {
    protocol: 'anthropic',
    stream: false,
    title: 'Translated, Anthropic Messages → OpenAI channel, plain',
  },
  'msgs-stream': {
    protocol: 'anthropic',
    stream: true,
    title: 'Translated, Anthropic Messages → OpenAI channel, streaming',
  },
} as const satisfies Record<
  string,
  { protocol: (typeof SCENARIOS)[number]['protocol']; stream: boolean; title: string }
>;

/** The modes named by `--modes a,b` (default plain,stream); an unknown one stops the run. */
export function modesOf(list: string | undefined): Array<keyof typeof MODE> {
  const modes = (list ?? 'plain,stream').split(',');
  for (const m of modes)
    if (!(m in MODE)) throw new Error(`--modes: "${m}" is none of ${Object.keys(MODE).join(', ')}`);
  return modes as Array<keyof typeof MODE>;
}

/** A frame's script as a report names it: a package, a node: module, or src/… for the gateway's own. */
export function where(url: string): string {
  if (!url) return '(native)';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + 13).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (u.includes('/bench/.build/server/'))
    return 'src/' + u.split('/bench/.build/server/')[1]!.replace(/\.js$/, '.ts');
  if (u.startsWith('node:')) return u;
  return path.relative(REPO, u) || u;
}

/** One mode's run: its gateway (started for it alone) and the load to put on it. */
export interface ModeRun {
  mode: keyof typeof MODE;
  title: string;
  mole: Awaited<ReturnType<typeof startMole>>;
  /** autocannon options for this mode's requests (add duration and, measured, verifyBody). */
  load: {
    url: string;
    method: 'POST';
    headers: Record<string, string>;
    body: string;
    connections: number;
    timeout: number;
  };
}

/**
 * For each mode: a mock upstream and a fresh gateway (`main`, with `gateway(mode)`'s node
 * arguments and environment; on PostgreSQL, and Redis, when BENCH_DATABASE_URL / BENCH_REDIS_URL
 * say so, in a schema of its own), warmed up for 3 s, then `run`; everything stopped after.
 */
export async function eachMode(
  modes: Array<keyof typeof MODE>,
  o: {
    main: string;
    connections: number;
    gateway: (mode: keyof typeof MODE) => { nodeArgs: string[]; env?: Record<string, string> };
  },
  run: (r: ModeRun) => Promise<void>,
): Promise<void> {
  const dbUrl = process.env.BENCH_DATABASE_URL;
  for (const mode of modes) {
    const m = MODE[mode];
    const g = o.gateway(mode);
    const mock = await startMock();
    const db = dbUrl ? await pgSchema(dbUrl) : null;
    const mole = await startMole({
      main: o.main,
      mockUrl: mock.url,
      nodeArgs: g.nodeArgs,
      env: { ...(db ? pgEnv(db.url, process.env.BENCH_REDIS_URL) : {}), ...g.env },
    });
    try {
      const load = {
        url: mole.url + scenarioPath(m),
        method: 'POST' as const,
        headers: headersFor(mole, m),
        body: bodyFor(m),
        connections: o.connections,
        timeout: 10,
      };
      await autocannon({ ...load, duration: 3 }); // warm-up, outside what is measured
      await run({ mode, title: m.title, mole, load });
    } finally {
      await mole.server.stop();
      await mock.stop();
      await db?.drop();
    }
  }
}

/** The backend a profile ran on, as its report names it. */
export const backendName = (): string =>
  process.env.BENCH_DATABASE_URL
    ? process.env.BENCH_REDIS_URL
      ? 'PostgreSQL + Redis'
      : 'PostgreSQL'
    : 'SQLite';

/** Writes a profiler's report to bench/results/<name>-<stamp>.md and prints it. */
export function writeReport(name: string, stamp: string, report: string): void {
  const file = path.join(BENCH_DIR, 'results', `${name}-${stamp}.md`);
  writeFileSync(file, report);
  process.stdout.write(report);
  process.stderr.write(`wrote ${path.relative(REPO, file)}\n`);
}
