// Context a request brings by reference: an OpenAI stored response it continues
// (`previous_response_id`), a stored conversation or prompt template, a Gemini `cachedContent`.
// The upstream bills it as input, but the body does not hold it, so the local count misses it;
// admission must hold for it, or a key near its limit could run up upstream costs far past what
// it is charged (the charge stops at the limit). A response this instance relayed is known
// exactly: what it took in plus what it wrote. Anything else counts UNKNOWN_CONTEXT_TOKENS.
import { LRUCache } from 'lru-cache';
import type { IngressRequest } from './protocols/types.js';
import { UNKNOWN_CONTENT_TOKENS } from './tokens.js';

/** Context of unknown size, held as a document of unknown size is. */
export const UNKNOWN_CONTEXT_TOKENS = UNKNOWN_CONTENT_TOKENS;

/** Responses remembered (id → context tokens): ~100 bytes each. */
const REMEMBERED = 50_000;

export interface StoredContexts {
  /** Tokens the request brings by reference, beyond its body (0 for most requests). */
  heldFor(r: IngressRequest): number;
  /** A Responses answer the upstream stores: its context for a follow-up that names it. */
  remember(r: IngressRequest, responseId: string | null | undefined, tokens: number): void;
}

const given = (v: unknown) => v !== undefined && v !== null;

export function createStoredContexts(max = REMEMBERED): StoredContexts {
  const known = new LRUCache<string, number>({ max });
  return {
    heldFor(r) {
      const b = r.body;
      if (r.protocol === 'gemini') return given(b.cachedContent) ? UNKNOWN_CONTEXT_TOKENS : 0;
      if (r.protocol !== 'responses') return 0;
      let held = 0;
      const previous = b.previous_response_id;
      if (typeof previous === 'string') held += known.get(previous) ?? UNKNOWN_CONTEXT_TOKENS;
      else if (given(previous)) held += UNKNOWN_CONTEXT_TOKENS;
      if (given(b.conversation)) held += UNKNOWN_CONTEXT_TOKENS;
      if (given(b.prompt)) held += UNKNOWN_CONTEXT_TOKENS;
      return held;
    },
    remember(r, responseId, tokens) {
      // OpenAI stores a response unless told `store: false`; only a stored one can be continued.
      if (r.protocol !== 'responses' || r.body.store === false || !responseId) return;
      known.set(responseId, tokens);
    },
  };
}
