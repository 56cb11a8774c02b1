// Builds the Fastify app: shared HTTP behaviour (request ids, errors, client IP, cookies,
// OpenAPI) and each domain's routes. No domain logic lives here.
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifySchemaCompiler,
  type FastifyServerOptions,
} from 'fastify';
import cookie from '@fastify/cookie';
import swagger, { type SwaggerOptions } from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Services } from './services.js';
import { clientErrorHandler, frameworkErrors, installErrorHandling } from './http/errors-hook.js';
import { AppError } from './http/errors.js';
import { installManagementAuth } from './accounts/auth-hook.js';
import { makeClientIpResolver } from './http/client-ip.js';
import { lazyChildLogger } from './http/lazy-logger.js';
import { registerAccountRoutes } from './accounts/routes.js';
import { registerKeyRoutes } from './keys/routes.js';
import { registerAuditRoutes } from './audit/routes.js';
import { registerEventRoutes } from './events/routes.js';
import { registerBillingRoutes } from './billing/routes.js';
import { registerChannelRoutes } from './channels/routes.js';
import { registerUsageRoutes } from './usage/routes.js';
import { registerSecurityRoutes } from './security/routes.js';
import { registerTokenRoutes } from './tokens/routes.js';
import { registerRelay, relayNotFound } from './relay/routes.js';
import { registerConsole } from './console/index.js';
import { registerOps } from './ops/routes.js';

declare module 'fastify' {
  interface FastifyRequest {
    clientIp: string;
  }
}

// Unique per process start (random prefix) and cheap per request (a counter).
const REQUEST_ID_PREFIX = 'req_' + randomBytes(6).toString('hex');
let requestCounter = 0;
const newRequestId = () => REQUEST_ID_PREFIX + (++requestCounter).toString(36).padStart(6, '0');

/** zod validates inside each route (http/route.ts); the JSON schemas are for the docs only. */
const noValidation: FastifySchemaCompiler<unknown> = () => (data) => ({ value: data });

type SchemaController = NonNullable<FastifyServerOptions['schemaController']>;
type CompilersFactory = NonNullable<SchemaController['compilersFactory']>;
type ValidatorBuilder = NonNullable<CompilersFactory['buildValidator']>;
type SerializerBuilder = NonNullable<CompilersFactory['buildSerializer']>;

/** Fastify's own default serializer builder (fast-json-stringify), as Fastify resolves it. */
function defaultSerializerBuilder(): SerializerBuilder {
  const fastifyRequire = createRequire(createRequire(import.meta.url).resolve('fastify'));
  return (fastifyRequire('@fastify/fast-json-stringify-compiler') as () => SerializerBuilder)();
}

/**
 * Fastify's compiler builders for one app. Left unset, Fastify loads Ajv and fast-json-stringify
 * (~0.15-0.25 s of CPU at start) to build defaults: the validator is the no-op anyway (its type
 * is Ajv's; Fastify takes any schema compiler from it, as from setValidatorCompiler), and the
 * default serializer is loaded only when a route first needs it. None does today: route()
 * hands Fastify no response schema (http/route.ts), so answers go out through JSON.stringify.
 */
function schemaController(): SchemaController {
  let serializers: SerializerBuilder | null = null;
  return {
    compilersFactory: {
      buildValidator: (() => noValidation) as unknown as ValidatorBuilder,
      buildSerializer: (schemas, options) => {
        serializers ??= defaultSerializerBuilder();
        return serializers(schemas, options);
      },
    },
  };
}

/** The OpenAPI document's settings (shared by the app and `openApiDocument`). */
const swaggerOptions: SwaggerOptions = {
  // Model names may contain "/", so the price routes take the rest of the path ("*"):
  // document that as the {model} parameter it is.
  transform: ({ schema: declared, url, route }) => {
    // A route() route's JSON schemas are made here, when the document is first built.
    const schema = route.config?.openApiSchema?.() ?? declared;
    // The console's static files are not part of the API.
    if (!url.startsWith('/api/') && !url.startsWith('/v1/'))
      return { schema: { ...schema, hide: true }, url };
    if (!url.endsWith('/*')) return { schema, url };
    if (!schema) return { schema, url: url.replace(/\/\*$/, '/:model') };
    const params = (schema as { params?: { properties?: Record<string, unknown>; required?: string[] } })
      .params;
    const properties = { ...(params?.properties ?? {}) };
    if ('*' in properties) {
      properties.model = properties['*'];
      delete properties['*'];
    }
    return {
      schema: { ...schema, params: { ...params, properties, required: ['model'] } } as typeof schema,
      url: url.replace(/\/\*$/, '/:model'),
    };
  },
  openapi: {
    openapi: '3.0.3',
    info: {
      title: 'MoleAPI management API',
      version: '0.1.0',
      description:
        'Keys, users, channels, prices, logs, usage and audit. See README for the relay API (/v1).',
    },
    components: {
      securitySchemes: {
        masterKey: { type: 'http', scheme: 'bearer', description: 'MOLE_MASTER_KEY' },
        managementToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'a management token (mg-…), limited to the scope each route names',
        },
        session: {
          type: 'apiKey',
          in: 'cookie',
          name: 'mole_session',
          description: 'console session; writes also need x-csrf-token',
        },
      },
    },
  },
};

