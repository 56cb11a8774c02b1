// A relay request's whole journey, top to bottom, the same for every protocol:
//   authenticate key → check policy → limits → reserve cost (quota, balance, budgets) → choose channel →
//   forward / convert → count usage → settle → log.
// Every step is one call into the module that owns it. What differs between protocols
// lives in their codecs (protocols/*.ts) and channel transports (providers/*.ts): when
// the client and the channel speak the same protocol the answer's bytes pass through as
// sent; otherwise the codecs translate through the canonical form (canonical.ts).
// On the hot path nothing waits on the database: keys, prices, channels and the ledger are
// in memory; the log row, the spend and the key's last use are written later, in one batch.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import type { Channel, ChannelType } from '../channels/service.js';
import type { VerifiedKey } from '../keys/verify.js';
import { presentedKey } from '../keys/credentials.js';
import { TOKEN_PREFIX } from '../tokens/format.js';
import { AppError, type ErrorCode } from '../http/errors.js';
import { costNano, type Price, worstCostNano } from '../billing/money.js';
import { type Hold, limitsError } from '../admission/admission.js';
import type { LimitSnapshot, LimitSubject, Ticket } from '../limits/limiter.js';
import { rateLimitHeaders } from '../limits/headers.js';
import type { CanonicalUsage, Protocol } from './canonical.js';
import { codec } from './protocols/index.js';
import { parseRelayBody } from './protocols/openai.js';
import {
  exactPromptTokens,
  type IngressRequest,
  type ProtocolCodec,
  type RouteInfo,
} from './protocols/types.js';
import { createAnthropicTransport } from './providers/anthropic.js';
import { createGeminiTransport } from './providers/gemini.js';
import { createOpenAITransport } from './providers/openai.js';
import { mockTransport } from './providers/mock.js';
import { SHUTTING_DOWN } from './providers/failure.js';
import { AttemptSignal, type ChannelTransport, UpstreamFailure } from './providers/transport.js';
import { readAll, scrubCredential, sentence, upstreamErrorCode } from './upstream-body.js';
import { relayPlain } from './answer.js';
import { relayStream } from './stream.js';
import { createStoredContexts } from './stored-context.js';
import { fitToolNames } from './tool-names.js';
import { countText, WARM_FROM } from './tokens.js';
import { allowOrigin, originOf } from './cors.js';

/** What the relay knows about a request once its key is verified (for the log row). */
export interface RelayState {
  key: VerifiedKey | null;
  startedAt: number;
  endpoint: string;
  protocol: Protocol;
  model: string | null;
  stream: boolean;
  /** The answer carries the rate-limit headers already (set when the limits were checked). */
  limitsReported?: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    relay: RelayState | null;
  }
}

/** One upstream try, as the log row shows it. */
export interface AttemptRecord {
  channel_id: number;
  channel_name: string;
  status: number | null;
  error: string | null;
  latency_ms: number;
}

/** How a request ended, for its log row. */
export interface Outcome {
  status: number;
  errorCode: string | null;
  usage: CanonicalUsage;
  cost: number;
  estimated: boolean;
  channel: Channel | null;
  upstreamModel: string | null;
  ttftMs: number | null;
}

/** What a request holds while it runs: its worst case against the ledger, budgets and cap. */
export type { Hold } from '../admission/admission.js';

/** One relay request on its way through its attempts: what every step needs. */
export interface RelayCall {
  req: FastifyRequest;
  reply: FastifyReply;
  r: IngressRequest;
  ingress: ProtocolCodec;
  hold: Hold;
  /** The request's limits: its concurrency slot is given back before its last bytes go out. */
  ticket: Ticket;
  attempts: AttemptRecord[];
  /** The client left: stop trying, log 499. */
  clientGone: boolean;
  /**
   * Counts the usage (reported, capped; or estimated from `produced`), settles it and logs the
   * row; an answer's last bytes go out only after this. Returns the usage billed.
   */
  finish(o: {
    channel: Channel;
    upstreamModel: string;
    usage: CanonicalUsage | null;
    /** The generated text, read only when the usage must be counted here. */
    produced: () => string;
    /** The stream was cut: `usage` (if any) is only what was reported before it. */
    partial?: boolean;
    /** Searches the answer showed as run (its usage may leave them out, or never come). */
    webSearches?: number;
    /** The processing tier the answer said it was served at, usage or not. */
    serviceTier?: string | undefined;
    status?: number;
    errorCode?: string | null;
    ttftMs?: number | null;
    /** A Responses answer passed through: its id, for a follow-up that continues it. */
    responseId?: string | null;
  }): Promise<CanonicalUsage>;
}

/** The result of one attempt: the client was answered, or the next channel may try. */
export type AttemptResult =
  /** `broken`: the upstream cut the answer after it began (the client got an error frame). */
  | { answered: true; broken?: string }
  | { answered: false; status: number; timeout: boolean; message: string }
  /** The request cannot be put in this channel's protocol (a client mistake on this channel). */
  | { answered: false; untranslatable: AppError }
  /** The stored response it continues is not at this channel's upstream: another may hold it. */
  | { answered: false; elsewhere: true };

