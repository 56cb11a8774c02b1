// Channel administration (admin only): validate the input, call channels/actions.ts (which
// writes the audit trail with each change), answer. The credential is write-only: never
// echoed back.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { listOf, removeRoute, route, zTime } from '../http/route.js';
import { IdParams, zGroupName, zModelName, zName } from '../http/validate.js';
import type { ChannelActions } from './actions.js';
import { withoutUserinfo } from './base-url.js';
import { CHANNEL_TYPES, type ChannelInput } from './service.js';

const zBaseUrl = z
  .string()
  .max(2048)
  .refine((s) => {
    try {
      const u = new URL(s);
      return u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'mock:';
    } catch {
      return false;
    }
  }, 'must be an http(s) URL')
  .refine(
    (s) => withoutUserinfo(s) === s,
    'must not hold a user name or password: the credential goes in api_key',
  );

const fields = {
  name: zName,
  type: z.enum(CHANNEL_TYPES),
  base_url: zBaseUrl,
  api_key: z.string().max(4096),
  models: z.array(zModelName).min(1).max(1000),
  model_map: z.record(zModelName, zModelName).nullable(),
  priority: z.number().int().min(-1_000_000).max(1_000_000),
  weight: z.number().int().min(0).max(1_000_000),
  groups: z.array(zGroupName).max(200).nullable(),
  status: z.enum(['active', 'disabled']),
  /** `openai` channels: whether the upstream also serves the Responses API (default true). */
  responses: z.boolean(),
};

const CreateBody = z
  .object({
    ...fields,
    base_url: fields.base_url.optional(),
    api_key: fields.api_key.optional(),
    model_map: fields.model_map.optional(),
    priority: fields.priority.default(0),
    weight: fields.weight.default(1),
    groups: fields.groups.optional(),
    status: fields.status.optional(),
    responses: fields.responses.optional(),
  })
  .strict()
  .refine((b) => b.type === 'mock' || (b.base_url && b.api_key !== undefined), {
    message: 'base_url and api_key are required for this type',
    path: ['base_url'],
  });
const PatchBody = z.object(fields).partial().strict();

// Answers (the OpenAPI document, and from it the console's types: web/src/api-types.ts).
/** A channel as the API shows it, never with its credential (channels/service.ts `toChannelJson`). */
export const ChannelSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    // One of CHANNEL_TYPES; a plain string here, as the console's channel form holds it.
    type: z.string(),
    base_url: z.string(),
    models: z.array(z.string()),
    model_map: z.record(z.string(), z.string()).nullable(),
    priority: z.number().int(),
    weight: z.number().int(),
    groups: z.array(z.string()).nullable(),
    status: z.enum(['active', 'disabled']),
    responses: z.boolean(),
    disabled_reason: z.string().nullable(),
    cooling_down_until: zTime.nullable().describe('health as the answering instance saw it'),
    consecutive_failures: z.number().int(),
    last_error: z.string().nullable(),
    last_error_at: zTime.nullable(),
    created_at: zTime,
    updated_at: zTime,
  })
  .meta({ title: 'Channel' });
const ModelsSchema = z
  .object({
    group: z.string(),
    data: z.array(z.object({ id: z.string(), priced: z.boolean() }).meta({ title: 'OfferedModel' })),
  })
  .meta({ title: 'OfferedModels' });
const ChannelTestSchema = z
  .object({ ok: z.boolean(), latency_ms: z.number(), error: z.string().optional() })
  .meta({ title: 'ChannelTest' });

export function registerChannelRoutes(app: FastifyInstance, deps: { channelActions: ChannelActions }) {
  const actions = deps.channelActions;
  const toInput = (b: z.infer<typeof PatchBody>): Partial<ChannelInput> => {
    const i: Partial<ChannelInput> = {};
    if (b.name !== undefined) i.name = b.name;
    if (b.type !== undefined) i.type = b.type;
    if (b.base_url !== undefined) i.baseUrl = b.base_url;
    if (b.api_key !== undefined) i.apiKey = b.api_key;
    if (b.models !== undefined) i.models = b.models;
    if (b.model_map !== undefined) i.modelMap = b.model_map;
    if (b.priority !== undefined) i.priority = b.priority;
    if (b.weight !== undefined) i.weight = b.weight;
    if (b.groups !== undefined) i.groups = b.groups;
    if (b.status !== undefined) i.status = b.status;
    if (b.responses !== undefined) i.responses = b.responses;
    return i;
  };

  route(app, {
    method: 'POST',
    url: '/api/channels',
    summary: 'Add an upstream provider',
    tags: ['channels'],
    auth: 'admin',
    scope: 'channels:write',
    status: 201,
    body: CreateBody,
    response: ChannelSchema,
    handler: ({ body, principal, ip }) =>
      actions.create(
        { principal, ip },
        {
          ...(toInput(body) as ChannelInput),
          baseUrl: body.base_url ?? 'mock://local',
          apiKey: body.api_key ?? '',
          modelMap: body.model_map ?? null,
          groups: body.groups ?? null,
        },
        body,
      ),
  });
  route(app, {
    method: 'GET',
    url: '/api/channels',
    summary: 'List channels',
    tags: ['channels'],
    auth: 'admin',
    scope: 'channels:read',
    response: listOf(ChannelSchema, 'ChannelList'),
    handler: () => actions.list(),
  });
  route(app, {
    method: 'GET',
    url: '/api/channels/:id',
    summary: 'One channel',
    tags: ['channels'],
    auth: 'admin',
    scope: 'channels:read',
    params: IdParams,
    response: ChannelSchema,
    handler: ({ params }) => actions.get(params.id),
  });
  route(app, {
    method: 'PATCH',
    url: '/api/channels/:id',
    summary: 'Change a channel',
    tags: ['channels'],
    auth: 'admin',
    scope: 'channels:write',
    params: IdParams,
    body: PatchBody,
    response: ChannelSchema,
    handler: ({ params, body, principal, ip }) =>
      actions.update({ principal, ip }, params.id, toInput(body), body),
  });
  removeRoute(app, {
    url: '/api/channels/:id',
    summary: 'Remove a channel',
    tags: ['channels'],
    auth: 'admin',
    scope: 'channels:write',
    row: ChannelSchema,
    title: 'DeletedChannel',
    remove: (caller, id) => actions.remove(caller, id),
  });
  route(app, {
    method: 'GET',
    url: '/api/models',
    summary: "Models offered to a group (default: the caller's) and whether each is priced",
    tags: ['channels'],
    auth: 'any',
    scope: 'channels:read',
    query: z.object({ group: zGroupName.optional() }).strict(),
    response: ModelsSchema,
    handler: async ({ query, principal }) => actions.models(principal, query.group),
  });

  route(app, {
    method: 'POST',
    url: '/api/channels/:id/test',
    summary: 'Check the upstream answers (lists its models)',
    tags: ['channels'],
    auth: 'admin',
    scope: 'channels:write',
    params: IdParams,
    response: ChannelTestSchema,
    handler: ({ params }) => actions.test(params.id),
  });
}
