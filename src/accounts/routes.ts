// Sign-in/out and user administration (contract §3): validate the input, call
// accounts/actions.ts (which knows who may do what, and writes the audit trail), answer.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { pageOf, removeRoute, route, zTime } from '../http/route.js';
import { usdNano } from '../billing/money.js';
import { IdParams, zCursor, zGroupName, zLimit, zUsd } from '../http/validate.js';
import { BudgetSchema, BudgetUsageSchema, budgetFieldsOf, zBudgetFields } from '../budgets/input.js';
import { limitFieldsOf, zLimitFields } from '../limits/validate.js';
import type { AccountActions } from './actions.js';
import { SESSION_COOKIE } from './auth-hook.js';
import { DEFAULT_GROUP, toUserJson } from './service.js';

const zUsername = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._@-]+$/, 'letters, digits and . _ @ - only');
const zPassword = z.string().min(8, 'at least 8 characters').max(256);

// Answers (the OpenAPI document, and from it the console's types: web/src/api-types.ts).
/** A user as the API shows it (accounts/service.ts `toUserJson`). */
export const UserSchema = z
  .object({
    id: z.number().int(),
    username: z.string(),
    role: z.enum(['admin', 'user']),
    group: z.string(),
    balance: z.number().describe('USD'),
    status: z.enum(['active', 'disabled']),
    budget: BudgetSchema.nullable().optional().describe('spend allowed per period (USD); null = none'),
    alert_thresholds: z.array(z.number()).nullable().optional().describe('null = [0.8, 1]'),
    budget_usage: BudgetUsageSchema.optional().describe(
      "the account's budget against its spend this period (GET /api/users/:id only)",
    ),
    rpm: z.number().int().nullable().optional().describe('requests per minute over all its keys'),
    tpm: z.number().int().nullable().optional().describe('tokens per minute over all its keys'),
    max_concurrency: z.number().int().nullable().optional().describe('requests at once over all its keys'),
    created_at: zTime,
    updated_at: zTime,
  })
  .meta({ title: 'User' });
const SessionSchema = z
  .object({
    user: UserSchema.nullable(),
    csrf_token: z.string().nullable(),
    master: z.boolean().optional().describe('true when the caller is the master key'),
  })
  .meta({ title: 'Session' });
const Ok = z.object({ ok: z.boolean() });

export function registerAccountRoutes(
  app: FastifyInstance,
  deps: { accountActions: AccountActions; sessionTtlSeconds: number },
) {
  const actions = deps.accountActions;

  route(app, {
    method: 'POST',
    url: '/api/auth/login',
    summary: 'Sign in; sets the session cookie',
    tags: ['auth'],
    auth: 'none',
    body: z.object({ username: z.string().max(256), password: z.string().max(1024) }).strict(),
    response: SessionSchema,
    handler: async ({ body, reply, ip, req }) => {
      const { user, token, csrfToken } = await actions.login(body.username, body.password, ip);
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
    response: SessionSchema,
    handler: ({ principal }) => actions.session(principal),
  });

  route(app, {
    method: 'POST',
    url: '/api/auth/logout',
    summary: 'End the session',
    tags: ['auth'],
    auth: 'any',
    response: Ok,
    handler: async ({ principal, reply, req }) => {
      const answer = await actions.logout(principal);
      // Cleared with the attributes it was set with, as browsers match them.
      reply.clearCookie(SESSION_COOKIE, {
        httpOnly: true,
        sameSite: 'strict',
        path: '/',
        secure: req.protocol === 'https',
      });
      return answer;
    },
  });

  route(app, {
    method: 'POST',
    url: '/api/users',
    summary: 'Create a user',
    tags: ['users'],
    auth: 'admin',
    scope: 'users:write',
    status: 201,
    body: z
      .object({
        username: zUsername,
        password: zPassword,
        role: z.enum(['user', 'admin']).default('user'),
        group: zGroupName.default(DEFAULT_GROUP),
        balance: zUsd.default(0),
        ...zBudgetFields,
        ...zLimitFields,
      })
      .strict(),
    response: UserSchema,
    handler: ({ body, principal, ip }) =>
      actions.create(
        { principal, ip },
        {
          username: body.username,
          password: body.password,
          role: body.role,
          group: body.group,
          balanceNano: usdNano(body.balance, 'balance'),
          balanceUsd: body.balance,
          ...budgetFieldsOf(body),
          ...limitFieldsOf(body),
        },
      ),
  });

  route(app, {
    method: 'GET',
    url: '/api/users',
    summary: 'List users (a user sees only themself)',
    tags: ['users'],
    auth: 'any',
    scope: 'users:read',
    query: z.object({ limit: zLimit, cursor: zCursor, q: z.string().max(128).optional() }).strict(),
    response: pageOf(UserSchema, 'UserPage'),
    handler: ({ query, principal }) => actions.list(principal, query),
  });

  route(app, {
    method: 'GET',
    url: '/api/users/:id',
    summary: 'One user',
    tags: ['users'],
    auth: 'any',
    scope: 'users:read',
    params: IdParams,
    response: UserSchema,
    handler: ({ params, principal }) => actions.get(principal, params.id),
  });

  route(app, {
    method: 'PATCH',
    url: '/api/users/:id',
    summary: 'Change role, group, status, limits or password (users: own password only)',
    tags: ['users'],
    auth: 'any',
    scope: 'users:write',
    params: IdParams,
    body: z
      .object({
        role: z.enum(['user', 'admin']).optional(),
        group: zGroupName.optional(),
        status: z.enum(['active', 'disabled']).optional(),
        password: zPassword.optional(),
        ...zBudgetFields,
        ...zLimitFields,
        /** Required to change one's own password (signed in): a borrowed session cannot. */
        current_password: z.string().max(1024).optional(),
      })
      .strict(),
    response: UserSchema,
    handler: ({ params, body, principal, ip }) => {
      const { current_password, budget, alert_thresholds, rpm, tpm, max_concurrency, ...patch } = body;
      return actions.update({ principal, ip }, params.id, {
        ...patch,
        ...limitFieldsOf({ rpm, tpm, max_concurrency }),
        ...budgetFieldsOf({ budget, alert_thresholds }),
        ...(current_password !== undefined ? { currentPassword: current_password } : {}),
      });
    },
  });

  removeRoute(app, {
    url: '/api/users/:id',
    summary: 'Delete a user and revoke their keys',
    tags: ['users'],
    auth: 'admin',
    scope: 'users:write',
    row: UserSchema,
    title: 'DeletedUser',
    remove: (caller, id) => actions.remove(caller, id),
  });

  route(app, {
    method: 'POST',
    url: '/api/users/:id/topup',
    summary: 'Add to (or, negative, take from) a balance',
    tags: ['users'],
    auth: 'admin',
    scope: 'users:write',
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
    response: UserSchema,
    handler: ({ params, body, principal, ip }) => {
      const nano = usdNano(Math.abs(body.amount), 'amount') * Math.sign(body.amount);
      return actions.topup({ principal, ip }, params.id, nano, body.amount);
    },
  });
}
