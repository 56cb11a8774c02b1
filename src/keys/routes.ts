// Key management (contract §3). Users act on their own keys only; another user's key is 404.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AuditService } from '../audit/service.js';
import type { AccountsService } from '../accounts/service.js';
import { AppError } from '../http/errors.js';
import { actorOf, isAdmin, selfId, type Principal } from '../http/principal.js';
import { route } from '../http/route.js';
import { zCursor, zGroupName, zId, zIsoTime, zLimit, zModelPattern, zName, zUsd } from '../http/validate.js';
import { usdToNano } from '../billing/money.js';
import { parseRule } from './cidr.js';
import { keyChanges, toKeyJson, type KeyFields, type KeysService } from './service.js';

const zIpRule = z
  .string()
  .max(64)
  .superRefine((s, ctx) => {
    const r = parseRule(s);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.error });
  });

const writable = {
  models: z.array(zModelPattern).max(500).nullable().optional(),
  allowed_ips: z.array(zIpRule).max(200).nullable().optional(),
  quota: zUsd.nullable().optional(),
  expires_at: zIsoTime.nullable().optional(),
  group: zGroupName.nullable().optional(),
  rpm: z.number().int().min(1).max(1_000_000).nullable().optional(),
};

const CreateBody = z.object({ name: zName, user_id: zId.optional(), ...writable }).strict();
const PatchBody = z
  .object({ name: zName.optional(), status: z.enum(['active', 'disabled']).optional(), ...writable })
  .strict();
const IdParams = z.object({ id: zId }).strict();

function toFields(b: z.infer<typeof PatchBody>): KeyFields {
  const f: KeyFields = {};
  if (b.name !== undefined) f.name = b.name;
  if (b.models !== undefined) f.models = b.models === null ? null : [...new Set(b.models)];
  if (b.allowed_ips !== undefined)
    f.allowedIps = b.allowed_ips === null ? null : b.allowed_ips.map((s) => s.trim());
  if (b.quota !== undefined) {
    const nano = b.quota === null ? null : usdToNano(b.quota);
    if (nano === undefined || (b.quota !== null && nano === null))
      throw new AppError('validation_error', 'quota: at most 9 decimal places', { param: 'quota' });
    f.quotaNano = nano;
  }
  if (b.expires_at !== undefined) f.expiresAt = b.expires_at === null ? null : Date.parse(b.expires_at);
  if (b.group !== undefined) f.group = b.group;
  if (b.rpm !== undefined) f.rpm = b.rpm;
  return f;
}

/** A user may not move a key into another group (that would change its prices and models). */
function checkGroupAllowed(principal: Principal, group: string | null | undefined) {
  if (group == null || isAdmin(principal)) return;
  if (principal.kind === 'session' && group !== principal.user.group_name)
    throw new AppError('forbidden', 'only an admin can put a key in another group', { param: 'group' });
}

const ownerScope = (p: Principal) => (isAdmin(p) ? null : selfId(p));

