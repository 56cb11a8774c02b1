// Tool names as every upstream takes them. OpenAI refuses a function name past 64 characters
// or with characters outside [A-Za-z0-9_-] ("string too long"), and Anthropic and Gemini hold
// names to about the same; clients make longer ones (Claude Code's `mcp__<server>__<tool>`,
// Codex's namespaced tools). A translated request's names that do not fit are replaced by a
// fitting one (a readable prefix and a digest of the whole name), and the upstream's calls are
// named back before the client sees them.
import { createHash } from 'node:crypto';
import type { CanonicalAnswer, CanonicalRequest, Message, StreamEvent } from './canonical.js';

const FITS = /^[A-Za-z0-9_-]{1,64}$/;

/** The fitting name for `name`: its first characters made safe, and 8 hex of its digest. */
function fitted(name: string): string {
  const digest = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return `${name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 55)}_${digest}`;
}

/**
 * `c` with every tool name that does not fit replaced (declarations, the forced choice, the
 * history's calls and results), and the map from each new name back to the client's; null when
 * every name fits (the usual case: nothing is copied).
 */
export function fitToolNames(
  c: CanonicalRequest,
): { request: CanonicalRequest; names: Map<string, string> } | null {
  const all = new Set<string>(c.tools.map((t) => t.name));
  if (c.toolChoice !== null && typeof c.toolChoice === 'object') all.add(c.toolChoice.name);
  for (const m of c.messages) {
    if (m.role === 'assistant') for (const t of m.toolCalls) all.add(t.name);
    else if (m.role === 'tool' && m.name !== undefined) all.add(m.name);
  }
  const to = new Map<string, string>();
  for (const name of all) if (!FITS.test(name)) to.set(name, fitted(name));
  if (to.size === 0) return null;
  const rename = (name: string) => to.get(name) ?? name;
  const messages = c.messages.map((m): Message => {
    if (m.role === 'assistant')
      return { ...m, toolCalls: m.toolCalls.map((t) => ({ ...t, name: rename(t.name) })) };
    if (m.role === 'tool' && m.name !== undefined) return { ...m, name: rename(m.name) };
    return m;
  });
  return {
    request: {
      ...c,
      messages,
      tools: c.tools.map((t) => ({ ...t, name: rename(t.name) })),
      toolChoice:
        c.toolChoice !== null && typeof c.toolChoice === 'object'
          ? { name: rename(c.toolChoice.name) }
          : c.toolChoice,
    },
    names: new Map([...to].map(([client, upstream]) => [upstream, client])),
  };
}

/** An upstream answer with its calls named as the client declared them. */
export function namedBack(a: CanonicalAnswer, names: ReadonlyMap<string, string>): CanonicalAnswer {
  return { ...a, toolCalls: a.toolCalls.map((t) => ({ ...t, name: names.get(t.name) ?? t.name })) };
}

/** A stream event with its call named as the client declared it. */
export const eventNamedBack = (e: StreamEvent, names: ReadonlyMap<string, string>): StreamEvent =>
  e.type === 'tool_call' ? { ...e, name: names.get(e.name) ?? e.name } : e;
