// The counters behind rpm / tpm / max_concurrency, one interface for both implementations:
// in memory (store-local.ts, one instance) and Redis (store-redis.ts, shared by every
// instance, one Lua script per check). One spec (store.spec.ts) runs against both.
//
// Windows slide: a request (or its tokens) is counted in the one-second bucket it was
// admitted in, and a bucket counts while any moment of it is less than a minute old (61 s
// from its start), so no 60-second span ever holds more than the limit — there is no
// boundary where a second full minute's worth gets in. Concurrency slots are leases with an
// expiry time, renewed while their request runs (limiter.ts), so a crashed instance's slots
// free themselves.

/** One scope's counters (a key "k:7" or an account "u:3") and the limits to judge them by. */
export interface ScopeLimits {
  id: string;
  rpm: number | null;
  tpm: number | null;
  concurrency: number | null;
}

/** A sliding window as it stands: its limit, the sum counted, the live buckets (second → amount), oldest first. */
export interface WindowView {
  limit: number;
  used: number;
  buckets: [second: number, amount: number][];
}

export interface ScopeView {
  rpm: WindowView | null;
  tpm: WindowView | null;
  concurrency: { limit: number; inFlight: number } | null;
}

export type LimitKind = 'rpm' | 'tpm' | 'concurrency';

export interface AdmitOutcome {
  /** The first limit that refused (scopes in order; rpm, tpm, then concurrency), or null = admitted. */
  refused: { scope: number; kind: LimitKind } | null;
  /** Each scope as it was before this request (nothing was counted when refused). */
  views: ScopeView[];
}

export interface LimitStore {
  /**
   * Judges one request against every scope at once and, only when all admit it, counts it:
   * one request, `tokens` tokens, and (where a scope limits concurrency) the lease `leaseId`
   * until `leaseExpiresAt`.
   */
  admit(
    scopes: ScopeLimits[],
    tokens: number,
    leaseId: string,
    leaseExpiresAt: number,
    now: number,
  ): Promise<AdmitOutcome>;
  /** The scopes as they stand, counting nothing. */
  peek(scopes: ScopeLimits[], now: number): Promise<ScopeView[]>;
  /** Corrects the tokens counted in `second`'s bucket by `delta` (the real usage minus the estimate). */
  adjustTokens(scopeIds: string[], second: number, delta: number, now: number): Promise<void>;
  /** Gives a concurrency slot back. */
  release(scopeIds: string[], leaseId: string): Promise<void>;
  /** Moves these leases' expiry to `expiresAt` (a lease already gone stays gone). */
  renew(leases: { scopeIds: string[]; leaseId: string }[], expiresAt: number): Promise<void>;
  close(): Promise<void>;
}

/** Buckets are whole seconds of the clock. */
export const secondOf = (ms: number) => Math.floor(ms / 1000);
/** A bucket counts while its second is at most this many seconds older than now's. */
export const WINDOW_SECONDS = 60;
/** When the bucket of `second` stops counting. */
export const bucketEnd = (second: number) => (second + WINDOW_SECONDS + 1) * 1000;

/**
 * When a request of `cost` would fit in the window (ms from now; 0 = now), or null when it
 * never can (a cost above the limit itself).
 */
export function waitFor(w: WindowView, cost: number, now: number): number | null {
  if (cost > w.limit) return null;
  if (w.used + cost <= w.limit) return 0;
  let freed = 0;
  for (const [second, amount] of w.buckets) {
    freed += amount;
    if (w.used - freed + cost <= w.limit) return Math.max(0, bucketEnd(second) - now);
  }
  return Math.max(0, bucketEnd(w.buckets[w.buckets.length - 1]?.[0] ?? secondOf(now)) - now);
}

/** Until the window is empty again ("resets to its initial state"), ms from now. */
export function fullResetIn(w: WindowView, now: number): number {
  const last = w.buckets[w.buckets.length - 1];
  return last ? Math.max(0, bucketEnd(last[0]) - now) : 0;
}

/** The window with `amount` more counted now (what the answer to an admitted request reports). */
export function withCounted(w: WindowView, amount: number, now: number): WindowView {
  const sec = secondOf(now);
  const buckets = w.buckets.map((b) => [...b] as [number, number]);
  const last = buckets[buckets.length - 1];
  if (last && last[0] === sec) last[1] += amount;
  else buckets.push([sec, amount]);
  return { limit: w.limit, used: w.used + amount, buckets };
}
