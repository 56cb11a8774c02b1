// One way to declare a management route: auth level, the scope a management token needs
// there, zod schemas (input validated here; input and answer both published in
// /api/openapi.json, from which the console's API types are generated:
// scripts/gen-api-types.ts), and a handler that only calls into its domain.
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import { z } from 'zod';
import { AppError } from './errors.js';
import { isAdmin, type Principal, type Scope, tokenOf } from './principal.js';
import { IdParams, parseInput } from './validate.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A route() route's schema for the OpenAPI document (see app.ts's transform), made when asked. */
    openApiSchema?: () => FastifySchema;
  }
}

export type Auth = 'none' | 'any' | 'admin';

export interface RouteCtx<B, Q, P> {
  body: B;
  query: Q;
  params: P;
  principal: Principal;
  req: FastifyRequest;
  reply: FastifyReply;
  ip: string;
}

const Empty = z.object({}).strict();

// Building blocks of answer schemas. A `title` names the type generated for the console.
/** A time in an answer: ISO 8601, UTC. */
export const zTime = z.string().meta({ format: 'date-time' });
/** One page of a cursor-paginated list; `next_cursor` is null on the last page. */
export const pageOf = <T extends z.ZodType>(item: T, title: string) =>
  z.object({ data: z.array(item), next_cursor: z.string().nullable() }).meta({ title });
/** A list answered whole. */
export const listOf = <T extends z.ZodType>(item: T, title: string) =>
  z.object({ data: z.array(item) }).meta({ title });

/** A management token may use a route only when the route names a scope the token holds. */
function checkScope(principal: Principal, scope: Scope | undefined): void {
  const token = tokenOf(principal);
  if (!token) return;
  if (!scope)
    throw new AppError(
      'insufficient_scope',
      'management tokens cannot use this route; sign in to the console or use the master key',
    );
  if (!token.scopes.includes(scope))
    throw new AppError('insufficient_scope', `this management token lacks the "${scope}" scope`);
}

export function route<
  B extends z.ZodType = typeof Empty,
  Q extends z.ZodType = typeof Empty,
  P extends z.ZodType = typeof Empty,
>(
  app: FastifyInstance,
  def: {
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
    url: string;
    summary: string;
    tags: string[];
    auth: Auth;
    /**
     * The scope a management token needs here. A route without one refuses tokens (403
     * insufficient_scope): sessions and the master key only.
     */
    scope?: Scope;
    body?: B;
    query?: Q;
    params?: P;
    status?: number;
    /**
     * The answer's shape (at `status`), for the OpenAPI document only: answers are sent as the
     * handler returns them (JSON.stringify), never filtered or reshaped by the schema.
     */
    response?: z.ZodType;
    handler: (ctx: RouteCtx<z.infer<B>, z.infer<Q>, z.infer<P>>) => Promise<unknown>;
  },
): void {
  // The JSON schemas are for the OpenAPI document only (zod validates, answers go out as they
  // are), so they are made when the document is first built, not at start: converting every
  // route's zod schemas cost 30-70 ms of CPU per app. Fastify sees a schema without them.
  const openApiSchema = () => {
    const schema: Record<string, unknown> = { summary: def.summary, tags: def.tags };
    const jsonSchema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
    if (def.body) schema.body = jsonSchema(def.body);
    if (def.query) schema.querystring = jsonSchema(def.query);
    if (def.params) schema.params = jsonSchema(def.params);
    if (def.auth !== 'none')
      schema.security = [
        { masterKey: [] },
        { session: [] },
        ...(def.scope ? [{ managementToken: [def.scope] }] : []),
      ];
    if (def.auth !== 'none')
      schema.description = def.scope
        ? `Management tokens need the \`${def.scope}\` scope.`
        : 'Not open to management tokens (a console session or the master key only).';
    if (def.response)
      schema.response = {
        [def.status ?? 200]: z.toJSONSchema(def.response, {
          target: 'openapi-3.0',
          io: 'output',
          unrepresentable: 'any',
        }),
      };
    return schema;
  };

  app.route({
    method: def.method,
    url: def.url,
    schema: { summary: def.summary, tags: def.tags },
    config: { openApiSchema },
    handler: async (req, reply) => {
      const principal = req.principal;
      if (def.auth !== 'none') {
        if (!principal)
          throw new AppError(
            'unauthorized',
            'sign in, or send a management token (mg-…) or the master key as "Authorization: Bearer <token>"',
          );
        checkScope(principal, def.scope);
        if (def.auth === 'admin' && !isAdmin(principal))
          throw new AppError('forbidden', 'this needs an admin');
      }
      const ctx = {
        body: parseInput(def.body ?? Empty, req.body, 'body'),
        query: parseInput(def.query ?? Empty, req.query, 'query'),
        params: parseInput(def.params ?? Empty, req.params, 'params'),
        principal: principal!,
        req,
        reply,
        ip: req.clientIp,
      };
      const result = await def.handler(ctx as RouteCtx<z.infer<B>, z.infer<Q>, z.infer<P>>);
      if (reply.sent) return reply;
      reply.code(def.status ?? 200);
      return result;
    },
  });
}

/**
 * `DELETE <url>/:id` of one row: the domain's `remove` takes it away and answers it as it was,
 * with `deleted: true` (answer schema: `row` extended so, named `title`).
 */
export function removeRoute(
  app: FastifyInstance,
  def: {
    url: string;
    summary: string;
    tags: string[];
    auth: Auth;
    scope: Scope;
    row: z.ZodObject;
    title: string;
    remove: (caller: { principal: Principal; ip: string }, id: number) => Promise<unknown>;
  },
): void {
  const { row, title, remove, ...rest } = def;
  route(app, {
    ...rest,
    method: 'DELETE',
    params: IdParams,
    response: row.extend({ deleted: z.literal(true) }).meta({ title }),
    handler: ({ params, principal, ip }) => remove({ principal, ip }, params.id),
  });
}
