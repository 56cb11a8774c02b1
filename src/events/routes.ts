import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { isAdmin, selfId } from '../http/principal.js';
import { pageOf, route, zTime } from '../http/route.js';
import { zCursor, zId, zLimit } from '../http/validate.js';
import { EVENT_TYPES, type EventsStore } from './service.js';

// Answers (the OpenAPI document, and from it the console's types: web/src/api-types.ts).
/** One notification (events/service.ts `toEventJson`); the webhook body has the same shape. */
export const EventSchema = z
  .object({
    id: z.string().describe('stable event id ("evt_…"); the webhook sends it as x-mole-event-id'),
    type: z.enum(EVENT_TYPES),
    created_at: zTime,
    user_id: z.number().int().nullable().describe('the account it concerns; null = admins only'),
    key_id: z.number().int().nullable(),
    data: z.record(z.string(), z.unknown()),
  })
  .meta({ title: 'Event' });

export function registerEventRoutes(app: FastifyInstance, deps: { events: EventsStore }) {
  route(app, {
    method: 'GET',
    url: '/api/events',
    summary: 'Notifications, newest first (a user sees those of their own account and keys)',
    tags: ['events'],
    auth: 'any',
    scope: 'audit:read',
    query: z
      .object({
        type: z.enum(EVENT_TYPES).optional(),
        key_id: zId.optional(),
        user_id: zId.optional().describe('admins only; ignored for a user'),
        limit: zLimit,
        cursor: zCursor,
      })
      .strict(),
    response: pageOf(EventSchema, 'EventPage'),
    handler: async ({ query, principal }) => {
      // A user's events are those of their account; admin-only events (user_id null) never match.
      const userId = isAdmin(principal) ? query.user_id : selfId(principal)!;
      return deps.events.list({
        limit: query.limit,
        ...(userId !== undefined ? { userId } : {}),
        ...(query.key_id !== undefined ? { keyId: query.key_id } : {}),
        ...(query.type !== undefined ? { type: query.type } : {}),
        ...(query.cursor !== undefined ? { cursor: query.cursor } : {}),
      });
    },
  });
}
