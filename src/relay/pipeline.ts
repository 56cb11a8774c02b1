// A relay request's whole journey, top to bottom:
//   authenticate key → check policy → limits → reserve cost → choose channel →
//   forward / convert → count usage → settle → log.
// Every step is one call into the module that owns it. On the hot path nothing waits on
// the database: keys, prices, channels and the ledger are in memory; the log row, the
// spend and the key's last use are written later, in one batch.
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import type { Channel, ChannelType } from '../channels/service.js';
import type { VerifiedKey } from '../keys/verify.js';
import { presentedKey } from '../keys/credentials.js';
import { AppError, errorBody, type ErrorCode } from '../http/errors.js';
import { costNano, type Price } from '../billing/money.js';
import type { Reservation } from '../billing/ledger.js';
import {
  generatedText,
  parseRelayBody,
  readUsage,
  toRelayRequest,
  upstreamBody,
  type Endpoint,
  type RelayRequest,
  type Usage,
} from './protocols/openai.js';
import { createOpenAIAdapter } from './providers/openai.js';
import { mockAdapter } from './providers/mock.js';
import { UpstreamFailure, type ProviderAdapter, type UpstreamResponse } from './providers/types.js';
import { countText } from './tokens.js';
import { SseParser } from './sse.js';

/** What the relay knows about a request once its key is verified (for the log row). */
export interface RelayState {
  key: VerifiedKey | null;
  startedAt: number;
  endpoint: string;
  model: string | null;
  stream: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    relay: RelayState | null;
  }
}

interface Outcome {
  status: number;
  errorCode: string | null;
  usage: Usage;
  cost: number;
  estimated: boolean;
  channel: Channel | null;
  upstreamModel: string | null;
  ttftMs: number | null;
}

const ZERO: Usage = { promptTokens: 0, cachedTokens: 0, completionTokens: 0 };
const MAX_UPSTREAM_BODY = 64 * 1024 * 1024;
/** Client headers that may reach the provider; everything else (auth, cookies, hop-by-hop) stays here. */
const FORWARDED_HEADERS = ['openai-beta'];
const RETRYABLE = (status: number) =>
  status === 401 || status === 403 || status === 408 || status === 409 || status === 429 || status >= 500;

class StreamBroken extends Error {}

