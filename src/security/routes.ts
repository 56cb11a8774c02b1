// POST /api/secret-scanning/github: GitHub's secret-scanning partner endpoint. No session or
// master key: the signature over the raw body is the authentication, so the body is kept as
// the bytes that arrived (this route's own content-type parser) and parsed only once they
// are verified.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../http/errors.js';
import { route } from '../http/route.js';
import type { LeakReport, SecurityActions } from './actions.js';
import { type ScanningKeys, verifyGithubSignature } from './github.js';

/** Most matches one report may carry. */
export const MAX_REPORTED_TOKENS = 1000;
const MAX_BODY_BYTES = 2 * 1024 * 1024;

/** The body as it arrived; its bytes are private, so nothing walks or re-serialises them. */
class RawBody {
  readonly #bytes: Buffer;
  constructor(bytes: Buffer) {
    this.#bytes = bytes;
  }
  get bytes(): Buffer {
    return this.#bytes;
  }
}

const Report = z
  .array(
    z.object({
      token: z.string().min(1).max(4096),
      type: z.string().max(256).default(''),
      url: z.string().max(4096).nullable().default(''),
      source: z.string().max(256).nullable().default(''),
    }),
  )
  .max(MAX_REPORTED_TOKENS);

export const LeakLabelSchema = z
  .object({
    token_hash: z.string().describe('hex SHA-256 of the reported token'),
    token_type: z.string(),
    label: z.enum(['true_positive', 'false_positive']),
  })
  .meta({ title: 'LeakLabel' });

export function registerSecurityRoutes(
  app: FastifyInstance,
  deps: { securityActions: SecurityActions; scanningKeys: ScanningKeys | null },
): void {
  void app.register(async (gh) => {
    gh.removeAllContentTypeParsers();
    gh.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, (_req, body, done) =>
      done(null, new RawBody(body as Buffer)),
    );

    route(gh, {
      method: 'POST',
      url: '/api/secret-scanning/github',
      summary:
        'GitHub secret-scanning reports: a JSON array of {token, type, url, source}, signed by GitHub (Github-Public-Key-Identifier, Github-Public-Key-Signature). Each live key reported is disabled and locked; a reported ephemeral key or mg- management token is revoked. 404 secret_scanning_disabled without MOLE_SECRET_SCANNING_KEYS; 401 invalid_signature; 400 invalid_request.',
      tags: ['security'],
      auth: 'none',
      // The raw bytes (RawBody); documented as the array GitHub sends.
      body: z.unknown(),
      response: z.array(LeakLabelSchema).meta({ title: 'LeakLabelList' }),
      handler: async ({ body, req }) => {
        const keys = deps.scanningKeys;
        if (!keys)
          throw new AppError(
            'secret_scanning_disabled',
            'secret-scanning reports are not enabled on this gateway (set MOLE_SECRET_SCANNING_KEYS)',
          );
        const raw = body instanceof RawBody ? body.bytes : Buffer.alloc(0);
        const header = (name: string) => {
          const v = req.headers[name];
          return typeof v === 'string' ? v : undefined;
        };
        if (
          !verifyGithubSignature(
            keys,
            header('github-public-key-identifier'),
            header('github-public-key-signature'),
            raw,
          )
        )
          throw new AppError(
            'invalid_signature',
            'missing or invalid Github-Public-Key-Identifier / Github-Public-Key-Signature',
          );
        let json: unknown;
        try {
          json = JSON.parse(raw.toString('utf8'));
        } catch {
          throw new AppError('invalid_request', 'the report is not valid JSON');
        }
        const parsed = Report.safeParse(json);
        if (!parsed.success) {
          const tooMany = Array.isArray(json) && json.length > MAX_REPORTED_TOKENS;
          throw new AppError(
            'invalid_request',
            tooMany
              ? `a report may carry at most ${MAX_REPORTED_TOKENS} tokens`
              : 'the report must be a JSON array of {token, type, url, source}',
          );
        }
        const reports: LeakReport[] = parsed.data.map((r) => ({
          token: r.token,
          type: r.type,
          url: r.url ?? '',
          source: r.source ?? '',
        }));
        return deps.securityActions.reportLeaks(reports, req.clientIp);
      },
    });
  });
}
