// Where a channel's base_url points, by type: the one reading of it for the relay's transports
// (relay/providers) and the channel test (actions.ts). Anthropic's and Gemini's base_url is the
// bare origin; the suffixes people paste with it are tolerated.

/** An Anthropic channel's origin: base_url without a trailing `/`, `/v1` or `/v1/messages`. */
export const anthropicOrigin = (baseUrl: string): string =>
  baseUrl.replace(/\/+$/, '').replace(/\/v1(\/messages)?$/, '');

/** A Gemini channel's origin, to put `/v1beta/models/…` after: without `/`, `/v1beta` or `/v1`. */
export const geminiOrigin = (baseUrl: string): string =>
  baseUrl.replace(/\/+$/, '').replace(/\/(v1beta|v1)$/, '');

/**
 * base_url without a user name or password in it. Requests never sent them (a transport
 * connects to the origin), and the URL is shown and audited where a credential must not be:
 * the API refuses them, and rows stored before that, or imported, are shown without them.
 */
export function withoutUserinfo(baseUrl: string): string {
  const u = parsed(baseUrl);
  if (!u || (!u.username && !u.password)) return baseUrl;
  // Cut as text, so the rest reads as it was written (URL#toString adds a `/` to an origin).
  const cut = baseUrl.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1');
  const c = parsed(cut);
  if (c && !c.username && !c.password && c.host === u.host) return cut;
  u.username = '';
  u.password = '';
  return u.toString();
}

function parsed(url: string): URL | null {
  try {
    return new URL(url);
  } catch {
    return null;
  }
}
