// Where a relay request may carry its key (contract §2).
import type { IncomingHttpHeaders } from 'node:http';

/** Gemini's `/v1/models/{model}:{method}` (generateContent, streamGenerateContent, countTokens, …). */
const GEMINI_METHOD_PATH = /^\/v1\/models\/[^?]*:[A-Za-z]+(?:\?|$)/;

export function presentedKey(headers: IncomingHttpHeaders, url: string): string | undefined {
  const auth = headers.authorization;
  if (auth) {
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
    return m ? m[1]!.trim() : auth.trim();
  }
  for (const h of ['x-api-key', 'api-key', 'x-goog-api-key'] as const) {
    const v = headers[h];
    if (typeof v === 'string' && v) return v.trim();
  }
  // Gemini-style paths carry the key as ?key=
  if (url.startsWith('/v1beta/') || GEMINI_METHOD_PATH.test(url)) {
    const q = url.indexOf('?');
    if (q >= 0) {
      const key = new URLSearchParams(url.slice(q + 1)).get('key');
      if (key) return key;
    }
  }
  return undefined;
}
