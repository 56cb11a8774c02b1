// Step 3 of the relay: rpm, tpm and max_concurrency, per key and per account. Each scope's
// limit is its own value, else its group's default, never above the group's (policy.ts);
// the strictest that applies refuses. A request is judged against every scope at once and
// counted only when all admit it (store.ts). An admitted request holds a ticket: its token
// estimate is corrected to the real usage at settle, and its concurrency slot (a lease,
// renewed while it runs) is given back when it ends, on every path.
import { randomBytes } from 'node:crypto';
import type { Clock } from '../shared/clock.js';
import { effective, type GroupPolicy, type LimitValues } from './policy.js';
import {
  type AdmitOutcome,
  fullResetIn,
  type LimitKind,
  type LimitStore,
  type ScopeLimits,
  type ScopeView,
  secondOf,
  waitFor,
  type WindowView,
  withCounted,
} from './store.js';

/** Whose limits a request meets: its key's and its account's, and each one's group. */
export interface LimitSubject {
  keyId: number;
  userId: number;
  key: LimitValues;
  account: LimitValues;
  keyGroup: GroupPolicy | null;
  accountGroup: GroupPolicy | null;
}

/** Where a limit in force comes from: the key's own, the account's own, or a group default. */
export type LimitSource = 'key' | 'account' | 'group';

interface Scope {
  limits: ScopeLimits;
  what: 'key' | 'account';
  source: Record<LimitKind, LimitSource>;
}

/** One limit in force, as answers report it (the tightest scope's). */
export interface LimitState {
  limit: number;
  remaining: number;
  /** ms until the window is empty again (null for concurrency: slots free as requests end). */
  resetInMs: number | null;
  scope: LimitSource;
}

/** What the limits look like for a key right now, per kind in force. */
export type LimitSnapshot = Partial<Record<LimitKind, LimitState>>;

export interface Refusal {
  kind: LimitKind;
  /** The message says which limit: the key's, the account's, or the group's default. */
  message: string;
  retryAfterMs: number;
  /** Waiting will not help: the request alone is above the limit. */
  never: boolean;
}

/** A correction of the tokens counted at admission: `delta` into `second`'s bucket of each scope. */
export interface TokenCorrection {
  scopeIds: string[];
  second: number;
  delta: number;
}

export interface Ticket {
  /** Corrects the tokens counted at admission to `actual` (0 = refund them); once. */
  settleTokens(actual: number): void;
  /**
   * Like settleTokens, but answers the correction for the caller to apply (in a script of its
   * own, admission/admission-redis.ts) instead of applying it; null when nothing is to correct.
   */
  takeCorrection(actual: number): TokenCorrection | null;
  /**
   * Hands the concurrency slot over for the caller to give back (in a script of its own, as
   * takeCorrection); null when there is none or it was given back already. Once taken, done()
   * leaves the slot alone.
   */
  takeRelease(): SlotRelease | null;
  /**
   * Ends the request: tokens not settled are refunded, the concurrency slot given back.
   * Idempotent; resolves once the slot is free (errors are logged, never thrown).
   */
  done(): Promise<void>;
}

/** A concurrency lease to give back: its id in each scope that counts it. */
export interface SlotRelease {
  scopeIds: string[];
  leaseId: string;
}

/** One check as prepare() builds it for the store. */
export interface LimitCheck {
  scopes: Scope[];
  limits: ScopeLimits[];
  estimate: number;
  leaseId: string;
  leaseExpiresAt: number;
  now: number;
}

export type Admission =
  | { ok: true; ticket: Ticket; snapshot: LimitSnapshot }
  | { ok: false; refusal: Refusal; snapshot: LimitSnapshot };

const UNITS: Record<LimitKind, string> = {
  rpm: 'requests per minute',
  tpm: 'tokens per minute',
  concurrency: 'requests at once',
};

/** The ticket of a request no limit applies to: nothing to correct or give back. */
export const NOOP_TICKET: Ticket = {
  settleTokens() {},
  takeCorrection: () => null,
  takeRelease: () => null,
  done: () => Promise.resolve(),
};