/** Where each protocol's clients put the key, for the answer to a request without one. */
const MISSING_KEY: Partial<Record<Protocol, string>> = {
  anthropic: 'No API key provided. Send it as "x-api-key: sk-..." (or "Authorization: Bearer sk-...").',
  gemini: 'No API key provided. Send it as "x-goog-api-key: sk-..." (or "?key=sk-..." in the URL).',
};

/** What an operation is called in a refusal. */
const OPERATION_NAMES: Record<IngressRequest['operation'], string> = {
  generate: 'generation',
  completions: 'legacy completions',
  embeddings: 'embeddings',
};

const ZERO: CanonicalUsage = { input: 0, cacheRead: 0, cacheWrite: 0, output: 0, reasoning: 0 };
const RETRYABLE = (status: number) =>
  status === 401 || status === 403 || status === 408 || status === 409 || status === 429 || status >= 500;

/** Refusals that no retry will pass: the key, its IP or its model rules, or money. */
const NO_RETRY = new Set<string>([
  'insufficient_quota',
  'budget_exceeded',
  'key_expired',
  'key_disabled',
  'ip_not_allowed',
  'browser_origin_not_allowed',
  'model_not_allowed',
]);

/** The error code a translated upstream refusal carries, by status. */
const REFUSAL_CODE = (status: number): ErrorCode =>
  status === 413 ? 'request_too_large' : status === 404 ? 'model_not_found' : 'invalid_request';

/**
 * The master key or a management token sent to the relay: a refusal that says which
 * credential goes where (only on the refusal path, so it costs an accepted key nothing).
 */
function notAnApiKey(presented: string | undefined, master: Services['masterKey']): string | null {
  if (!presented) return null;
  if (presented.startsWith(TOKEN_PREFIX))
    return 'This is a management token (mg-…), which works on the management API (/api) only. Use an API key (sk-…) here.';
  if (master.matches(presented))
    return 'This is the master key, which works on the management API (/api) only. Use an API key (sk-…) here.';
  return null;
}

/**
 * A request in another protocol's body. Its output cap is one answer's (the request's own, else
 * the implied one): admission held it times the answers asked for (`n`, `candidateCount`),
 * which a translated request does not ask the upstream for.
 */
function translated(r: IngressRequest, ingress: ProtocolCodec, egress: ProtocolCodec, upstreamModel: string) {
  const c = ingress.toCanonical(r);
  // Tool names no upstream takes (too long, odd characters) go renamed, and come back named as sent.
  const fitted = fitToolNames(c);
  const cap = c.maxOutputTokens ?? r.impliedOutputCap ?? r.maxOutputTokens;
  return {
    body: egress.fromCanonical(fitted?.request ?? c, upstreamModel, cap),
    toolNames: fitted?.names ?? null,
  };
}

