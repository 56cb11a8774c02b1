// What the profilers share (bench/profile.ts: CPU; bench/alloc-profile.ts: allocation): the
// load modes, the --modes option, and how a frame's script is named in a report.
import path from 'node:path';
import type { SCENARIOS } from './load.js';
import { REPO } from './targets.js';

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
