// The relay API (contract §4, §6): OpenAI's routes and Responses under /v1, Anthropic's
// Messages under /v1/messages, Gemini's under /v1beta/models (and /v1/models/…:method).
// The key is verified in onRequest, before the body is read, so the contract's check order
// holds even for oversized or malformed bodies; every refusal speaks the route's protocol.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decodeBody } from './body-encoding.js';
import { z } from 'zod';
import type { Services } from '../services.js';
import { AppError, unreachableStoreError } from '../http/errors.js';
import { drainRefusedBody } from '../http/refused-body.js';
import type { VerifiedKey } from '../keys/verify.js';
import { usdToNano } from '../billing/money.js';
import { zModelPattern, zUsd } from '../http/validate.js';
import type { Principal } from '../http/principal.js';
import type { EphemeralRequest } from '../keys/actions.js';
import { MAX_ORIGINS } from '../keys/origins.js';
import type { Operation, Protocol } from './canonical.js';
import { createRelay, type Relay } from './pipeline.js';
import { preflight } from './cors.js';
import { keySelf } from './key-self.js';
import { codec } from './protocols/index.js';
import { checkModelName } from './protocols/json.js';
import { parseRelayBody } from './protocols/openai.js';
import type { RouteInfo } from './protocols/types.js';
import { baseUrlHint, withoutDoubledVersion } from '../shared/base-url-hint.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The relay route's protocol and operation (Gemini's model and method come from the path). */
    relay?: { protocol: Protocol; operation: Operation | 'count_tokens' };
    /** The kill switch: the key may switch itself off from any IP or origin. */
    killSwitch?: boolean;
  }
}

/** `POST /v1/keys/ephemeral`'s body (contract §8). */
const EphemeralBody = z
  .object({
    ttl_seconds: z.number().int().min(1).max(3600).default(600),
    models: z.array(zModelPattern).max(500).optional(),
    max_cost: zUsd.nullable().optional(),
    allowed_origins: z.array(z.string().max(300)).max(MAX_ORIGINS).optional(),
  })
  .strict();

/** The refusal for a model that does not exist or that the key may not use. */
const modelNotFound = (model: string, param: string | null = null) =>
  new AppError(
    'model_not_found',
    `The model "${model.slice(0, 256)}" does not exist or is not available to this key.`,
    { param },
  );