export function createRelay(s: Services) {
  const timeouts = {
    connectMs: s.config.upstreamConnectTimeoutMs,
    firstByteMs: s.config.upstreamFirstByteTimeoutMs,
    idleMs: s.config.upstreamIdleTimeoutMs,
    maxConnections: s.config.upstreamMaxConnections,
  };
  const pools = {
    openai: createOpenAITransport(timeouts),
    anthropic: createAnthropicTransport(timeouts),
    gemini: createGeminiTransport(timeouts),
  };
  const transports: Partial<Record<ChannelType, ChannelTransport>> = { ...pools, mock: mockTransport };
  /** The protocols a channel serves an operation in, preferred first (only those with a codec). */
  const protocolsOf = (c: Channel, r: IngressRequest): readonly Protocol[] =>
    transports[c.type]?.protocols(c, r.operation) ?? [];

  // ── 1. authenticate the key (runs before the body is read) ────────────────────────────
  async function authenticate(
    req: FastifyRequest,
    reply: FastifyReply,
    route: RouteInfo,
    /** The kill switch: a key may switch itself off from anywhere (IP rules and origins aside). */
    opts: { anyPlace?: boolean } = {},
  ): Promise<VerifiedKey> {
    const state: RelayState = {
      key: null,
      startedAt: performance.now(),
      endpoint: req.url.split('?')[0]!,
      protocol: route.protocol,
      model: route.pathModel ?? null,
      stream: false,
    };
    req.relay = state;
    const presented = presentedKey(req.headers, req.url);
    const v = await s.verifier.verify(presented, req.clientIp);
    if (v.key) state.key = v.key;
    const origin = originOf(req);
    // A page the key serves may read every answer, refusals too (an expired key says so).
    if (origin !== undefined && v.key?.origins.allows(origin)) allowOrigin(reply, origin);
    let key: VerifiedKey;
    if (v.ok) key = v.key;
    else if (opts.anyPlace && v.code === 'ip_not_allowed' && v.key) key = v.key;
    else
      throw new AppError(
        v.code as ErrorCode,
        (v.code === 'invalid_api_key' && notAnApiKey(presented, s.masterKey)) ||
          (v.code === 'missing_api_key' && MISSING_KEY[route.protocol]) ||
          v.message,
      );
    if (!opts.anyPlace) {
      checkOrigin(key, origin);
      await guardIps(key, req.clientIp);
    }
    s.verifier.touch(key.id, req.clientIp);
    return key;
  }

  /** A request from a web page (it carries `Origin`) must come from an origin the key lists. */
  function checkOrigin(key: VerifiedKey, origin: string | undefined): void {
    if (origin !== undefined && !key.origins.allows(origin))
      throw new AppError(
        'browser_origin_not_allowed',
        `Requests from the browser origin "${origin.slice(0, 200)}" are not allowed for this API key; list it in the key's allowed_origins.`,
      );
  }

  /** The anomaly guard's IP count: the request that brings a new IP past the limit of a
   * `disable` guard finds the key disabled (security/guard.ts). */
  async function guardIps(key: VerifiedKey, ip: string): Promise<void> {
    const g = await s.guard.checkIp(key, ip);
    if (!g.ok) throw new AppError('key_disabled', `This API key is disabled: ${g.reason}.`);
  }

  // ── 2. check policy: the key's model list, then the group's models and prices ─────────
  function checkPolicy(key: VerifiedKey, model: string): { price: Price; multiplierPpm: number } {
    if (key.models && !key.models.allows(model))
      throw new AppError('model_not_allowed', `This API key may not use the model "${model}".`, {
        param: 'model',
      });
    if (!s.channels.serves(key.group, model) || !groupAllows(key.group, model))
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
        {
          param: 'model',
        },
      );
    return { price, multiplierPpm: s.catalog.multiplierPpm(key.group) };
  }

  /** Whether the group's policy lets it use this model at all (no policy: every model). */
  function groupAllows(group: string, model: string): boolean {
    return s.catalog.group(group)?.models?.allows(model) ?? true;
  }

  // ── 3. limits: rpm, tpm, max_concurrency of the key and its account (or their groups') ──
  /** Whose limits a key's requests meet. */
  const subjectOf = (key: VerifiedKey): LimitSubject => ({
    keyId: key.id,
    userId: key.userId,
    key: key.limits,
    account: key.accountLimits,
    keyGroup: s.catalog.group(key.group),
    accountGroup: s.catalog.group(key.userGroup),
  });

  /** Puts the rate-limit headers (the tightest limits) on the answer, whatever it turns out to be. */
  function reportLimits(req: FastifyRequest, reply: FastifyReply, snap: LimitSnapshot): void {
    if (req.relay) req.relay.limitsReported = true;
    void reply.headers(rateLimitHeaders(snap, req.relay?.protocol === 'anthropic', s.limiter.now()));
  }

  /**
   * Admits the request under every limit, or refuses it (429). The ticket it returns must be
   * handed back (`done`) however the request ends: it holds the concurrency slot.
   */
  async function applyLimits(
    req: FastifyRequest,
    reply: FastifyReply,
    key: VerifiedKey,
    tokens: number | (() => number),
  ): Promise<Ticket> {
    const a = await s.limiter.admit(subjectOf(key), tokens);
    reportLimits(req, reply, a.snapshot);
    if (a.ok) return a.ticket;
    throw limitsError(a.refusal);
  }

  /** A limited key's answers that skipped the limits (refusals before them, free answers) report them too. */
  async function reportLimitsOnce(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const st = req.relay;
    if (!st?.key || st.limitsReported || reply.raw.headersSent) return;
    const subject = subjectOf(st.key);
    if (!s.limiter.limited(subject)) return;
    try {
      reportLimits(req, reply, await s.limiter.peek(subject));
    } catch (err) {
      req.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'limits: could not read them');
    }
  }

  // ── 3 + 4. limits, then the worst-case cost held against the budgets, key quota and account
  //    balance: one step of admission/ (one Redis round trip when shared) ──────────────────
  /**
   * Admits the request under every limit and holds its worst case, or refuses it (429, 402).
   * The ticket it returns must be handed back (`done`) however the request ends: it holds
   * the concurrency slot.
   */
  async function admit(
    req: FastifyRequest,
    reply: FastifyReply,
    key: VerifiedKey,
    r: IngressRequest,
    worstFor: (promptTokens: number) => number,
  ): Promise<{ ticket: Ticket; hold: Hold }> {
    const subject = subjectOf(key);
    // A long prompt's exact count is taken in slices, an event-loop turn apart, wherever one is
    // needed (a tpm limit counts every request; money near a limit; an estimate), so tokenizing
    // it never holds every other request. Most long prompts are never tokenized at all.
    if (r.promptTokens >= WARM_FROM && s.limiter.limited(subject)) await countAhead(r);
    const a = await s.admission.admit({
      key,
      subject,
      countAhead: () => countAhead(r),
      tokens: () => exactPromptTokens(r) + r.maxOutputTokens,
      amount: () => worstFor(r.promptTokens),
      // A prompt is held on a cheap upper bound; tokenized only near a limit or when refused.
      bounded: () => r.exactPromptTokens !== undefined,
      exact: () => (r.exactPromptTokens ? worstFor(exactPromptTokens(r)) : null),
    });
    reportLimits(req, reply, a.snapshot);
    if (a.ok) return a;
    await a.ticket?.done();
    throw a.error;
  }

  /**
   * Gives the whole hold and the concurrency slot back (nothing was billed). A refusal or
   * failure is answered only once both are free, so the client's next request, sent on
   * receiving it, is judged without them on whichever instance takes it.
   */
  const giveBack = async (call: { hold: Hold; ticket: Ticket }): Promise<void> => {
    await Promise.all([s.admission.release(call.hold), call.ticket.done()]);
  };

  // ── 7. count usage: the upstream's report, else a local count; never past the admitted cap
  // A cut stream (`partial`) keeps the input its usage reported so far and counts its output here.
  // A side the upstream reported as zero tokens, though there was a prompt or text came back, is
  // counted here too: some compatible servers send zeros rather than leave usage out, and the
  // answer would otherwise be served free.
  /** Counts a long prompt's texts ahead into the cache its exact count reads (tokens.ts `warm`). */
  async function countAhead(r: IngressRequest): Promise<void> {
    if (r.exactPromptTokens && r.warm && r.promptTokens >= WARM_FROM) await r.warm();
  }

  function countUsage(
    r: IngressRequest,
    reported: CanonicalUsage | null,
    produced: () => string,
    seen: {
      partial?: boolean | undefined;
      /** Searches the answer showed as run. */
      webSearches?: number | undefined;
      /** Searches to assume for an answer cut before it named any. */
      searchesIfCut?: number | undefined;
      /** The tier the answer said it was served at, else the one to assume (asked for). */
      serviceTier?: string | undefined;
    } = {},
  ) {
    const partial = seen.partial === true;
    // The searches run, and the tier served, are billed whether or not the tokens are counted
    // here. A cut answer that named no search yet may have run some (Gemini names its queries
    // only at the end): the request's guess for it.
    let searches = Math.max(reported?.webSearches ?? 0, seen.webSearches ?? 0);
    if (partial && searches === 0) searches = seen.searchesIfCut ?? 0;
    const tier = reported?.serviceTier ?? seen.serviceTier;
    /** `u` with the searches and tier (set, not spread: this runs for every answer). */
    const withSeen = (u: CanonicalUsage): CanonicalUsage => {
      if (searches > 0) u.webSearches = searches;
      if (tier !== undefined) u.serviceTier = tier;
      return u;
    };
    // Completion tokens are billed at most at the output cap that was admitted and sent upstream.
    const cap = (output: number) => Math.min(output, r.maxOutputTokens);
    const inputReported = reported !== null && reported.input + reported.cacheRead + reported.cacheWrite > 0;
    const input = inputReported
      ? reported
      : { input: exactPromptTokens(r) + (r.knownContextTokens ?? 0), cacheRead: 0, cacheWrite: 0 };
    // Embeddings produce no text: their answers are not read for it.
    const outputReported =
      reported !== null &&
      !partial &&
      (reported.output > 0 || r.operation === 'embeddings' || countText(produced()) === 0);
    if (reported && outputReported && (inputReported || input.input === 0)) {
      const output = cap(reported.output);
      return {
        usage: withSeen({ ...reported, output, reasoning: Math.min(reported.reasoning, output) }),
        estimated: false,
      };
    }
    const output = outputReported ? cap(reported!.output) : cap(countText(produced()));
    return {
      usage: withSeen({
        input: input.input,
        cacheRead: input.cacheRead,
        cacheWrite: input.cacheWrite,
        ...(inputReported && reported.cacheWrite1h ? { cacheWrite1h: reported.cacheWrite1h } : {}),
        output,
        reasoning: outputReported ? Math.min(reported!.reasoning, output) : 0,
      }),
      estimated: true,
    };
  }

  // ── 8. settle: charge the real cost, release the rest of the hold, and note the spend
  //    against the key's hourly guard (not awaited: it never delays the answer) ──────────
  // The upstream has answered by now. The shared Redis ledger out of reach costs nothing: the
  // admission charges the cost within the hold and writes it to Redis later (exactly-once.ts).
  // Any other ledger failure must not be mistaken for a channel failure, which would retry the request on another
  // channel (a second upstream call) or write a second answer on a stream already sent.
  // The charge stops at what the budgets still cover (as the ledger's stops at the quota and
  // balance), and the budgets count exactly what the ledger charged, dated like the log row.
  async function settle(
    req: FastifyRequest,
    h: Hold,
    ticket: Ticket,
    tokens: number,
    cost: number,
    at: number,
  ) {
    let charge: number;
    try {
      charge = await s.admission.settle(h, ticket, tokens, cost, at);
    } catch (err) {
      req.log.error(
        { err: err instanceof Error ? err.message : String(err), cost },
        'relay: settling failed; the answer is not billed',
      );
      return 0;
    }
    void s.guard.noteSpend(h.key, charge);
    return charge;
  }

  // ── 9. log: one row per request that presented a known key ───────────────────────────
  /** Resolves once the row is queued (durably, where the writer journals); waits when the queue is full. */
  function log(
    req: FastifyRequest,
    o: Outcome,
    attempts: AttemptRecord[] = [],
    at: number = s.now(),
    /** No other admitted request is under way: its journal write need not wait for company. */
    alone = false,
  ): Promise<void> {
    const st = req.relay;
    if (!st?.key) return Promise.resolve();
    const u = o.usage;
    const row = {
      request_id: req.id,
      created_at: at,
      user_id: st.key.userId,
      key_id: st.key.id,
      key_name: st.key.name,
      ephemeral_id: st.key.ephemeral?.id ?? null,
      model: st.model,
      upstream_model: o.upstreamModel,
      channel_id: o.channel?.id ?? null,
      endpoint: st.endpoint,
      protocol: st.protocol,
      stream: st.stream ? 1 : 0,
      status: o.status,
      error_code: o.errorCode,
      prompt_tokens: u.input + u.cacheRead + u.cacheWrite,
      cached_tokens: u.cacheRead,
      cache_write_tokens: u.cacheWrite,
      completion_tokens: u.output,
      reasoning_tokens: u.reasoning,
      cache_write_1h_tokens: Math.min(u.cacheWrite1h ?? 0, u.cacheWrite),
      web_searches: u.webSearches ?? 0,
      service_tier: u.serviceTier ?? null,
      cost_nano: o.cost,
      latency_ms: Math.round(performance.now() - st.startedAt),
      ttft_ms: o.ttftMs,
      ip: req.clientIp,
      estimated: o.estimated ? 1 : 0,
      attempts: attempts.length ? JSON.stringify(attempts) : null,
    };
    s.metrics.observe(row, st.key.group, attempts);
    return s.usageWriter.enqueue(row, alone);
  }

  /** An answer that cost nothing: a refusal, the models list, a token count. */
  const free = (status: number, errorCode: string | null): Outcome => ({
    status,
    errorCode,
    usage: ZERO,
    cost: 0,
    estimated: false,
    channel: null,
    upstreamModel: null,
    ttftMs: null,
  });

  /** Answers a refusal or failure in the client protocol's error shape, and logs it (cost 0). */
  async function refuse(
    req: FastifyRequest,
    reply: FastifyReply,
    err: AppError,
    statusOverride?: number,
    attempts: AttemptRecord[] = [],
  ): Promise<void> {
    const status = statusOverride ?? err.status;
    await log(req, free(status, err.code), attempts);
    await reportLimitsOnce(req, reply);
    // Refused before the relay's own hooks ran (the gateway draining): the route's protocol.
    const protocol = req.relay?.protocol ?? req.routeOptions.config.relay?.protocol ?? 'openai';
    // Refusals that waiting will not cure tell SDKs not to retry (contract §7).
    if (NO_RETRY.has(err.code)) void reply.header('x-should-retry', 'false');
    void reply
      .code(status)
      .headers(err.headers)
      .send(codec(protocol).errorBody(status, err.code, err.message, req.id, err.param));
  }

  /** A relay answer that costs nothing (models list, key info, token counts): logged like any other. */
  /** Logs a key's act that costs nothing (`status`: what the client gets). */
  const logFree = async (req: FastifyRequest, reply: FastifyReply, status = 200) => {
    await log(req, free(status, null));
    await reportLimitsOnce(req, reply);
  };

  // ── the whole journey ─────────────────────────────────────────────────────────────────
  /** Admitted requests under way: an answer's row with no other has none to share its journal write. */
  let underWay = 0;
  /** Context that requests bring by reference (stored responses and the like), held for at admission. */
  const storedContexts = createStoredContexts();
  /** The upstream attempts under way; `cutting` once a drain's grace period ran out. */
  const attempts = new Set<AttemptSignal>();
  let cutting = false;

  async function handle(req: FastifyRequest, reply: FastifyReply, route: RouteInfo): Promise<void> {
    const key = req.relay!.key!;
    const ingress = codec(route.protocol);
    const raw = req.body as Buffer | undefined;
    const body = parseRelayBody(raw);
    // A request refused as invalid is still logged under the model it named.
    if (req.relay!.model === null && typeof body.model === 'string')
      req.relay!.model = body.model.slice(0, 256);
    const r = ingress.parseRequest(body, route, s.config.defaultMaxOutputTokens);
    r.raw = raw;
    req.relay!.model = r.model;
    req.relay!.stream = r.stream;
    const { price, multiplierPpm } = checkPolicy(key, r.model);
    // Priority processing costs the upstream account more than the price says, unless priced.
    if (r.serviceTier === 'priority' && price.priorityPpm === null)
      throw new AppError(
        'invalid_request',
        `service_tier "priority" is not offered for the model "${r.model}" through this gateway (its price has no priority multiplier); send the request without it, or ask an admin to price priority.`,
        { param: 'service_tier' },
      );
    const bill = (u: CanonicalUsage) =>
      costNano(
        {
          promptTokens: u.input + u.cacheRead + u.cacheWrite,
          cachedTokens: u.cacheRead,
          cacheWriteTokens: u.cacheWrite,
          cacheWrite1hTokens: u.cacheWrite1h ?? 0,
          completionTokens: u.output,
          webSearches: u.webSearches ?? 0,
          priority: u.serviceTier === 'priority',
        },
        price,
        multiplierPpm,
      );
    const byReference = storedContexts.byReference(r, key.userId);
    r.knownContextTokens = byReference.known;
    const worst = (input: number) =>
      worstCostNano(
        {
          promptTokens: input + byReference.held,
          completionTokens: r.maxOutputTokens,
          cachesForHour: r.cachesForHour === true,
          webSearches: r.maxWebSearches ?? 0,
          // An upstream project may serve priority unasked: a model priced for it is held so.
          priority: price.priorityPpm !== null,
        },
        price,
        multiplierPpm,
      );
    const { ticket, hold } = await admit(req, reply, key, r, worst);
    underWay++;
    try {
      await admitted(req, reply, key, r, ingress, bill, ticket, hold);
    } finally {
      // Every path ends here: success, refusal, upstream failure or timeout, client gone, stream cut.
      underWay--;
      void ticket.done();
    }
  }

  /** The rest of the journey, once admitted (its ticket is handed back by the caller). */
  async function admitted(
    req: FastifyRequest,
    reply: FastifyReply,
    key: VerifiedKey,
    r: IngressRequest,
    ingress: ProtocolCodec,
    bill: (u: CanonicalUsage) => number,
    ticket: Ticket,
    held: Hold,
  ): Promise<void> {
    const call: RelayCall = {
      req,
      reply,
      r,
      ingress,
      hold: held,
      ticket,
      attempts: [],
      clientGone: false,
      async finish(o) {
        // No usage reported, or a cut stream's: the prompt may be counted here.
        if (o.usage === null || o.partial) await countAhead(r);
        // Searches a chat search model or Gemini grounding runs unseen: only on a channel of the
        // request's own protocol (another protocol's leaves their options out).
        const own = o.channel.type === r.protocol;
        const { usage, estimated } = countUsage(r, o.usage, o.produced, {
          partial: o.partial,
          webSearches: Math.max(o.webSearches ?? 0, own ? (r.searchesPerAnswer ?? 0) : 0),
          searchesIfCut: own ? r.searchesIfCut : 0,
          // An OpenAI upstream asked for a tier serves it, unless it says otherwise.
          serviceTier: o.serviceTier ?? (o.channel.type === 'openai' ? r.serviceTier : undefined),
        });
        const at = s.now();
        // The tokens-per-minute window keeps the real usage, not the admission estimate.
        const tokens = usage.input + usage.cacheRead + usage.cacheWrite + usage.output;
        storedContexts.remember(r, key.userId, o.responseId, tokens);
        const cost = await settle(req, held, ticket, tokens, bill(usage), at);
        await log(
          req,
          {
            status: o.status ?? 200,
            errorCode: o.errorCode ?? null,
            usage,
            cost,
            estimated,
            channel: o.channel,
            upstreamModel: o.upstreamModel,
            ttftMs: o.ttftMs ?? null,
          },
          call.attempts,
          at,
          // Refusals are never `alone`: a flood of them shares writes, however few are admitted.
          underWay === 1,
        );
        return usage;
      },
    };

    // The client may leave at any point: abort whichever upstream attempt is running.
    let attempt: AttemptSignal | null = null;
    reply.raw.on('close', () => {
      if (reply.raw.writableFinished) return;
      call.clientGone = true;
      attempt?.abort();
    });
    // It may have left while the key was checked and the cost reserved, before we listened.
    if (reply.raw.destroyed || req.raw.socket?.destroyed) call.clientGone = true;

    let last: { status: number; timeout: boolean; message: string } = {
      status: 502,
      timeout: false,
      message: 'no channel could serve the request',
    };
    try {
      // ── 5. choose channel (in order, bounded attempts) ────────────────────────────────
      const eligible = s.channels.candidates(key.group, r.model);
      const candidates = eligible.filter((c) => protocolsOf(c, r).length > 0);
      // Served, but by no channel that does this (embeddings from an Anthropic channel, say):
      // the request can never succeed, so it is the client's to change, not a 502 to retry.
      if (candidates.length === 0 && eligible.length > 0)
        throw new AppError(
          'invalid_request',
          `The model "${r.model.slice(0, 256)}" is not served for ${OPERATION_NAMES[r.operation]}.`,
          { param: 'model' },
        );
      // A channel the request cannot be translated for (a field only its own protocol has, such
      // as previous_response_id) is passed over, uncounted: one that takes it as sent may follow.
      let untranslatable: AppError | null = null;
      let tries = 0;
      for (const [i, channel] of candidates.entries()) {
        if (call.clientGone || cutting || tries === s.config.maxUpstreamAttempts) break;
        attempt = new AttemptSignal();
        const startedAt = performance.now();
        attempts.add(attempt);
        let result: AttemptResult;
        try {
          // Whether a later channel could hold a stored response this one has not.
          const storedElsewhere =
            r.protocol === 'responses' &&
            candidates.slice(i + 1).some((c) => protocolsOf(c, r).includes(r.protocol));
          result = await tryChannel(call, channel, attempt, storedElsewhere);
        } finally {
          attempts.delete(attempt);
        }
        if (result.answered) {
          // A stream the upstream cut mid-way was answered, but counts against the channel.
          if (result.broken) s.channels.reportFailure(channel, result.broken, false);
          else s.channels.reportSuccess(channel);
          return;
        }
        if ('untranslatable' in result) {
          untranslatable ??= result.untranslatable;
          continue;
        }
        if ('elsewhere' in result) continue;
        tries++;
        if (call.clientGone) break;
        call.attempts.push({
          channel_id: channel.id,
          channel_name: channel.name,
          status: result.status === 0 ? null : result.status,
          error: result.message,
          latency_ms: Math.round(performance.now() - startedAt),
        });
        req.log.warn(
          {
            channel_id: channel.id,
            channel_name: channel.name,
            status: result.status || null,
            error: result.message,
          },
          'relay: upstream attempt failed',
        );
        s.channels.reportFailure(channel, result.message, result.status === 401 || result.status === 403);
        last = result;
      }
      // No channel could take it as it is: the client's to change.
      if (untranslatable && tries === 0 && !call.clientGone) throw untranslatable;
    } catch (err) {
      // A client mistake found late (e.g. a part that cannot be translated): refuse, refund.
      await giveBack(call);
      if (err instanceof AppError && !reply.raw.headersSent)
        return refuse(req, reply, err, undefined, call.attempts);
      throw err;
    }

    // ── every eligible upstream failed (or the client left first): refund in full ──────
    await giveBack(call);
    if (call.clientGone) {
      await log(req, free(499, 'client_closed'), call.attempts);
      return;
    }
    await refuse(
      req,
      reply,
      new AppError('upstream_error', sentence(`Every upstream for "${r.model}" failed: ${last.message}`)),
      last.timeout ? 504 : 502,
      call.attempts,
    );
  }

  // ── 6. forward / convert: one attempt on one channel ─────────────────────────────────────
  async function tryChannel(
    call: RelayCall,
    channel: Channel,
    signal: AttemptSignal,
    /** A later channel speaks this protocol too (it may hold a stored response this one lacks). */
    storedElsewhere = false,
  ): Promise<AttemptResult> {
    const { req, reply, r, ingress } = call;
    const protocols = protocolsOf(channel, r);
    // Same protocol in and out: the client's body goes as sent. Otherwise: translate.
    const pass = protocols.includes(r.protocol);
    const egress = pass ? ingress : codec(protocols[0]!);
    const upstreamModel = s.channels.upstreamModel(channel, r.model);
    // The client's bytes when they need no change (no second JSON.stringify of the body).
    let body: unknown;
    let toolNames: ReadonlyMap<string, string> | null = null;
    // A translated Anthropic stream opens with the prompt's exact count (message_start).
    if (!pass && r.stream && r.protocol === 'anthropic') await countAhead(r);
    try {
      if (pass)
        body = ingress.passThroughBytes?.(r, upstreamModel) || ingress.passThroughBody(r, upstreamModel);
      else ({ body, toolNames } = translated(r, ingress, egress, upstreamModel));
    } catch (err) {
      if (err instanceof AppError && !pass) return { answered: false, untranslatable: err };
      throw err;
    }
    const startedAt = performance.now();
    const record = (status: number, error: string | null = null) =>
      call.attempts.push({
        channel_id: channel.id,
        channel_name: channel.name,
        status,
        error,
        latency_ms: Math.round(performance.now() - startedAt),
      });
    try {
      const res = await transports[channel.type]!.send({
        channel,
        protocol: egress.protocol,
        operation: r.operation,
        model: upstreamModel,
        body,
        stream: r.stream,
        signal,
        headers: pass ? ingress.forwardedHeaders(req.headers) : {},
      });
      if (res.status >= 400) {
        const text = scrubCredential(
          await readAll(res.body, 1024 * 1024).catch(() => Buffer.alloc(0)),
          channel.apiKey,
        );
        const json = parseJson(text);
        // The channel's fault (overloaded, rate-limited, bad credential…): the next channel tries.
        if (RETRYABLE(res.status) || egress.channelFault?.(res.status, json))
          return {
            answered: false,
            status: res.status,
            timeout: false,
            message: `upstream answered HTTP ${res.status}`,
          };
        // A stored response lives at the upstream account that made it: a follow-up naming one
        // made through another channel is tried there next (no fault of this channel's).
        if (
          storedElsewhere &&
          pass &&
          res.status === 400 &&
          r.protocol === 'responses' &&
          upstreamErrorCode(text) === 'previous_response_not_found'
        ) {
          record(res.status);
          return { answered: false, elsewhere: true };
        }
        // The upstream judged the request itself bad (400, 404, 422…): pass its answer on, as
        // sent when the protocols match (clients such as Claude Code read its wording).
        await giveBack(call);
        record(res.status);
        // The row names the code the client got: the upstream's own when its body went as sent.
        const code = pass ? upstreamErrorCode(text) : REFUSAL_CODE(res.status);
        await log(req, { ...free(res.status, code), channel, upstreamModel }, call.attempts);
        if (pass) void reply.code(res.status).header('content-type', 'application/json').send(text);
        else {
          const message =
            (json === undefined ? null : egress.answerError(json)) ??
            `upstream refused the request (HTTP ${res.status})`;
          void reply
            .code(res.status)
            .send(ingress.errorBody(res.status, REFUSAL_CODE(res.status), message, req.id, null));
        }
        return { answered: true };
      }
      const attempt = { call, channel, upstreamModel, egress, pass, toolNames, record };
      return r.stream ? await relayStream(attempt, res) : await relayPlain(attempt, res);
    } catch (err) {
      if (err instanceof AppError) throw err;
      if (reply.raw.headersSent) {
        // The answer had begun: no other channel can take over. Close it rather than write twice.
        req.log.error(
          { err: err instanceof Error ? err.message : String(err) },
          'relay: failed after the answer began',
        );
        void giveBack(call);
        reply.raw.destroy();
        return { answered: true };
      }
      const f =
        err instanceof UpstreamFailure
          ? err
          : new UpstreamFailure(err instanceof Error ? err.message : 'upstream failed', false);
      return { answered: false, status: 0, timeout: f.timeout, message: f.message };
    }
  }

  return {
    authenticate,
    handle,
    refuse,
    logFree,
    checkPolicy,
    groupAllows,
    reportLimitsOnce,
    /**
     * A non-relay act of a key that counts as one of its requests (minting an ephemeral key):
     * one request against rpm (no tokens), a concurrency slot taken and given back at once;
     * 429 like a relay request when a limit refuses it.
     */
    async countRequest(req: FastifyRequest, reply: FastifyReply, key: VerifiedKey): Promise<void> {
      await (await applyLimits(req, reply, key, 0)).done();
    },
    /**
     * A free act of a key that works for a while (a token count): one request against rpm (no
     * tokens) and a concurrency slot held until the ticket is handed back; 429 like a relay
     * request when a limit refuses it.
     */
    limitFree: (req: FastifyRequest, reply: FastifyReply, key: VerifiedKey): Promise<Ticket> =>
      applyLimits(req, reply, key, 0),
    /**
     * A drain's grace period ran out: every upstream attempt still under way is cut, so that
     * each answer ends as an upstream failure would end it (a stream with its protocol's error
     * event, billed for what it produced and logged) before the connections close. Resolves once
     * they have, or after `waitMs`.
     */
    async cutAnswers(waitMs: number): Promise<void> {
      cutting = true;
      for (const a of attempts) a.abort(new UpstreamFailure(SHUTTING_DOWN, false));
      const until = Date.now() + waitMs;
      while (underWay > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    },
    /** The limits in force for a key and what is left of each (GET /v1/key). */
    limitsOf: (key: VerifiedKey) => s.limiter.peek(subjectOf(key)),
    async close() {
      await Promise.all(Object.values(pools).map((p) => p.close()));
    },
  };
}

export type Relay = ReturnType<typeof createRelay>;

/** One attempt's context for the answer writers (answer.ts, stream.ts). */
export interface Attempt {
  call: RelayCall;
  channel: Channel;
  upstreamModel: string;
  /** The codec of the protocol the upstream answers in. */
  egress: ProtocolCodec;
  /** Client and upstream speak the same protocol: bytes go through as sent. */
  pass: boolean;
  /** Translated with tool names renamed to fit the upstream: each new name, and the client's. */
  toolNames: ReadonlyMap<string, string> | null;
  /** Notes this attempt's HTTP status (and what broke it, if it broke) on the log row. */
  record(status: number, error?: string | null): void;
}

/** An upstream error body as JSON, or undefined when it is not JSON. */
function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}
