// Channel administration (admin only). The credential is write-only: never echoed back.
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import { z } from 'zod';
import type { AuditService } from '../audit/service.js';
import { actorOf } from '../http/principal.js';
import { route } from '../http/route.js';
import { zGroupName, zId, zModelName, zName } from '../http/validate.js';
import type { PriceCatalog } from '../billing/catalog.js';
import { CHANNEL_TYPES, type ChannelInput, type ChannelsService } from './service.js';

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
  }, 'must be an http(s) URL');

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
const IdParams = z.object({ id: zId }).strict();

export function registerChannelRoutes(
  app: FastifyInstance,
  deps: { channels: ChannelsService; audit: AuditService; catalog: PriceCatalog },
) {
  const { channels, audit } = deps;
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
  // What the audit trail may hold: everything but the credential.
  const auditable = (b: z.infer<typeof PatchBody>) => {
    const { api_key, ...rest } = b;
    return api_key === undefined ? rest : { ...rest, api_key: 'changed' };
  };

  route(app, {
    method: 'POST',
    url: '/api/channels',
    summary: 'Add an upstream provider',
    tags: ['channels'],
    auth: 'admin',
    status: 201,
    body: CreateBody,
    handler: async ({ body, principal, ip }) => {
      const ch = await channels.create({
        ...(toInput(body) as ChannelInput),
        baseUrl: body.base_url ?? 'mock://local',
        apiKey: body.api_key ?? '',
        modelMap: body.model_map ?? null,
        groups: body.groups ?? null,
      });
      await audit.record({
        actor: actorOf(principal),
        action: 'channel.create',
        ip,
        changes: { channel_id: ch.id, ...auditable(body) },
      });
      return ch;
    },
  });
  route(app, {
    method: 'GET',
    url: '/api/channels',
    summary: 'List channels',
    tags: ['channels'],
    auth: 'admin',
    handler: async () => ({ data: await channels.list() }),
  });
  route(app, {
    method: 'GET',
    url: '/api/channels/:id',
    summary: 'One channel',
    tags: ['channels'],
    auth: 'admin',
    params: IdParams,
    handler: async ({ params }) => channels.getJson(params.id),
  });
  route(app, {
    method: 'PATCH',
    url: '/api/channels/:id',
    summary: 'Change a channel',
    tags: ['channels'],
    auth: 'admin',
    params: IdParams,
    body: PatchBody,
    handler: async ({ params, body, principal, ip }) => {
      const ch = await channels.update(params.id, toInput(body));
      await audit.record({
        actor: actorOf(principal),
        action: 'channel.update',
        ip,
        changes: { channel_id: params.id, ...auditable(body) },
      });
      return ch;
    },
  });
  route(app, {
    method: 'DELETE',
    url: '/api/channels/:id',
    summary: 'Remove a channel',
    tags: ['channels'],
    auth: 'admin',
    params: IdParams,
    handler: async ({ params, principal, ip }) => {
      const ch = await channels.remove(params.id);
      await audit.record({
        actor: actorOf(principal),
        action: 'channel.delete',
        ip,
        changes: { channel_id: params.id, name: ch.name },
      });
      return { ...ch, deleted: true };
    },
  });
  route(app, {
    method: 'GET',
    url: '/api/models',
    summary: "Models offered to a group (default: the caller's) and whether each is priced",
    tags: ['channels'],
    auth: 'any',
    query: z.object({ group: zGroupName.optional() }).strict(),
    handler: async ({ query, principal }) => {
      let group = query.group;
      if (principal.kind === 'session' && principal.user.role !== 'admin') group = principal.user.group_name;
      group ??= principal.kind === 'session' ? principal.user.group_name : 'default';
      return {
        group,
        data: channels.modelsFor(group).map((id) => ({ id, priced: deps.catalog.price(id) !== null })),
      };
    },
  });

  route(app, {
    method: 'POST',
    url: '/api/channels/:id/test',
    summary: 'Check the upstream answers (lists its models)',
    tags: ['channels'],
    auth: 'admin',
    params: IdParams,
    handler: async ({ params }) => {
      await channels.getJson(params.id);
      const ch = channels.get(params.id);
      if (!ch) return { ok: false, latency_ms: 0, error: 'channel is not loaded (credential unreadable?)' };
      if (ch.type === 'mock') return { ok: true, latency_ms: 0 };
      const started = Date.now();
      try {
        const res = await request(`${ch.baseUrl}/models`, {
          method: 'GET',
          headers: { authorization: `Bearer ${ch.apiKey}` },
          headersTimeout: 10_000,
          bodyTimeout: 10_000,
        });
        await res.body.dump();
        const ok = res.statusCode < 400;
        return {
          ok,
          latency_ms: Date.now() - started,
          ...(ok ? {} : { error: `upstream answered HTTP ${res.statusCode}` }),
        };
      } catch (err) {
        return {
          ok: false,
          latency_ms: Date.now() - started,
          error: `could not reach upstream: ${redact((err as Error).message, ch.apiKey)}`,
        };
      }
    },
  });
}

/** Every occurrence of the credential (and of its URL-encoded form) in a text shown to admins. */
function redact(text: string, credential: string): string {
  if (!credential) return text;
  let out = text.split(credential).join('[redacted]');
  const encoded = encodeURIComponent(credential);
  if (encoded !== credential) out = out.split(encoded).join('[redacted]');
  return out;
}