function scopesOf(s: LimitSubject): Scope[] {
  const out: Scope[] = [];
  const build = (id: string, what: 'key' | 'account', own: LimitValues, group: GroupPolicy | null) => {
    const rpm = effective(own.rpm, group?.rpm ?? null);
    const tpm = effective(own.tpm, group?.tpm ?? null);
    const conc = effective(own.maxConcurrency, group?.maxConcurrency ?? null);
    if (!rpm && !tpm && !conc) return;
    const src = (e: { fromGroup: boolean } | null): LimitSource => (e?.fromGroup ? 'group' : what);
    out.push({
      limits: { id, rpm: rpm?.value ?? null, tpm: tpm?.value ?? null, concurrency: conc?.value ?? null },
      what,
      source: { rpm: src(rpm), tpm: src(tpm), concurrency: src(conc) },
    });
  };
  build(`k:${s.keyId}`, 'key', s.key, s.keyGroup);
  build(`u:${s.userId}`, 'account', s.account, s.accountGroup);
  return out;
}

/** The tightest scope per kind: least remaining, then the lower limit. */
function snapshotOf(scopes: Scope[], views: ScopeView[], now: number): LimitSnapshot {
  const snap: LimitSnapshot = {};
  const offer = (kind: LimitKind, st: LimitState) => {
    const cur = snap[kind];
    if (!cur || st.remaining < cur.remaining || (st.remaining === cur.remaining && st.limit < cur.limit))
      snap[kind] = st;
  };
  const fromWindow = (w: WindowView, scope: LimitSource): LimitState => ({
    limit: w.limit,
    remaining: Math.max(0, w.limit - w.used),
    resetInMs: fullResetIn(w, now),
    scope,
  });
  views.forEach((v, i) => {
    const sc = scopes[i]!;
    if (v.rpm) offer('rpm', fromWindow(v.rpm, sc.source.rpm));
    if (v.tpm) offer('tpm', fromWindow(v.tpm, sc.source.tpm));
    if (v.concurrency)
      offer('concurrency', {
        limit: v.concurrency.limit,
        remaining: Math.max(0, v.concurrency.limit - v.concurrency.inFlight),
        resetInMs: null,
        scope: sc.source.concurrency,
      });
  });
  return snap;
}

function refusalOf(scope: Scope, kind: LimitKind, view: ScopeView, tokens: number, now: number): Refusal {
  const limit = scope.limits[kind]!;
  const whose =
    scope.source[kind] === 'group'
      ? `this ${scope.what === 'key' ? 'API key' : 'account'} (its group's default)`
      : scope.what === 'key'
        ? 'this API key'
        : 'this account';
  if (kind === 'concurrency')
    return {
      kind,
      message: `Concurrency limit of ${limit} ${UNITS[kind]} reached for ${whose}; retry when one finishes.`,
      retryAfterMs: 1000,
      never: false,
    };
  const wait = waitFor(kind === 'rpm' ? view.rpm! : view.tpm!, kind === 'rpm' ? 1 : tokens, now);
  if (wait === null)
    return {
      kind,
      message: `This request could use ${tokens} tokens (its prompt plus max_tokens), more than the limit of ${limit} ${UNITS[kind]} for ${whose}; lower max_tokens or shorten the prompt.`,
      retryAfterMs: 60_000,
      never: true,
    };
  return {
    kind,
    message: `Rate limit of ${limit} ${UNITS[kind]} reached for ${whose}.`,
    retryAfterMs: Math.max(1, wait),
    never: false,
  };
}