export function createRelay(s: Services) {
  const openai = createOpenAIAdapter({
    connectMs: s.config.upstreamConnectTimeoutMs,
    firstByteMs: s.config.upstreamFirstByteTimeoutMs,
    idleMs: s.config.upstreamIdleTimeoutMs,
    maxConnections: s.config.upstreamMaxConnections,
  });
  const adapters: Record<ChannelType, ProviderAdapter> = { openai, mock: mockAdapter };

  // ── 1. authenticate the key (runs before the body is read) ────────────────────────────
  async function authenticate(req: FastifyRequest): Promise<VerifiedKey> {
    const state: RelayState = {
      key: null,
      startedAt: performance.now(),
      endpoint: req.url.split('?')[0]!,
      model: null,
      stream: false,
    };
    req.relay = state;
    const v = await s.verifier.verify(presentedKey(req.headers, req.url), req.clientIp);
    if (v.key) state.key = v.key;
    if (!v.ok) throw new AppError(v.code as ErrorCode, v.message);
    s.verifier.touch(v.key.id, req.clientIp);
    return v.key;
  }

  // ── 2. check policy: the key's model list, then the group's models and prices ─────────
  function checkPolicy(key: VerifiedKey, model: string): { price: Price; multiplierPpm: number } {
    if (key.models && !key.models.allows(model))
      throw new AppError('model_not_allowed', `This API key may not use the model "${model}".`, {
        param: 'model',
      });
    if (!s.channels.serves(key.group, model))
      throw new AppError(
        'model_not_found',
        `The model "${model}" does not exist or is not offered to this key's group.`,
        { param: 'model' },
      );
    const price = s.catalog.price(model);
    if (!price)
      throw new AppError(
        'model_not_priced',
        `The model "${model}" has no price set yet; ask an admin to price it.`,
        { param: 'model' },
      );
    return { price, multiplierPpm: s.catalog.multiplierPpm(key.group) };
  }

  // ── 3. limits ──────────────────────────────────────────────────────────────────────────
  async function applyLimits(key: VerifiedKey): Promise<void> {
    const d = await s.rateLimiter.check(key.id, key.rpm);
    if (!d.ok)
      throw new AppError(
        'rate_limit_exceeded',
        `Rate limit of ${key.rpm} requests per minute reached for this API key.`,
        { headers: { 'retry-after': String(d.retryAfterSeconds) } },
      );
  }

  // ── 4. reserve the worst-case cost against key quota and account balance ─────────────
  async function reserve(key: VerifiedKey, r: RelayRequest, price: Price, ppm: number): Promise<Reservation> {
    const worst = costNano(
      { promptTokens: r.promptTokens, cachedTokens: 0, completionTokens: r.maxOutputTokens },
      price,
      ppm,
    );
    const res = await s.ledger.reserve(key.id, key.userId, key.quotaNano, worst);
    if (!res.ok) {
      const what = res.reason === 'key_quota' ? "this API key's quota" : 'the account balance';
      throw new AppError(
        'insufficient_quota',
        `The request could cost up to ${worst / 1e9} USD, more than ${what} has left.`,
        { headers: { 'x-should-retry': 'false' } },
      );
    }
    return res.reservation;
  }

  // ── 8. settle: charge the real cost, release the rest of the hold ─────────────────────
  // The upstream has answered by now: a ledger failure (the shared Redis ledger unreachable)
  // must not be mistaken for a channel failure, which would retry the request on another
  // channel (a second upstream call) or write a second answer on a stream already sent.
  async function settle(req: FastifyRequest, reservation: Reservation, cost: number): Promise<number> {
    try {
      return await s.ledger.settle(reservation, cost);
    } catch (err) {
      req.log.error(
        { err: err instanceof Error ? err.message : String(err), cost },
        'relay: settling failed; the answer is not billed',
      );
      return 0;
    }
  }

  // ── 9. log: one row per request that presented a known key ───────────────────────────
  /** Waits only when the bounded log queue is full (the database is behind): backpressure, not loss. */
  function log(req: FastifyRequest, o: Outcome): Promise<void> {
    const st = req.relay;
    if (!st?.key) return Promise.resolve();
    return s.usageWriter.enqueue({
      request_id: req.id,
      created_at: Date.now(),
      user_id: st.key.userId,
      key_id: st.key.id,
      key_name: st.key.name,
      model: st.model,
      upstream_model: o.upstreamModel,
      channel_id: o.channel?.id ?? null,
      endpoint: st.endpoint,
      stream: st.stream ? 1 : 0,
      status: o.status,
      error_code: o.errorCode,
      prompt_tokens: o.usage.promptTokens,
      cached_tokens: o.usage.cachedTokens,
      completion_tokens: o.usage.completionTokens,
      cost_nano: o.cost,
      latency_ms: Math.round(performance.now() - st.startedAt),
      ttft_ms: o.ttftMs,
      ip: req.clientIp,
      estimated: o.estimated ? 1 : 0,
      protocol: 'openai',
      cache_write_tokens: 0,
      reasoning_tokens: 0,
      attempts: null,
    });
  }

  /** Answers a refusal or failure in OpenAI's error shape, and logs it (cost 0). */
  async function refuse(
    req: FastifyRequest,
    reply: FastifyReply,
    err: AppError,
    statusOverride?: number,
  ): Promise<void> {
    const status = statusOverride ?? err.status;
    await log(req, {
      status,
      errorCode: err.code,
      usage: ZERO,
      cost: 0,
      estimated: false,
      channel: null,
      upstreamModel: null,
      ttftMs: null,
    });
    void reply
      .code(status)
      .headers(err.headers)
      .send(errorBody(err.code, err.message, err.param));
  }

  /** A relay answer that costs nothing (models list, key info): logged like any other. */
  const logFree = (req: FastifyRequest) =>
    log(req, {
      status: 200,
      errorCode: null,
      usage: ZERO,
      cost: 0,
      estimated: false,
      channel: null,
      upstreamModel: null,
      ttftMs: null,
    });

  // ── the whole journey ─────────────────────────────────────────────────────────────────
  async function handle(req: FastifyRequest, reply: FastifyReply, endpoint: Endpoint): Promise<void> {
    const key = req.relay!.key!;
    const r = toRelayRequest(
      endpoint,
      parseRelayBody(req.body as Buffer | undefined),
      s.config.defaultMaxOutputTokens,
    );
    req.relay!.model = r.model;
    req.relay!.stream = r.stream;
    const { price, multiplierPpm } = checkPolicy(key, r.model);
    await applyLimits(key);
    const reservation = await reserve(key, r, price, multiplierPpm);
    const bill = (u: Usage) => costNano(u, price, multiplierPpm);

    // The client may leave at any point: abort whichever upstream attempt is running.
    let clientGone = false;
    let attempt: AbortController | null = null;
    reply.raw.on('close', () => {
      if (reply.raw.writableFinished) return;
      clientGone = true;
      attempt?.abort();
    });
    // It may have left while the key was checked and the cost reserved, before we listened.
    if (reply.raw.destroyed || req.raw.socket?.destroyed) clientGone = true;

    let lastFailure: { status: number; timeout: boolean; message: string } = {
      status: 502,
      timeout: false,
      message: 'no channel could serve the request',
    };
    const headers: Record<string, string> = {};
    for (const h of FORWARDED_HEADERS) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }

    // ── 5. choose channel (in order, bounded attempts) ──────────────────────────────────
    for (const channel of s.channels.candidates(key.group, r.model).slice(0, s.config.maxUpstreamAttempts)) {
      if (clientGone) break;
      const upstreamModel = s.channels.upstreamModel(channel, r.model);
      attempt = new AbortController();
      try {
        // ── 6. forward / convert ──────────────────────────────────────────────────────
        const res = await adapters[channel.type].send({
          channel,
          endpoint,
          body: upstreamBody(r, upstreamModel),
          stream: r.stream,
          signal: attempt.signal,
          headers,
        });
        if (res.status >= 400) {
          const text = scrubCredential(
            await readAll(res.body, 1024 * 1024).catch(() => Buffer.alloc(0)),
            channel.apiKey,
          );
          if (RETRYABLE(res.status)) {
            s.channels.reportFailure(
              channel,
              `upstream answered HTTP ${res.status}`,
              res.status === 401 || res.status === 403,
            );
            lastFailure = {
              status: res.status,
              timeout: false,
              message: `upstream answered HTTP ${res.status}`,
            };
            continue;
          }
          // The upstream judged the request itself bad (400, 404, 422…): pass its answer on.
          s.channels.reportSuccess(channel);
          s.ledger.release(reservation);
          await log(req, {
            status: res.status,
            errorCode: upstreamErrorCode(text),
            usage: ZERO,
            cost: 0,
            estimated: false,
            channel,
            upstreamModel,
            ttftMs: null,
          });
          void reply.code(res.status).header('content-type', 'application/json').send(text);
          return;
        }
        const done = r.stream
          ? await relayStream(req, reply, res, r, channel, upstreamModel, reservation, bill)
          : await relayPlain(req, reply, res, r, channel, upstreamModel, reservation, bill);
        if (done) {
          s.channels.reportSuccess(channel);
          return;
        }
        s.channels.reportFailure(channel, 'upstream sent a broken answer', false);
        lastFailure = { status: 502, timeout: false, message: 'upstream sent a broken answer' };
      } catch (err) {
        if (clientGone) break;
        if (reply.raw.headersSent) {
          // The answer had begun: no other channel can take over. Close it rather than write twice.
          req.log.error(
            { err: err instanceof Error ? err.message : String(err) },
            'relay: failed after the answer began',
          );
          s.ledger.release(reservation);
          reply.raw.destroy();
          return;
        }
        const f =
          err instanceof UpstreamFailure
            ? err
            : new UpstreamFailure(err instanceof Error ? err.message : 'upstream failed', false);
        s.channels.reportFailure(channel, f.message, false);
        lastFailure = { status: f.timeout ? 504 : 502, timeout: f.timeout, message: f.message };
      }
    }

    // ── every eligible upstream failed (or the client left first): refund in full ──────
    s.ledger.release(reservation);
    if (clientGone) {
      await log(req, {
        status: 499,
        errorCode: 'client_closed',
        usage: ZERO,
        cost: 0,
        estimated: false,
        channel: null,
        upstreamModel: null,
        ttftMs: null,
      });
      return;
    }
    await refuse(
      req,
      reply,
      new AppError('upstream_error', `Every upstream for "${r.model}" failed: ${lastFailure.message}.`),
      lastFailure.timeout ? 504 : 502,
    );
  }

  // ── 7/8. count usage and settle: a plain (non-stream) answer ──────────────────────────
  async function relayPlain(
    req: FastifyRequest,
    reply: FastifyReply,
    res: UpstreamResponse,
    r: RelayRequest,
    channel: Channel,
    upstreamModel: string,
    reservation: Reservation,
    bill: (u: Usage) => number,
  ): Promise<boolean> {
    const buf = await readAll(res.body, MAX_UPSTREAM_BODY);
    let json: unknown;
    try {
      json = JSON.parse(buf.toString('utf8'));
    } catch {
      return false;
    }
    let usage = readUsage(json);
    const estimated = usage === null;
    if (!usage)
      usage = {
        promptTokens: r.promptTokens,
        cachedTokens: 0,
        completionTokens: r.endpoint === 'embeddings' ? 0 : countText(generatedText(json)),
      };
    const cost = await settle(req, reservation, bill(usage));
    await log(req, {
      status: 200,
      errorCode: null,
      usage,
      cost,
      estimated,
      channel,
      upstreamModel,
      ttftMs: null,
    });
    void reply.code(200).header('content-type', 'application/json').send(buf);
    return true;
  }

  // ── 7/8. count usage and settle: a stream, passed through event by event ──────────────
  async function relayStream(
    req: FastifyRequest,
    reply: FastifyReply,
    res: UpstreamResponse,
    r: RelayRequest,
    channel: Channel,
    upstreamModel: string,
    reservation: Reservation,
    bill: (u: Usage) => number,
  ): Promise<boolean> {
    const out = reply.raw;
    const produced = new ProducedText();
    let usage = null as Usage | null; // set inside take(); the cast stops TS narrowing it to null
    let sawDone = false as boolean;
    let started = false;
    let ttftMs: number | null = null;
    let failure: string | null = null;

    const begin = () => {
      if (started) return;
      started = true;
      ttftMs = Math.round(performance.now() - req.relay!.startedAt);
      reply.hijack();
      out.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-request-id': req.id,
      });
    };
    const write = async (text: string) => {
      begin();
      if (!out.write(text)) await drainedOrClosed(out);
    };
    // Set once the client has its [DONE]: sent with the last events, in the same write.
    let finished = false;

    /** Checks one event and adds what the client should see to `batch`; throws on a broken stream. */
    let batch = '';
    const take = (payload: string) => {
      if (payload === '[DONE]') {
        sawDone = true;
        return;
      }
      if (payload.charCodeAt(0) !== 123 /* { */ || payload.charCodeAt(payload.length - 1) !== 125 /* } */)
        throw new StreamBroken('upstream sent an unreadable stream event');
      if (payload.includes('"usage":{') || payload.includes('"error"')) {
        let obj: { choices?: unknown[]; error?: unknown };
        try {
          obj = JSON.parse(payload);
        } catch {
          throw new StreamBroken('upstream sent an unreadable stream event');
        }
        if (obj.error) throw new StreamBroken('upstream reported an error mid-stream');
        const u = readUsage(obj);
        if (u) {
          usage = u;
          // The usage-only chunk reaches the client only if it asked for it.
          if (Array.isArray(obj.choices) && obj.choices.length === 0 && !r.clientWantsUsage) return;
        }
      }
      // Every relayed event counts towards a local estimate, including content chunks that
      // also carry a running `usage` (or whose text happens to contain "error").
      produced.add(payload);
      batch += `data: ${payload}\n\n`;
    };

    // Events are checked one by one but written one upstream chunk at a time: as many writes
    // (and syscalls) as a plain pass-through proxy makes.
    const sse = new SseParser();
    try {
      try {
        for await (const chunk of res.body) {
          if (finished) continue; // nothing follows [DONE]; drain so the connection is reused
          for (const payload of sse.feed(chunk as Buffer)) take(payload);
          if (sawDone) {
            begin();
            out.end(batch + 'data: [DONE]\n\n');
            batch = '';
            finished = true;
            continue;
          }
          if (batch) {
            const text = batch;
            batch = '';
            await write(text);
            if (out.destroyed) throw new StreamBroken('client went away');
          }
        }
        if (!finished) for (const payload of sse.end()) take(payload);
        if (!sawDone) throw new StreamBroken('upstream stream ended early');
      } finally {
        // What was checked before a failure still reaches a client that is already reading.
        if (batch && started && !out.destroyed) out.write(batch);
        batch = '';
      }
    } catch (err) {
      res.body.destroy();
      // The client already has the whole answer: what the upstream does after [DONE] is no failure.
      if (!finished)
        failure =
          err instanceof StreamBroken
            ? err.message
            : err instanceof UpstreamFailure
              ? err.message
              : 'upstream stream failed';
      // Nothing reached the client yet: the caller may try the next channel.
      if (!started && !out.destroyed) return false;
    }

    const estimated = usage === null || failure !== null;
    const finalUsage: Usage =
      failure === null && usage !== null
        ? usage
        : {
            promptTokens: usage?.promptTokens ?? r.promptTokens,
            cachedTokens: usage?.cachedTokens ?? 0,
            completionTokens: countText(produced.text()),
          };
    const cost = await settle(req, reservation, bill(finalUsage));
    const clientLeft = out.destroyed && failure !== null;
    await log(req, {
      status: clientLeft ? 499 : 200,
      errorCode: failure === null ? null : clientLeft ? 'client_closed' : 'upstream_error',
      usage: finalUsage,
      cost,
      estimated,
      channel,
      upstreamModel,
      ttftMs,
    });
    if (!out.destroyed && !finished) {
      if (failure !== null)
        await write(
          `data: ${JSON.stringify(errorBody('upstream_error', `The upstream stream failed: ${failure}.`))}\n\n`,
        );
      else await write('data: [DONE]\n\n');
      out.end();
    }
    return true;
  }

  return {
    authenticate,
    handle,
    refuse,
    logFree,
    async close() {
      await openai.close();
    },
  };
}

