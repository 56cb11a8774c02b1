// The limit counters in memory: one instance (no REDIS_URL). Same rules as the Redis
// script (store-redis.ts); store.spec.ts holds both to them.
import {
  type AdmitOutcome,
  type LimitKind,
  type LimitStore,
  type ScopeLimits,
  type ScopeView,
  secondOf,
  WINDOW_SECONDS,
  type WindowView,
} from './store.js';

interface Counters {
  requests: Map<number, number>;
  tokens: Map<number, number>;
  /** lease id → expiry (ms). */
  leases: Map<string, number>;
}

/** Scopes untouched this long are dropped by the sweep. */
const IDLE_MS = 5 * 60_000;

export function createLocalLimitStore(): LimitStore {
  const scopes = new Map<string, Counters & { touched: number }>();
  let ops = 0;

  function counters(id: string, now: number) {
    let c = scopes.get(id);
    if (!c) {
      c = { requests: new Map(), tokens: new Map(), leases: new Map(), touched: now };
      scopes.set(id, c);
    }
    c.touched = now;
    return c;
  }

  /** Drops long-idle scopes now and then, so memory follows the keys in use. */
  function sweep(now: number) {
    if (++ops % 10_000 !== 0) return;
    for (const [id, c] of scopes) if (now - c.touched > IDLE_MS && c.leases.size === 0) scopes.delete(id);
  }

  function window(m: Map<number, number>, limit: number, now: number): WindowView {
    const oldest = secondOf(now) - WINDOW_SECONDS;
    let used = 0;
    const buckets: [number, number][] = [];
    for (const [s, v] of m) {
      if (s < oldest) m.delete(s);
      else {
        used += v;
        buckets.push([s, v]);
      }
    }
    buckets.sort((a, b) => a[0] - b[0]);
    return { limit, used, buckets };
  }

  function liveLeases(c: Counters, now: number): number {
    for (const [id, exp] of c.leases) if (exp <= now) c.leases.delete(id);
    return c.leases.size;
  }

  function view(s: ScopeLimits, now: number): ScopeView {
    const c = counters(s.id, now);
    return {
      rpm: s.rpm === null ? null : window(c.requests, s.rpm, now),
      tpm: s.tpm === null ? null : window(c.tokens, s.tpm, now),
      concurrency: s.concurrency === null ? null : { limit: s.concurrency, inFlight: liveLeases(c, now) },
    };
  }

  const add = (m: Map<number, number>, s: number, v: number) => m.set(s, (m.get(s) ?? 0) + v);

  return {
    async admit(list, tokens, leaseId, leaseExpiresAt, now): Promise<AdmitOutcome> {
      sweep(now);
      const views = list.map((s) => view(s, now));
      let refused: AdmitOutcome['refused'] = null;
      views.forEach((v, i) => {
        if (refused) return;
        const kind: LimitKind | null =
          v.rpm && v.rpm.used + 1 > v.rpm.limit
            ? 'rpm'
            : v.tpm && v.tpm.used + tokens > v.tpm.limit
              ? 'tpm'
              : v.concurrency && v.concurrency.inFlight + 1 > v.concurrency.limit
                ? 'concurrency'
                : null;
        if (kind) refused = { scope: i, kind };
      });
      if (refused) return { refused, views };
      const sec = secondOf(now);
      list.forEach((s) => {
        const c = counters(s.id, now);
        if (s.rpm !== null) add(c.requests, sec, 1);
        if (s.tpm !== null && tokens > 0) add(c.tokens, sec, tokens);
        if (s.concurrency !== null) c.leases.set(leaseId, leaseExpiresAt);
      });
      return { refused: null, views };
    },

    async peek(list, now) {
      return list.map((s) => view(s, now));
    },

    async adjustTokens(ids, second, delta, now) {
      if (delta === 0 || second < secondOf(now) - WINDOW_SECONDS) return;
      for (const id of ids) {
        const m = scopes.get(id)?.tokens;
        const v = m?.get(second);
        if (!m || v === undefined) continue;
        if (v + delta > 0) m.set(second, v + delta);
        else m.delete(second);
      }
    },

    async release(ids, leaseId) {
      for (const id of ids) scopes.get(id)?.leases.delete(leaseId);
    },

    async renew(leases, expiresAt) {
      for (const l of leases)
        for (const id of l.scopeIds) {
          const m = scopes.get(id)?.leases;
          if (m?.has(l.leaseId)) m.set(l.leaseId, expiresAt);
        }
    },

    async close() {},
  };
}
