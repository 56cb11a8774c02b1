import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { isAdmin, scopedUserId, userOf } from '../http/principal.js';
import { pageOf, route, zTime } from '../http/route.js';
import { zCursor, zId, zLimit } from '../http/validate.js';
import type { AuditService } from './service.js';

// Answers (the OpenAPI document, and from it the console's types: web/src/api-types.ts).
/** One row of the trail (audit/service.ts `toAuditJson`): field names and non-secret values. */
export const AuditEntrySchema = z
  .object({
    id: z.number().int(),
    created_at: zTime,
    actor: z.string().describe('"master", or "<role>:<user id>"'),
    action: z.string(),
    key_id: z.number().int().nullable(),
    user_id: z.number().int().nullable(),
    ip: z.string().nullable(),
    changes: z.record(z.string(), z.unknown()),
  })
  .meta({ title: 'AuditEntry' });

export function registerAuditRoutes(app: FastifyInstance, deps: { audit: AuditService }) {
  route(app, {
    method: 'GET',
    url: '/api/audit',
    summary: 'Who did what to which key or user (a user sees their own trail)',
    tags: ['audit'],
    auth: 'any',
    scope: 'audit:read',
    query: z
      .object({
        key_id: zId.optional(),
        user_id: zId.optional(),
        /** Comma-separated actions, e.g. `key.leaked,key.auto_disabled` (the console's Security page). */
        action: z
          .string()
          .max(512)
          .regex(/^[a-z_.]+(,[a-z_.]+)*$/, 'comma-separated actions, e.g. key.leaked,key.auto_disabled')
          .optional(),
        limit: zLimit,
        cursor: zCursor,
      })
      .strict(),
    response: pageOf(AuditEntrySchema, 'AuditPage'),
    handler: async ({ query, principal }) => {
      const userId = scopedUserId(principal, query.user_id);
      const user = isAdmin(principal) ? null : userOf(principal);
      return deps.audit.list({
        ...(user ? { ipsOf: `${user.role}:${user.id}` } : {}),
        limit: query.limit,
        ...(query.key_id !== undefined ? { keyId: query.key_id } : {}),
        ...(userId !== undefined ? { userId } : {}),
        ...(query.action ? { actions: query.action.split(',') } : {}),
        ...(query.cursor !== undefined ? { cursor: query.cursor } : {}),
      });
    },
  });
}
