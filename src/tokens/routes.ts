// Management tokens (contract §8): validate the input, call tokens/actions.ts, answer. These
// routes declare no scope: tokens are managed from a session or with the master key only.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { listOf, route, zTime } from '../http/route.js';
import { SCOPES } from '../http/principal.js';
import { IdParams, zId, zIsoTime, zName } from '../http/validate.js';
import type { TokenActions } from './actions.js';

/** A management token as the API shows it (tokens/service.ts `toTokenJson`); never the secret. */
export const ManagementTokenSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    user_id: z.number().int().nullable().describe('null = minted with the master key'),
    display: z.string().describe('masked form, mg-abcd…wxyz'),
    scopes: z.array(z.string()).describe(`each one of: ${SCOPES.join(', ')}`),
    status: z.enum(['active', 'expired', 'revoked']),
    expires_at: zTime.nullable(),
    created_at: zTime,
    last_used_at: zTime.nullable(),
  })
  .meta({ title: 'ManagementToken' });
const NewTokenSchema = ManagementTokenSchema.extend({
  token: z.string().describe('the secret (mg-…): shown this once'),
}).meta({ title: 'NewManagementToken' });

export function registerTokenRoutes(app: FastifyInstance, deps: { tokenActions: TokenActions }) {
  const actions = deps.tokenActions;

  route(app, {
    method: 'POST',
    url: '/api/tokens',
    summary: 'Create a management token (the secret is shown once)',
    tags: ['tokens'],
    auth: 'any',
    status: 201,
    body: z
      .object({
        name: zName,
        // Checked in the action, so an unknown scope is a 400 that names it.
        scopes: z.array(z.string().max(64)).max(32),
        expires_at: zIsoTime.nullable().optional(),
      })
      .strict(),
    response: NewTokenSchema,
    handler: ({ body, principal, ip }) =>
      actions.create(
        { principal, ip },
        {
          name: body.name,
          scopes: body.scopes,
          expiresAt: body.expires_at == null ? null : Date.parse(body.expires_at),
        },
      ),
  });

  route(app, {
    method: 'GET',
    url: '/api/tokens',
    summary: 'List management tokens (a user sees their own; an admin everyone’s)',
    tags: ['tokens'],
    auth: 'any',
    query: z.object({ user_id: zId.optional() }).strict(),
    response: listOf(ManagementTokenSchema, 'ManagementTokenList'),
    handler: ({ query, principal }) => actions.list(principal, query.user_id),
  });

  route(app, {
    method: 'DELETE',
    url: '/api/tokens/:id',
    summary: 'Revoke a management token (at once)',
    tags: ['tokens'],
    auth: 'any',
    params: IdParams,
    response: ManagementTokenSchema,
    handler: ({ params, principal, ip }) => actions.revoke({ principal, ip }, params.id),
  });
}
