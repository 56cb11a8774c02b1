// Admission: what a relay request must be granted before it is forwarded (steps 3 and 4 of
// relay/pipeline.ts), and what it gives back once answered (step 8), as one unit:
//
//   admit    the limits (rpm, tpm, max_concurrency: limits/) judge and count the request; its
//            worst-case cost is held against an ephemeral key's max_cost (billing/spend-caps),
//            every budget in force (budgets/), then the key quota and the balance (billing/ledger)
//   settle   the real cost charged (never past what the budgets, cap, quota and balance still
//            cover), the rest of the hold released, the tpm estimate corrected
//   release  the whole hold given back (nothing was billed)
//
// Two implementations behind this interface, held to one spec (admission.spec.ts):
//   admission-local.ts  in process: the domains' own calls, one after another (atomic where it
//                       matters: each step's check and hold has no await between them)
//   admission-redis.ts  with REDIS_URL: every step in ONE Lua script (admit) and one (settle),
//                       so a request costs one Redis round trip to admit and one to settle
//
// The refusals are the same either way: 429 rate_limit_exceeded / concurrency_limit_exceeded
// (limits, with retry-after), 429 budget_exceeded, 402 insufficient_quota (cap, quota, balance).
// A request the limits admitted keeps its count when money refuses it (as it always did); its
// ticket, returned with the refusal, gives the tokens and the concurrency slot back.
import type { CapHold } from '../billing/spend-caps.js';
import type { Reservation } from '../billing/ledger.js';
import type { BudgetHold } from '../budgets/meter.js';
import { AppError } from '../http/errors.js';
import type { VerifiedKey } from '../keys/verify.js';
import type { LimitSnapshot, LimitSubject, Refusal as LimitRefusal, Ticket } from '../limits/limiter.js';

/** What a request holds while it runs: its worst case against the ledger, the budgets, the cap. */
export interface Hold {
  key: VerifiedKey;
  ledger: Reservation;
  budget: BudgetHold;
  /** Against an ephemeral key's max_cost (null: not an ephemeral key, or no max_cost). */
  cap: CapHold | null;
}

export interface AdmitRequest {
  key: VerifiedKey;
  /** Whose limits the request meets (limits/limiter.ts). */
  subject: LimitSubject;
  /** Tokens the tpm limits count (called only when a tpm limit applies: counting costs time). */
  tokens: number | (() => number);
  /** The worst-case cost to hold, nano-USD (called after `tokens`). */
  amount(): number;
  /**
   * Whether `amount` (as last returned) is a cheap upper bound, the prompt not tokenized: it is
   * then held only where every limit has room for BOUND_HEADROOM of it (`roomNeeded`).
   */
  bounded?(): boolean;
  /**
   * When `amount` was a cheap upper bound: the exact worst case, judged when the bound is refused
   * for money, or is too near a limit to be held (null: the bound was exact already).
   */
  exact?(): number | null;
  /** Counts a long prompt ahead, between event-loop turns, before `exact` is asked for it. */
  countAhead?(): Promise<void>;
}

/**
 * How many times a worst case held on a prompt's upper bound each limit must still have room
 * for. The bound saves tokenizing the prompt on every request (~2–20 µs for a short one, ms for
 * a long one), but holds more than the exact count; near a limit, bounds held by requests in
 * flight could refuse a request that exact holds admit. So there the request is tokenized and
 * judged on its exact count, as it is when the bound is refused: a limit refuses a request on
 * its bound only when fewer than this many such holds would fit, and then tries the exact one.
 * Only more requests than this in flight on one limit as it runs out can still feel the bounds.
 */
export const BOUND_HEADROOM = 32;

/** The room a hold of `amount` must find in each limit: itself, or BOUND_HEADROOM × a bound. */
export const roomNeeded = (amount: number, bounded: boolean): number =>
  bounded ? Math.min(Number.MAX_SAFE_INTEGER, amount * BOUND_HEADROOM) : amount;

export type AdmitResult =
  | { ok: true; ticket: Ticket; snapshot: LimitSnapshot; hold: Hold }
  | {
      ok: false;
      error: AppError;
      snapshot: LimitSnapshot;
      /** The limits' ticket when they admitted the request (money refused it): hand it back. */
      ticket: Ticket | null;
    };

export interface Admission {
  admit(req: AdmitRequest): Promise<AdmitResult>;
  /**
   * Charges `cost` (the tpm estimate corrected to `tokens` first) dated `at`, releasing the rest
   * of the hold and giving the concurrency slot back; answers what was charged. Throws when the
   * charge could not be recorded (the answer goes unbilled; the slot is given back still).
   */
  settle(h: Hold, ticket: Ticket, tokens: number, cost: number, at: number): Promise<number>;
  /** Gives the whole hold back; resolves once it is given back (errors are logged, never thrown). */
  release(h: Hold): Promise<void>;
}

const NO_RETRY = { 'x-should-retry': 'false' };

/** The 429 a limits refusal answers, with the wait in retry-after (whole seconds) and retry-after-ms. */
export function limitsError(refusal: LimitRefusal): AppError {
  return new AppError(
    refusal.kind === 'concurrency' ? 'concurrency_limit_exceeded' : 'rate_limit_exceeded',
    refusal.message,
    {
      headers: {
        // Whole seconds, at most a minute (SDKs wait only for 0 < retry-after ≤ 60); the
        // exact wait is in retry-after-ms (a window slides by whole seconds: up to 61 s).
        'retry-after': String(Math.min(60, Math.max(1, Math.ceil(refusal.retryAfterMs / 1000)))),
        'retry-after-ms': String(refusal.retryAfterMs),
        ...(refusal.never ? { 'x-should-retry': 'false' } : {}),
      },
    },
  );
}

/** Money refusals, worded for the client. */
export const moneyError = {
  cap: (amount: number) =>
    new AppError(
      'insufficient_quota',
      `The request could cost up to ${amount / 1e9} USD, more than this ephemeral key's max_cost has left.`,
      { headers: NO_RETRY },
    ),
  budget: (message: string) => new AppError('budget_exceeded', message, { headers: NO_RETRY }),
  ledger: (amount: number, reason: 'key_quota' | 'balance') =>
    new AppError(
      'insufficient_quota',
      `The request could cost up to ${amount / 1e9} USD, more than ${reason === 'key_quota' ? "this API key's quota" : 'the account balance'} has left.`,
      { headers: NO_RETRY },
    ),
};