export type Relay = ReturnType<typeof createRelay>;

/**
 * Waits until `out` can take more data or has closed. Listeners are removed either way (a
 * long stream waits many times), and a response that is already closed never emits 'close'
 * again, so it is not waited on at all.
 */
function drainedOrClosed(out: ServerResponse): Promise<void> {
  if (out.destroyed || out.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
}

/**
 * What a stream generated, kept for a local count should the upstream's usage never come.
 * Raw events are cheap to keep but ~40× larger than their text, so every 256 of them are
 * reduced to text: memory per stream stays small however long the answer runs.
 */
class ProducedText {
  private events: string[] = [];
  private done = '';

  add(payload: string): void {
    this.events.push(payload);
    if (this.events.length >= 256) this.compact();
  }

  text(): string {
    this.compact();
    return this.done;
  }

  private compact(): void {
    for (const p of this.events) {
      try {
        this.done += generatedText(JSON.parse(p));
      } catch {
        /* a broken event produced nothing countable */
      }
    }
    this.events = [];
  }
}

/** An upstream error we pass on may quote the credential we sent it; never let that through. */
function scrubCredential(body: Buffer, credential: string): Buffer {
  if (credential.length < 8 || body.indexOf(credential) < 0) return body;
  return Buffer.from(body.toString('utf8').split(credential).join('[redacted]'));
}

function upstreamErrorCode(body: Buffer): string {
  try {
    const code = (JSON.parse(body.toString('utf8')) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' && code.length < 64 ? code : 'upstream_error';
  } catch {
    return 'upstream_error';
  }
}

async function readAll(body: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of body) {
    size += (c as Buffer).length;
    if (size > max) {
      body.destroy();
      throw new UpstreamFailure('upstream answer too large', false);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}
