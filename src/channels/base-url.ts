// Where a channel's base_url points, by type: the one reading of it for the relay's transports
// (relay/providers) and the channel test (actions.ts). Anthropic's and Gemini's base_url is the
// bare origin; the suffixes people paste with it are tolerated.

/** An Anthropic channel's origin: base_url without a trailing `/`, `/v1` or `/v1/messages`. */
export const anthropicOrigin = (baseUrl: string): string =>
  baseUrl.replace(/\/+$/, '').replace(/\/v1(\/messages)?$/, '');

/** A Gemini channel's origin, to put `/v1beta/models/…` after: without `/`, `/v1beta` or `/v1`. */
export const geminiOrigin = (baseUrl: string): string =>
  baseUrl.replace(/\/+$/, '').replace(/\/(v1beta|v1)$/, '');