type ManagementDeps = Pick<
  Services,
  | 'accountActions'
  | 'keyActions'
  | 'audit'
  | 'events'
  | 'billingActions'
  | 'channelActions'
  | 'usage'
  | 'usagePages'
  | 'flush'
  | 'securityActions'
  | 'scanningKeys'
  | 'tokenActions'
> & { config: Pick<Services['config'], 'sessionTtlSeconds'> };

/** Every /api route (contract §3); the auth hook and the document's own route are the caller's. */
function registerManagementRoutes(api: FastifyInstance, services: ManagementDeps): void {
  registerAccountRoutes(api, { ...services, sessionTtlSeconds: services.config.sessionTtlSeconds });
  registerKeyRoutes(api, services);
  registerAuditRoutes(api, services);
  registerEventRoutes(api, services);
  registerBillingRoutes(api, services);
  registerChannelRoutes(api, services);
  registerUsageRoutes(api, services);
  registerSecurityRoutes(api, services);
  registerTokenRoutes(api, services);
}

/**
 * The management API's OpenAPI document (what /api/openapi.json answers), built in-process
 * without services, database or listener: the routes only declare themselves. Used by
 * scripts/gen-api-types.ts to generate the console's API types.
 */
export async function openApiDocument(): Promise<Record<string, unknown>> {
  const app = Fastify({ logger: false, schemaController: schemaController() });
  app.setValidatorCompiler(noValidation);
  await app.register(swagger, swaggerOptions);
  const unused = new Proxy({} as ManagementDeps, {
    get: (_t, name) => (name === 'config' ? { sessionTtlSeconds: 0 } : undefined),
  });
  await app.register(async (api) => registerManagementRoutes(api, unused));
  await app.ready();
  const doc = app.swagger() as unknown as Record<string, unknown>;
  await app.close();
  return doc;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Ends the relay's answers still under way, when a drain's grace period ran out (main.ts). */
    cutAnswers(waitMs: number): Promise<void>;
  }
}

