// The relay API (contract §4), under /v1. The key is verified in onRequest, before the body
// is read, so the contract's check order holds even for oversized or malformed bodies.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import { AppError, errorBody } from '../http/errors.js';
import { toKeyJson } from '../keys/service.js';
import type { VerifiedKey } from '../keys/verify.js';
import { nanoToUsd } from '../billing/money.js';
import { createRelay } from './pipeline.js';
import type { Endpoint } from './protocols/openai.js';

export async function registerRelay(app: FastifyInstance, s: Services): Promise<void> {
  const relay = createRelay(s);
  app.addHook('onClose', async () => relay.close());
  app.decorateRequest('relay', null);

  // Bodies arrive as raw bytes; the pipeline parses them after the key checks.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: s.config.maxBodyBytes }, (_req, body, done) =>
    done(null, body),
  );

  app.addHook('onRequest', async (req, reply) => {
    try {
      await relay.authenticate(req);
    } catch (err) {
      if (err instanceof AppError) return relay.refuse(req, reply, err);
      throw err;
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    let e: AppError;
    if (err instanceof AppError) e = err;
    else if (err.statusCode === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      e = new AppError('request_too_large', `request body is larger than ${s.config.maxBodyBytes} bytes`);
    else if (err.statusCode && err.statusCode < 500) e = new AppError('invalid_request', 'invalid request');
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

  const post = (url: string, endpoint: Endpoint) =>
    app.post(url, { bodyLimit: s.config.maxBodyBytes }, (req: FastifyRequest, reply: FastifyReply) =>
      relay.handle(req, reply, endpoint),
    );
  post('/chat/completions', 'chat');
  post('/completions', 'completions');
  post('/embeddings', 'embeddings');

  // Models this key can actually call: in its list, served to its group, and priced (an
  // unpriced model is refused, so it is not offered).
  const usableModels = (key: VerifiedKey) =>
    s.channels
      .modelsFor(key.group)
      .filter((m) => (!key.models || key.models.allows(m)) && s.catalog.price(m) !== null);
  const modelJson = (id: string, created: number) => ({ id, object: 'model', created, owned_by: 'moleapi' });

  app.get('/models', async (req) => {
    const key = req.relay!.key!;
    const created = Math.floor(Date.now() / 1000);
    const data = usableModels(key).map((id) => modelJson(id, created));
    await relay.logFree(req);
    return { object: 'list', data };
  });

  // GET /v1/models/{model} (the SDK's models.retrieve); model names may contain "/".
  app.get('/models/*', async (req, reply) => {
    const key = req.relay!.key!;
    const id = decodeURIComponent((req.params as { '*': string })['*']);
    req.relay!.model = id.slice(0, 256);
    if (!usableModels(key).includes(id)) {
      return relay.refuse(
        req,
        reply,
        new AppError(
          'model_not_found',
          `The model "${id.slice(0, 256)}" does not exist or is not available to this key.`,
          { param: 'model' },
        ),
      );
    }
    await relay.logFree(req);
    return modelJson(id, Math.floor(Date.now() / 1000));
  });

  // The presenting key's own object: status, models, limits, spend. Never the secret.
  app.get('/key', async (req) => {
    const key = req.relay!.key!;
    await relay.logFree(req);
    const row = await s.keys.requireKey(key.id);
    const json = toKeyJson({ ...row, used_nano: s.ledger.usedNano(key.id, Number(row.used_nano)) });
    const balance = s.ledger.balanceNano(key.userId, await s.accounts.balanceNano(key.userId));
    return { object: 'api_key', ...json, account_balance: nanoToUsd(balance) };
  });

  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .send(errorBody('not_found', `no route for ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}`));
  });
}