export function registerKeyRoutes(
  app: FastifyInstance,
  deps: { keys: KeysService; accounts: AccountsService; audit: AuditService; flush: () => Promise<void> },
) {
  const { keys, audit } = deps;

  route(app, {
    method: 'POST',
    url: '/api/keys',
    summary: 'Create a key; the secret is in the answer this once',
    tags: ['keys'],
    auth: 'any',
    status: 201,
    body: CreateBody,
    handler: async ({ body, principal, ip }) => {
      let userId: number;
      if (isAdmin(principal)) {
        if (body.user_id === undefined) {
          if (principal.kind === 'master')
            throw new AppError('validation_error', 'user_id: required with the master key', {
              param: 'user_id',
            });
          userId = principal.user.id;
        } else userId = Number((await deps.accounts.requireUser(body.user_id)).id);
      } else {
        if (body.user_id !== undefined && body.user_id !== selfId(principal))
          throw new AppError('not_found', 'user not found', { param: 'user_id' });
        userId = selfId(principal)!;
      }
      checkGroupAllowed(principal, body.group);
      const { row, secret } = await keys.create(userId, {
        ...toFields(body),
        groupByAdmin: isAdmin(principal),
        name: body.name,
      });
      const json = toKeyJson(row);
      await audit.record({
        actor: actorOf(principal),
        action: 'key.create',
        keyId: json.id,
        userId,
        ip,
        changes: {
          name: json.name,
          display: json.display,
          models: json.models,
          allowed_ips: json.allowed_ips,
          quota: json.quota,
          group: json.group,
          rpm: json.rpm,
          expires_at: json.expires_at,
        },
      });
      return { ...json, key: secret };
    },
  });

  route(app, {
    method: 'GET',
    url: '/api/keys',
    summary: 'List keys (a user sees only their own)',
    tags: ['keys'],
    auth: 'any',
    query: z
      .object({
        user_id: zId.optional(),
        status: z.enum(['active', 'disabled', 'expired', 'exhausted']).optional(),
        q: z.string().max(128).optional(),
        group: zGroupName.optional(),
        limit: zLimit,
        cursor: zCursor,
      })
      .strict(),
    handler: async ({ query, principal }) => {
      await deps.flush();
      const scope = ownerScope(principal);
      return keys.list({
        limit: query.limit,
        ...(scope !== null
          ? { userId: scope }
          : query.user_id !== undefined
            ? { userId: query.user_id }
            : {}),
        ...(query.status ? { status: query.status } : {}),
        ...(query.q ? { q: query.q } : {}),
        ...(query.group ? { group: query.group } : {}),
        ...(query.cursor ? { cursor: query.cursor } : {}),
      });
    },
  });

  route(app, {
    method: 'GET',
    url: '/api/keys/:id',
    summary: 'One key',
    tags: ['keys'],
    auth: 'any',
    params: IdParams,
    handler: async ({ params, principal }) => {
      await deps.flush();
      return toKeyJson(await keys.requireKey(params.id, ownerScope(principal)));
    },
  });

  route(app, {
    method: 'PATCH',
    url: '/api/keys/:id',
    summary: 'Change any writable field; status active/disabled',
    tags: ['keys'],
    auth: 'any',
    params: IdParams,
    body: PatchBody,
    handler: async ({ params, body, principal, ip }) => {
      checkGroupAllowed(principal, body.group);
      // A group an admin granted is the admin's to change: its owner can neither swap nor clear it.
      if (
        body.group !== undefined &&
        !isAdmin(principal) &&
        Number((await keys.requireKey(params.id, ownerScope(principal))).group_by_admin) === 1
      )
        throw new AppError('forbidden', 'only an admin can change a group an admin gave this key', {
          param: 'group',
        });
      // An admin acting on a key of their own is its owner here: no lock.
      const byAdmin =
        isAdmin(principal) &&
        !(
          principal.kind === 'session' &&
          Number((await keys.requireKey(params.id)).user_id) === Number(principal.user.id)
        );
      const { before, after } = await keys.update(
        params.id,
        ownerScope(principal),
        {
          ...toFields(body),
          groupByAdmin: isAdmin(principal),
          ...(body.status ? { status: body.status } : {}),
        },
        byAdmin,
      );
      const changes = keyChanges(before, after);
      const statusChange = changes.status;
      const { status: _s, ...fieldChanges } = changes;
      if (statusChange) {
        await audit.record({
          actor: actorOf(principal),
          action: after.status === 'active' ? 'key.enable' : 'key.disable',
          keyId: params.id,
          userId: Number(after.user_id),
          ip,
          changes: { status: statusChange },
        });
      }
      if (Object.keys(fieldChanges).length > 0 || !statusChange) {
        await audit.record({
          actor: actorOf(principal),
          action: 'key.update',
          keyId: params.id,
          userId: Number(after.user_id),
          ip,
          changes: fieldChanges,
        });
      }
      await deps.flush();
      return toKeyJson(await keys.requireKey(params.id));
    },
  });

  route(app, {
    method: 'POST',
    url: '/api/keys/:id/rotate',
    summary: 'New secret (shown this once); the old one works for grace_seconds',
    tags: ['keys'],
    auth: 'any',
    params: IdParams,
    body: z
      .object({
        grace_seconds: z
          .number()
          .int()
          .min(0)
          .max(30 * 24 * 3600)
          .default(0),
      })
      .strict(),
    handler: async ({ params, body, principal, ip }) => {
      const { before, row, secret } = await keys.rotate(params.id, ownerScope(principal), body.grace_seconds);
      await audit.record({
        actor: actorOf(principal),
        action: 'key.rotate',
        keyId: params.id,
        userId: Number(row.user_id),
        ip,
        changes: { display: { from: before.display, to: row.display }, grace_seconds: body.grace_seconds },
      });
      await deps.flush();
      return { ...toKeyJson(await keys.requireKey(params.id)), key: secret };
    },
  });

  route(app, {
    method: 'DELETE',
    url: '/api/keys/:id',
    summary: 'Delete a key (its logs keep their attribution)',
    tags: ['keys'],
    auth: 'any',
    params: IdParams,
    handler: async ({ params, principal, ip }) => {
      await deps.flush();
      const before = await keys.remove(params.id, ownerScope(principal));
      await audit.record({
        actor: actorOf(principal),
        action: 'key.delete',
        keyId: params.id,
        userId: Number(before.user_id),
        ip,
        changes: { name: before.name, display: before.display },
      });
      return { ...toKeyJson(before), deleted: true };
    },
  });
}
