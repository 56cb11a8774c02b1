// Sign-in/out and user administration (contract §3).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AuditService } from '../audit/service.js';
import { SESSION_COOKIE } from './auth-hook.js';
import { AppError, notFound } from '../http/errors.js';
import { actorOf, isAdmin, selfId } from '../http/principal.js';
import { route } from '../http/route.js';
import { zCursor, zGroupName, zId, zLimit, zUsd } from '../http/validate.js';
import { usdToNano } from '../billing/money.js';
import { DEFAULT_GROUP, toUserJson, type AccountsService } from './service.js';

const zUsername = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._@-]+$/, 'letters, digits and . _ @ - only');
const zPassword = z.string().min(8, 'at least 8 characters').max(256);
const IdParams = z.object({ id: zId }).strict();

function usd(amount: number, param: string): number {
  const nano = usdToNano(amount);
  if (nano === null)
    throw new AppError('validation_error', `${param}: at most 9 decimal places and 9,000,000 USD`, { param });
  return nano;
}

export function registerAccountRoutes(
  app: FastifyInstance,
  deps: {
    accounts: AccountsService;
    audit: AuditService;
    sessionTtlSeconds: number;
    ledger: { credit(userId: number, amountNano: number): Promise<void> };
    /** Keys whose group the owner pinned follow the owner to a new group. */
    keys: { releaseOwnerPins(userId: number): Promise<void> };
    flush: () => Promise<void>;
  },
) {
  const { accounts, audit } = deps;

  route(app, {
    method: 'POST',
    url: '/api/auth/login',
    summary: 'Sign in; sets the session cookie',
    tags: ['auth'],
    auth: 'none',
    body: z.object({ username: z.string().max(256), password: z.string().max(1024) }).strict(),
    handler: async ({ body, reply, ip, req }) => {
      const { user, token, csrfToken } = await accounts.login(body.username, body.password, ip);
      reply.setCookie(SESSION_COOKIE, token, {
        httpOnly: true,
        sameSite: 'strict',
        path: '/',
        secure: req.protocol === 'https',
        maxAge: deps.sessionTtlSeconds,
      });
      return { user: toUserJson(user), csrf_token: csrfToken };
    },
  });

  route(app, {
    method: 'GET',
    url: '/api/auth/session',
    summary: 'The signed-in user and CSRF token',
    tags: ['auth'],
    auth: 'any',
    handler: async ({ principal }) => {
      if (principal.kind !== 'session') return { user: null, csrf_token: null, master: true };
      await deps.flush();
      return { user: toUserJson(principal.user), csrf_token: principal.csrfToken };
    },
  });

  route(app, {
    method: 'POST',
    url: '/api/auth/logout',
    summary: 'End the session',
    tags: ['auth'],
    auth: 'any',
    handler: async ({ principal, reply }) => {
      if (principal.kind === 'session') await accounts.logout(principal.tokenHash);
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return { ok: true };
    },
  });

  route(app, {
    method: 'POST',
    url: '/api/users',
    summary: 'Create a user',
    tags: ['users'],
    auth: 'admin',
    status: 201,
    body: z
      .object({
        username: zUsername,
        password: zPassword,
        role: z.enum(['user', 'admin']).default('user'),
        group: zGroupName.default(DEFAULT_GROUP),
        balance: zUsd.default(0),
      })
      .strict(),
    handler: async ({ body, principal, ip }) => {
      const user = await accounts.createUser({
        username: body.username,
        password: body.password,
        role: body.role,
        group: body.group,
        balanceNano: usd(body.balance, 'balance'),
      });
      await audit.record({
        actor: actorOf(principal),
        action: 'user.create',
        userId: Number(user.id),
        ip,
        changes: { username: user.username, role: user.role, group: user.group_name, balance: body.balance },
      });
      return toUserJson(user);
    },
  });

  route(app, {
    method: 'GET',
    url: '/api/users',
    summary: 'List users (a user sees only themself)',
    tags: ['users'],
    auth: 'any',
    query: z.object({ limit: zLimit, cursor: zCursor, q: z.string().max(128).optional() }).strict(),
    handler: async ({ query, principal }) => {
      await deps.flush();
      return accounts.listUsers({
        limit: query.limit,
        ...(query.cursor ? { cursor: query.cursor } : {}),
        ...(query.q ? { q: query.q } : {}),
        ...(isAdmin(principal) ? {} : { onlyId: selfId(principal)! }),
      });
    },
  });

  route(app, {
    method: 'GET',
    url: '/api/users/:id',
    summary: 'One user',
    tags: ['users'],
    auth: 'any',
    params: IdParams,
    handler: async ({ params, principal }) => {
      if (!isAdmin(principal) && params.id !== selfId(principal)) throw notFound('user');
      await deps.flush();
      return toUserJson(await accounts.requireUser(params.id));
    },
  });

  route(app, {
    method: 'PATCH',
    url: '/api/users/:id',
    summary: 'Change role, group, status or password (users: own password only)',
    tags: ['users'],
    auth: 'any',
    params: IdParams,
    body: z
      .object({
        role: z.enum(['user', 'admin']).optional(),
        group: zGroupName.optional(),
        status: z.enum(['active', 'disabled']).optional(),
        password: zPassword.optional(),
        /** Required to change one's own password (signed in): a borrowed session cannot. */
        current_password: z.string().max(1024).optional(),
      })
      .strict(),
    handler: async ({ params, body, principal, ip }) => {
      if (body.password !== undefined && principal.kind === 'session' && params.id === selfId(principal)) {
        if (body.current_password === undefined)
          throw new AppError('validation_error', 'current_password: required to change your own password', {
            param: 'current_password',
          });
        if (!(await accounts.checkPassword(params.id, body.current_password, ip)))
          throw new AppError('forbidden', 'the current password is wrong', { param: 'current_password' });
      }
      if (!isAdmin(principal)) {
        if (params.id !== selfId(principal)) throw notFound('user');
        if (body.role !== undefined || body.group !== undefined || body.status !== undefined)
          throw new AppError('forbidden', 'only an admin can change role, group or status');
      }
      const { current_password: _current, ...patch } = body;
      const { before, after } = await accounts.updateUser(params.id, patch);
      const changes: Record<string, unknown> = {};
      if (before.role !== after.role) changes.role = { from: before.role, to: after.role };
      if (before.group_name !== after.group_name) {
        changes.group = { from: before.group_name, to: after.group_name };
        await deps.keys.releaseOwnerPins(params.id);
      }
      if (before.status !== after.status) changes.status = { from: before.status, to: after.status };
      if (body.password !== undefined) changes.password = 'changed';
      await audit.record({
        actor: actorOf(principal),
        action: 'user.update',
        userId: params.id,
        ip,
        changes,
      });
      return toUserJson(after);
    },
  });

  route(app, {
    method: 'DELETE',
    url: '/api/users/:id',
    summary: 'Delete a user and revoke their keys',
    tags: ['users'],
    auth: 'admin',
    params: IdParams,
    handler: async ({ params, principal, ip }) => {
      if (principal.kind === 'session' && principal.user.id === params.id)
        throw new AppError('forbidden', 'you cannot delete yourself');
      const before = await accounts.deleteUser(params.id);
      await audit.record({
        actor: actorOf(principal),
        action: 'user.delete',
        userId: params.id,
        ip,
        changes: { username: before.username },
      });
      return { ...toUserJson(before), deleted: true };
    },
  });

  route(app, {
    method: 'POST',
    url: '/api/users/:id/topup',
    summary: 'Add to (or, negative, take from) a balance',
    tags: ['users'],
    auth: 'admin',
    params: IdParams,
    body: z
      .object({
        amount: z
          .number()
          .finite()
          .min(-9_000_000)
          .max(9_000_000)
          .refine((v) => v !== 0, 'must not be 0'),
      })
      .strict(),
    handler: async ({ params, body, principal, ip }) => {
      const nano = usd(Math.abs(body.amount), 'amount') * Math.sign(body.amount);
      const after = await accounts.topup(params.id, nano);
      await deps.ledger.credit(params.id, nano);
      await audit.record({
        actor: actorOf(principal),
        action: 'user.topup',
        userId: params.id,
        ip,
        changes: { amount: body.amount, balance: toUserJson(after).balance },
      });
      return toUserJson(after);
    },
  });
}
