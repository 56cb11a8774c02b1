// A client whose base URL is one path segment off calls a path that almost exists: the
// Anthropic and Google SDKs add `/v1` (`/v1beta`) themselves, so a base URL ending in it
// doubles it; the OpenAI SDK adds nothing, so one without `/v1` loses it. The 404 says which.

const RELAY_PATHS = /^\/(?:chat\/completions|completions|embeddings|responses|models|messages)(?:[/?]|$)/;
const REPEATED_VERSION = /^\/(v1beta|v1)\/(?:v1beta|v1)\//;

/** The path a 404 was for, as the client's base URL would have to change; '' when none applies. */
export function baseUrlHint(path: string): string {
  const repeated = REPEATED_VERSION.exec(path);
  if (repeated)
    return `: the path repeats /${repeated[1]}. An Anthropic or Google client adds it itself (its base URL is the gateway's origin); an OpenAI client's base URL ends in /v1 once`;
  if (RELAY_PATHS.test(path)) return ': the base URL should end in /v1 (e.g. http://localhost:3000/v1)';
  return '';
}

/** The path with repeated version segments dropped (`/v1/v1/messages` → `/v1/messages`). */
export const withoutDoubledVersion = (path: string): string =>
  path.replace(/^(?:\/(?:v1beta|v1))+(?=\/(?:v1beta|v1)\/)/, '');
