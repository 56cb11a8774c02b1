import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { isAdmin, selfId } from '../http/principal.js';
import { route } from '../http/route.js';
import { zCursor, zId, zLimit } from '../http/validate.js';
import type { AuditService } from './service.js';

export function registerAuditRoutes(app: FastifyInstance, deps: { audit: AuditService }) {
  route(app, {
    method: 'GET',
    url: '/api/audit',
    summary: 'Who did what to which key or user (a user sees their own trail)',
    tags: ['audit'],
    auth: 'any',
    query: z
      .object({ key_id: zId.optional(), user_id: zId.optional(), limit: zLimit, cursor: zCursor })
      .strict(),
    handler: async ({ query, principal }) => {
      const admin = isAdmin(principal);
      const userId = admin ? query.user_id : selfId(principal)!;
      return deps.audit.list({
        limit: query.limit,
        ...(query.key_id !== undefined ? { keyId: query.key_id } : {}),
        ...(userId !== undefined ? { userId } : {}),
        ...(query.cursor !== undefined ? { cursor: query.cursor } : {}),
      });
    },
  });
}
