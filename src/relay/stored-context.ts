// Context a request brings by reference: an OpenAI stored response it continues
// (`previous_response_id`), a stored conversation or prompt template, a Gemini `cachedContent`.
// The upstream bills it as input, but the body does not hold it, so the local count misses it;
// admission must hold for it, or a key near its limit could run up upstream costs far past what
// it is charged (the charge stops at the limit). A response this instance relayed is known
// exactly: what it took in plus what it wrote. Anything else counts UNKNOWN_CONTEXT_TOKENS.
//
// Every account's responses are stored at the same upstream account (the channel's), so an id
// alone would let one tenant continue another's conversation: a response this instance relayed
// is continued only by the account that made it.
import { LRUCache } from 'lru-cache';
import { AppError } from '../http/errors.js';
import type { IngressRequest } from './protocols/types.js';
import { UNKNOWN_CONTENT_TOKENS } from './tokens.js';

/** Context of unknown size, held as a document of unknown size is. */
export const UNKNOWN_CONTEXT_TOKENS = UNKNOWN_CONTENT_TOKENS;

/** Responses remembered (id → context tokens): ~100 bytes each. */
const REMEMBERED = 50_000;

export interface StoredContexts {
  /**
   * Tokens the request brings by reference, beyond its body (0 for most requests). Throws
   * `previous_response_not_found` for a response another account made.
   */
  heldFor(r: IngressRequest, userId: number): number;
  /** A Responses answer the upstream stores: its context for a follow-up that names it. */
  remember(r: IngressRequest, userId: number, responseId: string | null | undefined, tokens: number): void;
}

const given = (v: unknown) => v !== undefined && v !== null;

export function createStoredContexts(max = REMEMBERED): StoredContexts {
  const known = new LRUCache<string, { userId: number; tokens: number }>({ max });
  const contextOf = (id: string, userId: number): number => {
    const stored = known.get(id);
    if (stored === undefined) return UNKNOWN_CONTEXT_TOKENS;
    // As OpenAI answers an id of another organisation's: nothing tells it exists.
    if (stored.userId !== userId)
      throw new AppError(
        'previous_response_not_found',
        `Previous response with id '${id.slice(0, 256)}' not found.`,
        {
          param: 'previous_response_id',
        },
      );
    return stored.tokens;
  };
  return {
    heldFor(r, userId) {
      const b = r.body;
      if (r.protocol === 'gemini') return given(b.cachedContent) ? UNKNOWN_CONTEXT_TOKENS : 0;
      if (r.protocol !== 'responses') return 0;
      let held = 0;
      const previous = b.previous_response_id;
      if (typeof previous === 'string') held += contextOf(previous, userId);
      else if (given(previous)) held += UNKNOWN_CONTEXT_TOKENS;
      if (given(b.conversation)) held += UNKNOWN_CONTEXT_TOKENS;
      if (given(b.prompt)) held += UNKNOWN_CONTEXT_TOKENS;
      return held;
    },
    remember(r, userId, responseId, tokens) {
      // OpenAI stores a response unless told `store: false`; only a stored one can be continued.
      if (r.protocol !== 'responses' || r.body.store === false || !responseId) return;
      known.set(responseId, { userId, tokens });
    },
  };
}
