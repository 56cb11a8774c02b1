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

/** Context a request brings by reference, in tokens (both 0 for most requests). */
export interface ByReference {
  /** What admission holds for: known sizes, and UNKNOWN_CONTEXT_TOKENS for each unknown one. */
  held: number;
  /** The part of it known exactly: counted into the prompt when usage must be estimated. */
  known: number;
}

export interface StoredContexts {
  /** Throws `previous_response_not_found` for a response another account made. */
  byReference(r: IngressRequest, userId: number): ByReference;
  /** A Responses answer the upstream stores: its context for a follow-up that names it. */
  remember(r: IngressRequest, userId: number, responseId: string | null | undefined, tokens: number): void;
}

const given = (v: unknown) => v !== undefined && v !== null;
const NONE: ByReference = { held: 0, known: 0 };

export function createStoredContexts(max = REMEMBERED): StoredContexts {
  const remembered = new LRUCache<string, { userId: number; tokens: number }>({ max });
  const contextOf = (id: string, userId: number): number | null => {
    const stored = remembered.get(id);
    if (stored === undefined) return null;
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
    byReference(r, userId) {
      const b = r.body;
      // Google's JSON takes either spelling of a field, and the body goes upstream as sent.
      if (r.protocol === 'gemini')
        return {
          held: given(b.cachedContent) || given(b.cached_content) ? UNKNOWN_CONTEXT_TOKENS : 0,
          known: 0,
        };
      if (r.protocol !== 'responses') return NONE;
      const previous = b.previous_response_id;
      const known = typeof previous === 'string' ? contextOf(previous, userId) : null;
      let held = known ?? (given(previous) ? UNKNOWN_CONTEXT_TOKENS : 0);
      if (given(b.conversation)) held += UNKNOWN_CONTEXT_TOKENS;
      if (given(b.prompt)) held += UNKNOWN_CONTEXT_TOKENS;
      return { held, known: known ?? 0 };
    },
    remember(r, userId, responseId, tokens) {
      // OpenAI stores a response unless told `store: false`; only a stored one can be continued.
      if (r.protocol !== 'responses' || r.body.store === false || !responseId) return;
      remembered.set(responseId, { userId, tokens });
    },
  };
}