export function createLimiter(deps: {
  store: LimitStore;
  now: Clock;
  /** A concurrency slot's lease: renewed every third of it while its request runs. */
  leaseMs: number;
  /** How often leases are renewed; default a third of the lease. null: only by `renew()` (tests). */
  renewEveryMs?: number | null;
  onError?: (err: unknown, what: string) => void;
}) {
  const { store } = deps;
  const report = (what: string) => (err: unknown) => deps.onError?.(err, what);
  /** Leases this instance holds, renewed while their requests run. */
  const held = new Map<string, string[]>();
  /** Pushes every slot this instance holds a lease further. */
  const renew = async () => {
    if (held.size === 0) return;
    const leases = [...held].map(([leaseId, scopeIds]) => ({ leaseId, scopeIds }));
    await store.renew(leases, deps.now() + deps.leaseMs);
  };
  const every =
    deps.renewEveryMs === undefined ? Math.max(100, Math.floor(deps.leaseMs / 3)) : deps.renewEveryMs;
  const renewal =
    every === null
      ? null
      : setInterval(() => void renew().catch(report('renewing concurrency leases')), every);
  renewal?.unref();

  /**
   * What a check of `s` sends to the store: its scopes, the tokens counted (`tokens` is only
   * called when a tpm limit applies: counting a prompt costs time) and the lease. null: no limit applies.
   */
  function prepare(s: LimitSubject, tokens: number | (() => number)): LimitCheck | null {
    const scopes = scopesOf(s);
    if (scopes.length === 0) return null;
    const now = deps.now();
    const estimate = scopes.some((x) => x.limits.tpm !== null)
      ? typeof tokens === 'function'
        ? tokens()
        : tokens
      : 0;
    return {
      scopes,
      limits: scopes.map((x) => x.limits),
      estimate,
      leaseId: randomBytes(9).toString('base64url'),
      leaseExpiresAt: now + deps.leaseMs,
      now,
    };
  }

  /** The store's answer to a check: a refusal, or the ticket of an admitted request. */
  function conclude(check: LimitCheck, out: AdmitOutcome): Admission {
    const { scopes, limits, estimate, leaseId, now } = check;
    if (out.refused) {
      const sc = scopes[out.refused.scope]!;
      return {
        ok: false,
        refusal: refusalOf(sc, out.refused.kind, out.views[out.refused.scope]!, estimate, now),
        snapshot: snapshotOf(scopes, out.views, now),
      };
    }
    // What the answer reports: the windows with this request counted.
    const after = out.views.map((v) => ({
      rpm: v.rpm && withCounted(v.rpm, 1, now),
      tpm: v.tpm && withCounted(v.tpm, estimate, now),
      concurrency: v.concurrency && { ...v.concurrency, inFlight: v.concurrency.inFlight + 1 },
    }));
    const tokenScopes = limits.filter((l) => l.tpm !== null).map((l) => l.id);
    const leaseScopes = limits.filter((l) => l.concurrency !== null).map((l) => l.id);
    if (leaseScopes.length) held.set(leaseId, leaseScopes);
    let settled = tokenScopes.length === 0 || estimate === 0;
    let released = leaseScopes.length === 0;
    let ended: Promise<void> | null = null;
    const ticket: Ticket = {
      takeCorrection(actual) {
        if (settled) return null;
        settled = true;
        const delta = Math.max(0, Math.round(actual)) - estimate;
        return delta === 0 ? null : { scopeIds: tokenScopes, second: secondOf(now), delta };
      },
      settleTokens(actual) {
        const c = ticket.takeCorrection(actual);
        if (c)
          store
            .adjustTokens(c.scopeIds, c.second, c.delta, deps.now())
            .catch(report('correcting tokens per minute'));
      },
      takeRelease() {
        if (released) return null;
        released = true;
        // No longer renewed: should the caller fail to give it back, it expires with its lease.
        held.delete(leaseId);
        return { scopeIds: leaseScopes, leaseId };
      },
      done() {
        if (ended) return ended;
        ticket.settleTokens(0);
        const slot = ticket.takeRelease();
        ended = slot
          ? store.release(slot.scopeIds, slot.leaseId).catch(report('releasing a concurrency slot'))
          : Promise.resolve();
        return ended;
      },
    };
    return { ok: true, ticket, snapshot: snapshotOf(scopes, after, now) };
  }

  return {
    /** Whether the subject has any limit at all (else the relay skips this step). */
    limited: (s: LimitSubject) => scopesOf(s).length > 0,

    /**
     * Judges and counts one request of (at most) `tokens` tokens. `tokens` may be a function:
     * it is only called when a tpm limit applies (counting a prompt costs time).
     */
    async admit(s: LimitSubject, tokens: number | (() => number)): Promise<Admission> {
      const check = prepare(s, tokens);
      if (!check) return { ok: true, ticket: NOOP_TICKET, snapshot: {} };
      const { limits, estimate, leaseId, leaseExpiresAt, now } = check;
      return conclude(check, await store.admit(limits, estimate, leaseId, leaseExpiresAt, now));
    },

    /** admit() in two halves, for a caller that runs the store's check itself (among other steps). */
    prepare,
    conclude,

    /** The limits in force and how much of each is left, counting nothing. */
    async peek(s: LimitSubject): Promise<LimitSnapshot> {
      const scopes = scopesOf(s);
      if (scopes.length === 0) return {};
      const now = deps.now();
      const views = await store.peek(
        scopes.map((x) => x.limits),
        now,
      );
      return snapshotOf(scopes, views, now);
    },

    /** The limiter's clock (for the reset times answers report). */
    now: deps.now,

    /** Renews this instance's leases now (a timer does it every third of the lease). */
    renew,

    /** Concurrency slots this instance holds now (for tests and metrics). */
    heldSlots: () => held.size,

    async close() {
      if (renewal) clearInterval(renewal);
      await store.close();
    },
  };
}

export type Limiter = ReturnType<typeof createLimiter>;
