// The rate-limit headers of a relay answer (contract §7): OpenAI's `x-ratelimit-*` with
// resets as Go durations ("1s", "6m0s", "12ms"), and on Anthropic's routes also
// `anthropic-ratelimit-*` with resets as RFC 3339 times. Each reports the tightest limit.
import type { LimitSnapshot, LimitState } from './limiter.js';

/** A duration as Go's time.Duration prints it, to the millisecond: 0s, 12ms, 1.5s, 6m0s, 1h2m3s. */
export function goDuration(ms: number): string {
  const d = Math.max(0, Math.round(ms));
  if (d === 0) return '0s';
  if (d < 1000) return `${d}ms`;
  const h = Math.floor(d / 3_600_000);
  const m = Math.floor((d % 3_600_000) / 60_000);
  const rest = d % 60_000;
  const s = `${Math.floor(rest / 1000)}${
    rest % 1000
      ? `.${String(rest % 1000)
          .padStart(3, '0')
          .replace(/0+$/, '')}`
      : ''
  }s`;
  if (h > 0) return `${h}h${m}m${s}`;
  if (m > 0) return `${m}m${s}`;
  return s;
}

/** RFC 3339, to the second (as Anthropic sends it), rounded up so the limit has reset by then. */
const rfc3339 = (at: number) => new Date(Math.ceil(at / 1000) * 1000).toISOString().replace('.000Z', 'Z');

export function rateLimitHeaders(
  snap: LimitSnapshot,
  anthropic: boolean,
  now: number,
): Record<string, string> {
  const h: Record<string, string> = {};
  const put = (name: 'requests' | 'tokens', st: LimitState | undefined) => {
    if (!st) return;
    const reset = st.resetInMs ?? 0;
    h[`x-ratelimit-limit-${name}`] = String(st.limit);
    h[`x-ratelimit-remaining-${name}`] = String(st.remaining);
    h[`x-ratelimit-reset-${name}`] = goDuration(reset);
    if (anthropic) {
      h[`anthropic-ratelimit-${name}-limit`] = String(st.limit);
      h[`anthropic-ratelimit-${name}-remaining`] = String(st.remaining);
      h[`anthropic-ratelimit-${name}-reset`] = rfc3339(now + reset);
    }
  };
  put('requests', snap.rpm);
  put('tokens', snap.tpm);
  return h;
}

/** `limits` of GET /v1/key: each limit in force with its limit, what is left, and when it is whole again. */
export function limitsJson(snap: LimitSnapshot, now: number) {
  const one = (st: LimitState) => ({
    limit: st.limit,
    remaining: st.remaining,
    resets_at:
      st.resetInMs === null || st.resetInMs === 0 ? null : new Date(now + st.resetInMs).toISOString(),
    scope: st.scope,
  });
  const out: Record<string, ReturnType<typeof one>> = {};
  if (snap.rpm) out.rpm = one(snap.rpm);
  if (snap.tpm) out.tpm = one(snap.tpm);
  if (snap.concurrency) out.max_concurrency = one(snap.concurrency);
  return out;
}