export async function buildApp(services: Services, logger: Logger): Promise<FastifyInstance> {
  const { config } = services;
  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // No per-request access lines: the call-log table is the access log for the relay.
    logController: new LogController({ disableRequestLogging: true }),
    // req.log's pino child is made only when a request logs something (most never do).
    childLoggerFactory: lazyChildLogger,
    genReqId: newRequestId,
    bodyLimit: 1024 * 1024,
    trustProxy: false,
    // Let in-flight streams finish on close; idle keep-alive sockets are closed.
    forceCloseConnections: 'idle',
    // Requests arriving while draining are refused by our onRequest hook, in their protocol's shape.
    return503OnClosing: false,
    // A request (not its answer) must arrive whole within this, its headers too; Node checks
    // every interval (and counts only a headers timeout no longer than the request's).
    requestTimeout: config.requestTimeoutMs,
    http: {
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: Math.min(60_000, config.requestTimeoutMs),
      connectionsCheckingInterval: Math.min(30_000, Math.ceil(config.requestTimeoutMs / 4)),
    },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 256 },
    frameworkErrors,
    clientErrorHandler: clientErrorHandler(newRequestId),
    schemaController: schemaController(),
  });
  /** Draining: requests that still arrive are refused (Fastify's own 503 has no protocol shape). */
  let closing = false;
  // 'idle' closes the sockets that are idle when closing begins. One busy then (a stream) goes
  // idle when its answer ends, and server.close() would wait on it until the client let it go
  // (a keep-alive client may hold it for minutes) or the grace period ran out: close such
  // sockets as they go idle, so a drain ends with its last answer.
  app.addHook('preClose', (done) => {
    closing = true;
    const sweep = setInterval(() => app.server.closeIdleConnections(), 100);
    sweep.unref();
    app.server.once('close', () => clearInterval(sweep));
    done();
  });
  app.setValidatorCompiler(noValidation);

  const clientIp = makeClientIpResolver(config.trustedProxies);
  app.decorateRequest('clientIp', '');
  // Callback style: nothing here waits, and an async hook costs a promise per request.
  app.addHook('onRequest', (req, reply, done) => {
    req.clientIp = clientIp(req.socket.remoteAddress, req.headers['x-forwarded-for']);
    reply.header('x-request-id', req.id);
    // A request on a connection still open while draining (one pipelined behind an answer under
    // way, say): refused in its protocol's error shape, so its client retries elsewhere.
    if (closing) return done(shuttingDown());
    done();
  });
  installErrorHandling(app);

  await app.register(swagger, swaggerOptions);
  await app.register(swaggerUi, {
    routePrefix: '/api/docs',
    // No badge from validator.swagger.io: the page loads nothing from elsewhere.
    uiConfig: { validatorUrl: null },
    // The docs page runs only its own scripts (plus the inline ones swagger-ui ships, by hash),
    // talks only to this origin and cannot be framed. No upgrade-insecure-requests: a gateway
    // served over plain HTTP on a LAN must still load its own assets.
    staticCSP: true,
    transformStaticCSP: (header: string) =>
      header
        .replace(/\s*upgrade-insecure-requests;?/, '')
        .replace("frame-ancestors 'self'", "frame-ancestors 'none'")
        .replace(/ https:/g, '')
        .replace(' validator.swagger.io', '')
        .trim()
        .replace(/;?$/, "; connect-src 'self'; form-action 'self'"),
  });

  await app.register(async (api) => {
    // Sessions live on the management API only: the relay's answers skip the cookie hooks.
    await api.register(cookie);
    // A DELETE with no body from a client that sends content-type: application/json on every
    // request has no body, rather than an invalid one (a write with no body stays refused).
    const json = api.getDefaultJsonParser('error', 'error');
    api.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) =>
      body === '' && req.method === 'DELETE'
        ? done(null, undefined)
        : json(req, body as string, (err, value) =>
            done(
              err && prototypeKeys(body as string) ? prototypeKeysRefused() : err,
              err ? value : wellFormed(value, body as string),
            ),
          ),
    );
    installManagementAuth(api, services);
    // Answers carry secrets shown once (new keys and tokens, the CSRF token) and account data:
    // no browser or proxy cache may keep them, and none is read as anything but what it says.
    api.addHook('onRequest', (_req, reply, done) => {
      reply.header('cache-control', 'no-store').header('x-content-type-options', 'nosniff');
      done();
    });
    // A change is answered once Redis has taken its announcements: a client that hears "done"
    // and calls another instance finds it there (a key deleted here is refused there).
    api.addHook('onSend', async (req) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') await services.bus.sent();
    });
    api.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());
    registerManagementRoutes(api, services);
  });

  let cutAnswers: ((waitMs: number) => Promise<void>) | null = null;
  app.decorate('cutAnswers', (waitMs: number) => cutAnswers?.(waitMs) ?? Promise.resolve());
  await app.register(async (relay) => {
    cutAnswers = await registerRelay(relay, services);
  });

  // Probes and metrics: before the console, so these paths never reach it.
  registerOps(app, {
    readiness: services.readiness,
    metrics: services.metrics,
    metricsToken: config.metricsToken,
    trustedProxies: config.trustedProxies,
  });

  const here = path.dirname(fileURLToPath(import.meta.url));
  await registerConsole(app, { webDir: path.resolve(here, '..', 'dist', 'web'), relayNotFound });
  return app;
}

/**
 * A body's strings, well-formed: a lone UTF-16 surrogate (only a `\ud800`-style escape makes
 * one) becomes U+FFFD, as PostgreSQL's text already stores it, where SQLite kept bytes no UTF-8
 * reader can read. Bodies without such an escape (all but a few) are left as parsed.
 */
function wellFormed(value: unknown, body: string): unknown {
  if (!/\\u[dD][89a-fA-F]/.test(body)) return value;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return v.toWellFormed();
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object')
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.toWellFormed(), walk(x)]));
    return v;
  };
  return walk(value);
}

/** Fastify's JSON parser refuses `__proto__` and `constructor.prototype` keys, which are valid JSON. */
const prototypeKeysRefused = () =>
  new AppError(
    'invalid_request',
    'request body has a forbidden key: __proto__, or constructor with a prototype',
  );
function prototypeKeys(body: string): boolean {
  try {
    JSON.parse(body);
    return true; // valid JSON the parser still refused
  } catch {
    return false;
  }
}

const shuttingDown = () =>
  new AppError('service_unavailable', 'The gateway is shutting down: retry the request.', {
    headers: { 'retry-after': '1' },
  });
