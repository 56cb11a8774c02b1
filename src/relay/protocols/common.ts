// What several protocol codecs share beyond JSON (json.ts): the state a stream decoder keeps,
// the client headers a pass-through forwards, and tool call ids fitted to an upstream's limit.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { CanonicalUsage, StreamDecoder, StreamEvent } from '../canonical.js';

/** The client's headers that `forward` names, as they go upstream (a repeated one joined by ", "). */
export function headersNamed(
  headers: IncomingHttpHeaders,
  forward: (name: string) => boolean,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(headers)) {
    if (v === undefined || !forward(name)) continue;
    out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** A `data:<media type>;base64,<data>` URL's parts (null for any other URL). */
export function parseDataUrl(url: string): { mediaType: string; data: string } | null {
  const m = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  return m ? { mediaType: m[1]!, data: m[2]! } : null;
}

/**
 * A tool call id as an upstream with a length limit takes it (OpenAI: 40 characters in chat,
 * 64 in Responses). Ids from elsewhere can be longer (a Gemini call's id carries its thought
 * signature): such an id is replaced by a digest of it, the same for the call and its result.
 */
export function fittedCallId(id: string, max: number): string {
  if (id.length <= max) return id;
  return `call_${createHash('sha256')
    .update(id)
    .digest('base64url')
    .slice(0, max - 5)}`;
}

/** OpenAI's tier names, as billing compares them (every answer says one: no copy for these). */
const TIERS = new Set(['default', 'priority', 'flex', 'auto', 'scale']);

/** A tier's name as billing compares it: trimmed, in lower case (a lenient upstream's " Priority"). */
const tierName = (t: string) => (TIERS.has(t) ? t : t.trim().toLowerCase());

/** The processing tier an answer says it was served at (OpenAI `service_tier`); undefined: none. */
export const statedTierName = (t: unknown): string | undefined =>
  typeof t === 'string' && t.length > 0 && t.length <= 32 ? tierName(t) : undefined;

/** The same, as an answer carries it. */
export const tierOf = (t: unknown): { serviceTier?: string } => {
  const name = statedTierName(t);
  return name === undefined ? {} : { serviceTier: name };
};

/** The tier a request asks for (OpenAI `service_tier`), as IngressRequest carries it. */
export const askedTier = (body: Record<string, unknown>): { serviceTier?: string } =>
  typeof body.service_tier === 'string' ? { serviceTier: tierName(body.service_tier) } : {};

/** An answer's searches as it carries them: absent when none (most answers). */
export const shownSearches = (n: number): { webSearches?: number } => (n > 0 ? { webSearches: n } : {});

/**
 * Searches held for when a request offers a provider's search tool without bounding its use:
 * past them an answer is still charged, as far as the key's quota and the account's balance go.
 */
export const SEARCHES_HELD_UNBOUNDED = 10;

/** The searches a request's search tools may run: the bound it set (`max_uses`, …), else the assumed one. */
export function searchesHeld(offered: boolean, bound: unknown): number {
  if (!offered) return 0;
  return typeof bound === 'number' && Number.isSafeInteger(bound) && bound > 0
    ? Math.min(bound, 1000)
    : SEARCHES_HELD_UNBOUNDED;
}

/** The state of one stream decoder: what its `done`, `usage` and the rest answer (see `decoder`). */
export class DecodeState {
  /** The protocol's last frame came. */
  done = false;
  /** The usage reported so far (null: none yet). */
  usage: CanonicalUsage | null = null;
  /** Searches the stream showed as run so far, whether or not a usage said so yet. */
  webSearches = 0;
  /** The processing tier the stream said it was served at so far (OpenAI's `service_tier`). */
  serviceTier: string | undefined = undefined;

  /** A usage the upstream reported: kept, and passed on as an event (none: nothing to do). */
  report(events: StreamEvent[], usage: CanonicalUsage | null): void {
    if (!usage) return;
    this.usage = usage;
    events.push({ type: 'usage', usage });
  }
}

/** A stream decoder whose `done` and `usage` are the state's, which `feed` updates. */
export function decoder(state: DecodeState, feed: StreamDecoder['feed']): StreamDecoder {
  return {
    get done() {
      return state.done;
    },
    get usage() {
      return state.usage;
    },
    get webSearches() {
      return state.webSearches;
    },
    get serviceTier() {
      return state.serviceTier;
    },
    feed,
  };
}
