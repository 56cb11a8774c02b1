import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { isAdmin, scopedUserId } from '../http/principal.js';
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
    delivery: z
      .object({
        state: z.enum(['pending', 'delivered']),
        attempts: z.number().int(),
        last_error: z.string().nullable().describe('why the latest try failed, e.g. "HTTP 500"'),
        next_attempt_at: zTime.nullable(),
        delivered_at: zTime.nullable(),
      })
      .nullable()
      .optional()
      .describe('admins only: the webhook delivery (null when no webhook was set when it was stored)'),
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
      const admin = isAdmin(principal);
      const userId = scopedUserId(principal, query.user_id);
      return deps.events.list({
        limit: query.limit,
        withDelivery: admin,
        ...(userId !== undefined ? { userId } : {}),
        ...(query.key_id !== undefined ? { keyId: query.key_id } : {}),
        ...(query.type !== undefined ? { type: query.type } : {}),
        ...(query.cursor !== undefined ? { cursor: query.cursor } : {}),
      });
    },
  });
}
