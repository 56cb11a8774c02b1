// A client whose base URL is one path segment off calls a path that almost exists: the
// Anthropic and Google SDKs add `/v1` (`/v1beta`) themselves, so a base URL ending in it
// doubles it; the OpenAI SDK adds nothing, so one without `/v1` loses it. The 404 says which.

const RELAY_PATHS = /^\/(?:chat\/completions|completions|embeddings|responses|models|messages)(?:[/?]|$)/;

/** The path a 404 was for, as the client's base URL would have to change; '' when none applies. */
export function baseUrlHint(path: string): string {
  const doubled = /^\/(v1beta|v1)\/(v1beta|v1)\//.exec(path);
  if (doubled)
    return `: the base URL should be the gateway's origin, without /${doubled[1]} (the client adds it)`;
  if (RELAY_PATHS.test(path)) return ': the base URL of an OpenAI client should end in /v1';
  return '';
}

/** The path with one doubled version segment dropped (`/v1/v1/messages` → `/v1/messages`). */
export const withoutDoubledVersion = (path: string): string =>
  path.replace(/^\/(?:v1beta|v1)(?=\/(?:v1beta|v1)\/)/, '');
