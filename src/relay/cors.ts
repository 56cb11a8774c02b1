// Browsers on the relay (contract §8): CORS for the origins a key lists. A preflight
// (`OPTIONS`) carries no key, so it is answered the same for everyone: any origin may ask,
// and the real request is then judged against its key (pipeline.ts `checkOrigin`), which
// refuses an origin the key does not list and sends these headers only to one it does.
import type { FastifyReply, FastifyRequest } from 'fastify';

/** Request headers browser clients (openai, @anthropic-ai/sdk, @google/genai, fetch) send. */
const ALLOW_HEADERS = [
  'authorization',
  'x-api-key',
  'api-key',
  'x-goog-api-key',
  'content-type',
  'accept',
  'anthropic-version',
  'anthropic-beta',
  'anthropic-dangerous-direct-browser-access',
  'openai-organization',
  'openai-project',
  'openai-beta',
  'x-stainless-arch',
  'x-stainless-lang',
  'x-stainless-os',
  'x-stainless-package-version',
  'x-stainless-retry-count',
  'x-stainless-runtime',
  'x-stainless-runtime-version',
  'x-stainless-timeout',
  'x-goog-api-client',
];

/** Answer headers a page may read: request ids, retry hints and rate limits. */
const EXPOSE_HEADERS = [
  'x-request-id',
  'request-id',
  'x-should-retry',
  'retry-after',
  'retry-after-ms',
  'x-ratelimit-limit-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-requests',
  'x-ratelimit-reset-tokens',
  'anthropic-ratelimit-requests-limit',
  'anthropic-ratelimit-requests-remaining',
  'anthropic-ratelimit-requests-reset',
  'anthropic-ratelimit-tokens-limit',
  'anthropic-ratelimit-tokens-remaining',
  'anthropic-ratelimit-tokens-reset',
].join(', ');

/** Chromium caps a preflight's cache at 2 hours. */
const MAX_AGE_S = 7200;
const TOKEN_LIST = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$/;

const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/** The browser's `Origin`, when the request carries one. */
export const originOf = (req: FastifyRequest): string | undefined => one(req.headers.origin);

/** Headers for an answer to `origin`, a browser origin the key lists. */
export function allowOrigin(reply: FastifyReply, origin: string): void {
  void reply.headers({
    'access-control-allow-origin': origin,
    'access-control-expose-headers': EXPOSE_HEADERS,
    vary: 'origin',
  });
}

/** Answers a CORS preflight on a relay route: 204, whatever key the real request will carry. */
export function preflight(req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const origin = originOf(req);
  const asked = one(req.headers['access-control-request-headers'])?.trim().toLowerCase() ?? '';
  // Headers the client asks for are allowed too (SDKs add their own); only well-formed names.
  const extra = asked && asked.length <= 2000 && TOKEN_LIST.test(asked) ? asked.split(/\s*,\s*/) : [];
  const headers: Record<string, string> = {
    allow: 'GET, POST, OPTIONS',
    'access-control-allow-methods': 'GET, POST, OPTIONS',
    'access-control-allow-headers': [...new Set([...ALLOW_HEADERS, ...extra])].join(', '),
    'access-control-max-age': String(MAX_AGE_S),
    vary: 'origin, access-control-request-method, access-control-request-headers',
  };
  if (origin !== undefined && origin !== 'null') headers['access-control-allow-origin'] = origin;
  // Chromium's private network access: a page on the internet calling a gateway on the LAN.
  if (one(req.headers['access-control-request-private-network']) === 'true')
    headers['access-control-allow-private-network'] = 'true';
  return reply.code(204).headers(headers).send();
}