function ephemeralRequest(raw: Buffer | undefined): EphemeralRequest {
  const r = EphemeralBody.safeParse(raw && raw.length > 0 ? parseRelayBody(raw) : {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const param = issue.path.join('.') || null;
    const message =
      issue.code === 'unrecognized_keys'
        ? // Names only when they look like field names: a pasted secret is never echoed.
          `unknown field: ${issue.keys.map((k) => (/^[a-z_]{1,40}$/.test(k) ? k : '(unnamed)')).join(', ')}`
        : `${param ? param + ': ' : ''}${issue.message}`;
    throw new AppError('invalid_request', message, { param });
  }
  const b = r.data;
  const maxCostNano = b.max_cost == null ? undefined : usdToNano(b.max_cost);
  if (maxCostNano === null)
    throw new AppError('invalid_request', 'max_cost: at most 9 decimal places', { param: 'max_cost' });
  return {
    ttlSeconds: b.ttl_seconds,
    models: b.models,
    maxCostNano,
    allowedOrigins: b.allowed_origins,
  };
}

/** The presenting key, as the actor of its own acts (minting, the kill switch). */
function keyPrincipal(key: VerifiedKey): Principal {
  return {
    kind: 'key',
    keyId: key.id,
    userId: key.userId,
    ephemeralId: key.ephemeral?.id ?? null,
    graceUntil: key.graceUntil,
  };
}

/** Gemini's `{model}:{method}` path segment. */
function geminiTarget(req: FastifyRequest): { model: string; method: string } {
  // Fastify has decoded it already (a second decode would fail on a literal '%').
  const target = (req.params as { '*'?: string })['*'] ?? '';
  const at = target.lastIndexOf(':');
  const model = (at < 0 ? target : target.slice(0, at)).replace(/^models\//, '');
  return { model, method: at < 0 ? '' : target.slice(at + 1) };
}

const GEMINI_METHODS: Record<string, { stream: boolean; count?: boolean; operation?: 'embeddings' }> = {
  generateContent: { stream: false },
  streamGenerateContent: { stream: true },
  countTokens: { stream: false, count: true },
  embedContent: { stream: false, operation: 'embeddings' },
  batchEmbedContents: { stream: false, operation: 'embeddings' },
};

/** What a request's route says about it: protocol, operation, and Gemini's path model. */
function routeOf(req: FastifyRequest): RouteInfo & { count?: boolean } {
  const cfg = req.routeOptions.config.relay;
  if (!cfg) {
    // A doubled `/v1/v1/…` (a base URL that kept its /v1) answers in the shape of the path meant.
    const path = withoutDoubledVersion(req.url.split('?')[0]!);
    // Under /v1 a Google method path (`…/{name}:{method}`) with a Google credential is
    // @google/genai's (apiVersion v1); MoleAPI's own routes there keep OpenAI's shape.
    const googleV1 = req.headers['x-goog-api-key'] !== undefined && /\/[^/]*:[A-Za-z]+$/.test(path);
    const protocol: Protocol =
      path.startsWith('/v1beta/') || googleV1
        ? 'gemini'
        : path.startsWith('/v1/messages')
          ? 'anthropic'
          : 'openai';
    return { protocol, operation: 'generate' };
  }
  if (cfg.protocol === 'gemini') {
    const { model, method } = geminiTarget(req);
    const m = GEMINI_METHODS[method];
    return {
      protocol: 'gemini',
      operation: m?.operation ?? 'generate',
      pathModel: model,
      pathStream: m?.stream ?? false,
      count: m?.count,
    };
  }
  if (cfg.operation === 'count_tokens') return { protocol: cfg.protocol, operation: 'generate', count: true };
  return { protocol: cfg.protocol, operation: cfg.operation };
}

/** Registers the relay's routes; answers its `cutAnswers` (pipeline.ts) for the drain. */
export async function registerRelay(app: FastifyInstance, s: Services): Promise<Relay['cutAnswers']> {
  const relay = createRelay(s);
  app.addHook('onClose', async () => relay.close());
  app.decorateRequest('relay', null);
  await app.register(async (v1) => relayRoutes(v1, s, relay, 'v1'), { prefix: '/v1' });
  await app.register(async (v1beta) => relayRoutes(v1beta, s, relay, 'v1beta'), { prefix: '/v1beta' });
  return relay.cutAnswers;
}

function relayRoutes(app: FastifyInstance, s: Services, relay: Relay, version: 'v1' | 'v1beta'): void {
  // Bodies arrive as raw bytes (decoded when sent compressed); the pipeline parses them after
  // the key checks.
  const limit = s.config.maxBodyBytes;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: limit }, (req, body, done) => {
    const coding = req.headers['content-encoding'];
    if (coding === undefined) return done(null, body);
    decodeBody(body as Buffer, coding, limit).then(
      (decoded) => done(null, decoded),
      (err: Error) => done(err),
    );
  });

  // CORS preflights carry no key: answered alike for every origin (relay/cors.ts).
  app.options('/*', { schema: { hide: true } }, async (req, reply) => preflight(req, reply));

  app.addHook('onRequest', async (req, reply) => {
    if (req.method === 'OPTIONS') return;
    const route = routeOf(req);
    // Anthropic's SDK reads its request id from `request-id` (errors carry it as requestID).
    if (route.protocol === 'anthropic') void reply.header('request-id', req.id);
    try {
      await relay.authenticate(req, reply, route, { anyPlace: req.routeOptions.config.killSwitch === true });
    } catch (err) {
      // `return reply`: the answer is sent, the route must not run. Its body was never read:
      // what comes of it is drained within bounds, as after a 413 (an unknown key must not hold
      // a connection with an endless upload).
      if (err instanceof AppError) {
        drainRefusedBody(req, reply);
        await relay.refuse(req, reply, err);
        return reply;
      }
      throw err;
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    let e: AppError;
    const unreachable = unreachableStoreError(err);
    if (err instanceof AppError) e = err;
    else if (err.statusCode === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      e = new AppError('request_too_large', `request body is larger than ${s.config.maxBodyBytes} bytes`);
      drainRefusedBody(req, reply);
    } else if (err.statusCode && err.statusCode < 500) e = new AppError('invalid_request', 'invalid request');
    // The client logs each connection error (redis.ts, the pool's); one line per refused
    // request would flood.
    else if (unreachable) e = unreachable;
    else {
      req.log.error({ err: { message: err.message, stack: err.stack } }, 'relay error');
      e = new AppError('internal_error', 'internal error');
    }
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.end();
      return;
    }
    return relay.refuse(req, reply, e);
  });

  const post = (url: string, protocol: Protocol, operation: Operation) =>
    app.post(
      url,
      { bodyLimit: s.config.maxBodyBytes, config: { relay: { protocol, operation } } },
      (req: FastifyRequest, reply: FastifyReply) => relay.handle(req, reply, routeOf(req)),
    );

  // Models this key can actually call: in its list, served to its group, and priced (an
  // unpriced model is refused, so it is not offered).
  const usableModels = (key: VerifiedKey) =>
    s.channels
      .modelsFor(key.group, s.catalog.pricedModels())
      .filter(
        (m) =>
          (!key.models || key.models.allows(m)) &&
          relay.groupAllows(key.group, m) &&
          s.catalog.price(m) !== null,
      );

  /** Token counting answered locally: the key's model rules apply, nothing is billed. */
  const countTokens = async (req: FastifyRequest, reply: FastifyReply, route: RouteInfo) => {
    const body = parseRelayBody(req.body as Buffer | undefined);
    const model = checkModelName(route.pathModel ?? body.model);
    req.relay!.model = model;
    const key = req.relay!.key!;
    relay.checkPolicy(key, model);
    // A count is one of the key's requests: a long prompt takes seconds of CPU to tokenize.
    const ticket = await relay.limitFree(req, reply, key);
    let answer: unknown;
    try {
      answer = await codec(route.protocol).countTokens?.(body);
    } finally {
      await ticket.done();
    }
    if (!answer) throw new AppError('not_found', 'token counting is not offered for this protocol');
    await relay.logFree(req, reply);
    return reply.send(answer);
  };

  if (version === 'v1') {
    post('/chat/completions', 'openai', 'generate');
    post('/completions', 'openai', 'completions');
    post('/embeddings', 'openai', 'embeddings');
    post('/responses', 'responses', 'generate');
    post('/messages', 'anthropic', 'generate');
    app.post(
      '/messages/count_tokens',
      {
        bodyLimit: s.config.maxBodyBytes,
        config: { relay: { protocol: 'anthropic', operation: 'count_tokens' } },
      },
      (req, reply) => countTokens(req, reply, routeOf(req)),
    );

    const modelJson = (id: string, created: number) => ({
      id,
      object: 'model',
      created,
      owned_by: 'moleapi',
    });
    /** Anthropic's model object (its SDK's `models.list()` / `models.retrieve()`). */
    const anthropicModelJson = (id: string, createdAt: string) => ({
      type: 'model',
      id,
      display_name: id,
      created_at: createdAt,
    });
    /**
     * Whose SDK asks for `/v1/models`, recorded as the request's protocol so that its answer,
     * refusal and log row are in that SDK's terms (the Anthropic SDK always sends
     * anthropic-version; @google/genai told apiVersion v1 sends x-goog-api-key).
     */
    const modelsClient = (req: FastifyRequest): Protocol => {
      const protocol: Protocol =
        req.headers['x-goog-api-key'] !== undefined
          ? 'gemini'
          : req.headers['anthropic-version'] !== undefined
            ? 'anthropic'
            : 'openai';
      req.relay!.protocol = protocol;
      return protocol;
    };
    app.get('/models', async (req, reply) => {
      const key = req.relay!.key!;
      const client = modelsClient(req);
      const ids = usableModels(key);
      await relay.logFree(req, reply);
      if (client === 'gemini') return codec('gemini').modelList?.(ids) ?? { models: [] };
      if (client === 'anthropic') {
        const createdAt = new Date().toISOString();
        return {
          data: ids.map((id) => anthropicModelJson(id, createdAt)),
          has_more: false,
          first_id: ids[0] ?? null,
          last_id: ids.at(-1) ?? null,
        };
      }
      const created = Math.floor(Date.now() / 1000);
      return { object: 'list', data: ids.map((id) => modelJson(id, created)) };
    });

    // GET /v1/models/{model} (the SDK's models.retrieve); model names may contain "/".
    app.get('/models/*', async (req, reply) => {
      const key = req.relay!.key!;
      const client = modelsClient(req);
      const path = (req.params as { '*': string })['*'];
      const id = client === 'gemini' ? path.replace(/^models\//, '') : path;
      req.relay!.model = id.slice(0, 256);
      if (!usableModels(key).includes(id)) {
        return relay.refuse(req, reply, modelNotFound(id, client === 'gemini' ? undefined : 'model'));
      }
      await relay.logFree(req, reply);
      if (client === 'gemini')
        return (codec('gemini').modelList?.([id]) as { models?: unknown[] } | undefined)?.models?.[0] ?? {};
      if (client === 'anthropic') return anthropicModelJson(id, new Date().toISOString());
      return modelJson(id, Math.floor(Date.now() / 1000));
    });

    // The presenting key's own object: status, models, limits, spend. Never the secret.
    const keySelfDeps = {
      ephemeralKeys: s.ephemeralKeys,
      spendCaps: s.spendCaps,
      keys: s.keys,
      ledger: s.ledger,
      accounts: s.accounts,
      limiter: s.limiter,
      budgets: s.budgets,
      limitsOf: relay.limitsOf,
    };
    app.get('/key', async (req, reply) => {
      await relay.logFree(req, reply);
      return keySelf(keySelfDeps, req.relay!.key!);
    });

    // Ephemeral keys (contract §8): the presenting key mints one for a browser or an app.
    app.post('/keys/ephemeral', async (req, reply) => {
      const input = ephemeralRequest(req.body as Buffer | undefined);
      // A mint is a request of the parent: it counts against the parent's limits (rpm).
      await relay.countRequest(req, reply, req.relay!.key!);
      const minted = await s.keyActions.mintEphemeral(
        { principal: keyPrincipal(req.relay!.key!), ip: req.clientIp },
        input,
      );
      await relay.logFree(req, reply, 201);
      // The secret is in this answer: no cache along the way may keep it.
      return reply.code(201).header('cache-control', 'no-store').send(minted);
    });

    // The kill switch: the presenting key switches itself off and locks (an ephemeral key, just itself).
    app.post('/key/revoke', { config: { killSwitch: true } }, async (req, reply) => {
      const key = req.relay!.key!;
      const revoked = await s.keyActions.revokeSelf({ principal: keyPrincipal(key), ip: req.clientIp });
      await relay.logFree(req, reply);
      return key.ephemeral ? revoked : { object: 'api_key', ...revoked };
    });
  } else {
    // Gemini's model list and model lookup (v1beta; under v1 those paths are OpenAI's).
    app.get(
      '/models',
      { config: { relay: { protocol: 'gemini', operation: 'generate' } } },
      async (req, reply) => {
        await relay.logFree(req, reply);
        return codec('gemini').modelList?.(usableModels(req.relay!.key!)) ?? { models: [] };
      },
    );
    app.get(
      '/models/*',
      { config: { relay: { protocol: 'gemini', operation: 'generate' } } },
      async (req, reply) => {
        const { model } = geminiTarget(req);
        req.relay!.model = model.slice(0, 256);
        const list = codec('gemini').modelList?.([model]) as { models?: unknown[] } | undefined;
        if (!usableModels(req.relay!.key!).includes(model) || !list?.models?.[0])
          return relay.refuse(req, reply, modelNotFound(model));
        await relay.logFree(req, reply);
        return list.models[0];
      },
    );
  }

  // Gemini's `models/{model}:{method}` (under v1beta, and under v1 as @google/genai sends it).
  app.post(
    '/models/*',
    { bodyLimit: s.config.maxBodyBytes, config: { relay: { protocol: 'gemini', operation: 'generate' } } },
    async (req, reply) => {
      const route = routeOf(req);
      const { method } = geminiTarget(req);
      if (!GEMINI_METHODS[method])
        return relay.refuse(
          req,
          reply,
          new AppError('not_found', `The method "${method.slice(0, 64)}" is not served here.`),
        );
      if (route.count) return countTokens(req, reply, route);
      return relay.handle(req, reply, route);
    },
  );

  app.setNotFoundHandler(relayNotFound);
}

/** 404 for a path under the relay's prefixes, in the error shape of the protocol it names. */
export function relayNotFound(req: FastifyRequest, reply: FastifyReply): void {
  const route = routeOf(req);
  const path = req.url.split('?')[0]!;
  void reply
    .code(404)
    .send(
      codec(route.protocol).errorBody(
        404,
        'not_found',
        `no route for ${req.method} ${path.slice(0, 200)}${baseUrlHint(path)}`,
        req.id,
      ),
    );
}
