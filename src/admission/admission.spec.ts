// One spec for both admissions (run by admission-local.test.ts and admission-redis.test.ts):
// the limits and every money step judged together, exactly under concurrency; each refusal
// answered as the relay always answered it; a later step's refusal gives the earlier holds
// back; settle charges within the budgets, cap, quota and balance and corrects the tpm count.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Ledger, LedgerStore } from '../billing/ledger.js';
import type { SpendCaps, SpendCapStore } from '../billing/spend-caps.js';
import type { BudgetMeter, BudgetStore } from '../budgets/meter.js';
import { type Budgets, createBudgets } from '../budgets/service.js';
import type { VerifiedKey } from '../keys/verify.js';
import type { Limiter, LimitSubject } from '../limits/limiter.js';
import { NO_LIMITS, type LimitValues } from '../limits/policy.js';
import { type Admission, type AdmitRequest, type AdmitResult, BOUND_HEADROOM } from './admission.js';

export const silent = pino({ level: 'silent' });

/** The database's side: stored spend and balances, per id. */
export interface Stored {
  used: Map<number, number>;
  balance: Map<number, number>;
  capUsed: Map<number, number>;
  budgetSpent: Map<string, number>;
}

/** What a made admission runs on, built over `stores`; instances with one `space` share counters when the implementation shares. */
export interface Parts {
  admission: Admission;
  limiter: Limiter;
  ledger: Ledger;
  spendCaps: SpendCaps;
  budgets: Budgets;
}

export interface AdmissionImpl {
  /** The parts, closed by the spec; `disconnect`, when given, after them (a Redis connection). */
  make(deps: {
    space: string;
    now: () => number;
    ledgerStore: LedgerStore;
    capStore: SpendCapStore;
    budgetStore: BudgetStore;
    budgets: (meter: BudgetMeter) => Budgets;
  }): Promise<Parts & { disconnect?(): void }>;
}

let spaces = 0;
const newSpace = () => `aspec:${process.pid}:${Date.now().toString(36)}:${spaces++}`;
let ids = 5000;

function stored(): Stored {
  return { used: new Map(), balance: new Map(), capUsed: new Map(), budgetSpent: new Map() };
}

function key(v: {
  quotaNano?: number | null;
  limits?: Partial<LimitValues>;
  cap?: number | null;
  /** The key's daily budget. */
  daily?: number;
}): VerifiedKey {
  return {
    id: ids++,
    userId: ids++,
    name: 'k',
    group: 'default',
    models: null,
    quotaNano: v.quotaNano ?? null,
    rpm: v.limits?.rpm ?? null,
    limits: { ...NO_LIMITS, ...v.limits },
    userGroup: 'default',
    accountLimits: NO_LIMITS,
    expiresAt: null,
    origins: null as unknown as VerifiedKey['origins'],
    ephemeral: v.cap === undefined ? null : { id: ids++, maxCostNano: v.cap },
    guard: null,
    budget: v.daily === undefined ? null : { amountNano: v.daily, period: 'daily' },
    alertThresholds: null,
    accountBudget: null,
    accountAlertThresholds: null,
    graceUntil: null,
  };
}

const subjectOf = (k: VerifiedKey): LimitSubject => ({
  keyId: k.id,
  userId: k.userId,
  key: k.limits,
  account: k.accountLimits,
  keyGroup: null,
  accountGroup: null,
});

const request = (k: VerifiedKey, amount: number, extra: Partial<AdmitRequest> = {}): AdmitRequest => ({
  key: k,
  subject: subjectOf(k),
  tokens: 100,
  amount: () => amount,
  ...extra,
});

type Admitted = Extract<AdmitResult, { ok: true }>;

/** An admitted request (else the test fails on the refusal's message). */
function admitted(r: AdmitResult): Admitted {
  if (!r.ok) throw new Error(r.error.message);
  return r;
}

/** A refused request (else the test fails with `otherwise`). */
function refused(r: AdmitResult, otherwise: string): Extract<AdmitResult, { ok: false }> {
  if (r.ok) throw new Error(otherwise);
  return r;
}

export function admissionSpec(name: string, impl: AdmissionImpl): void {
  describe(`${name} admission`, () => {
    const open: Array<Parts & { disconnect?(): void }> = [];
    afterEach(async () => {
      for (const p of open.splice(0)) {
        await p.limiter.close();
        await p.ledger.close();
        await p.budgets.close();
        p.disconnect?.();
      }
    });

    /** Parts over fresh stores, and a key `v` whose owner's balance is `balance`. */
    async function keyWith(v: Parameters<typeof key>[0], balance: number) {
      const st = stored();
      const now = Date.now;
      const p = await impl.make({
        space: newSpace(),
        now,
        ledgerStore: {
          usedNano: async (id) => st.used.get(id) ?? 0,
          balanceNano: async (id) => st.balance.get(id) ?? 0,
          addUsed: async () => {},
          subtractSpend: async () => {},
        },
        capStore: { usedNano: async (id) => st.capUsed.get(id) ?? 0, addUsed: async () => {} },
        budgetStore: { spentSince: async (subject, id) => st.budgetSpent.get(`${subject}:${id}`) ?? 0 },
        budgets: (meter) =>
          createBudgets({ meter, groupBudget: () => null, notify: async () => {}, logger: silent, now }),
      });
      open.push(p);
      const k = key(v);
      st.balance.set(k.userId, balance);
      const admit = (amount: number, extra?: Partial<AdmitRequest>) =>
        p.admission.admit(request(k, amount, extra));
      /** Settles an admitted request (`tokens` used, `cost` charged) and ends it; answers the charge. */
      const settle = async (a: Admitted, tokens: number, cost: number) => {
        const charged = await p.admission.settle(a.hold, a.ticket, tokens, cost, Date.now());
        a.ticket.done();
        return charged;
      };
      return { st, p, k, admit, settle };
    }

    it('admits exactly as many concurrent requests as the balance covers, each holding its worst case', async () => {
      const { p, k, admit } = await keyWith({ limits: { rpm: 100 } }, 5_000);
      const out = await Promise.all(Array.from({ length: 20 }, () => admit(1_000)));
      const ok = out.filter((a) => a.ok);
      expect(ok).toHaveLength(5);
      const refusal = refused(out.find((a) => !a.ok)!, 'unreachable');
      expect(refusal.error.code).toBe('insufficient_quota');
      expect(refusal.error.message).toContain('the account balance');
      // The limits counted every request they admitted, refused for money or not.
      expect(refusal.ticket).not.toBeNull();
      expect(refusal.snapshot.rpm).toMatchObject({ limit: 100 });
      for (const a of out) if (!a.ok) a.ticket?.done();
      expect((await p.limiter.peek(subjectOf(k))).rpm).toMatchObject({ remaining: 80 });
    });

    it('a limits refusal holds no money and answers 429 with the wait', async () => {
      const { p, k, admit } = await keyWith({ quotaNano: 3_000, limits: { rpm: 1 } }, 10_000);
      const first = await admit(1_000);
      expect(first.ok).toBe(true);
      const second = refused(await admit(1_000), 'admitted past rpm');
      expect(second.error.code).toBe('rate_limit_exceeded');
      expect(second.error.status).toBe(429);
      expect(Number(second.error.headers?.['retry-after'])).toBeGreaterThan(0);
      expect(second.ticket).toBeNull();
      // Only the first request holds: the rest of the quota is free.
      const rest = await p.ledger.reserve(k.id, k.userId, k.quotaNano, 2_000);
      expect(rest.ok).toBe(true);
    });

    it('a later refusal gives the earlier holds back: cap and budget held, then the quota refuses', async () => {
      const { p, k, admit } = await keyWith({ quotaNano: 500, cap: 10_000, daily: 10_000 }, 100_000);
      const refusal = refused(await admit(1_000), 'admitted past the quota');
      expect(refusal.error.code).toBe('insufficient_quota');
      expect(refusal.error.message).toContain("this API key's quota");
      expect(refusal.error.headers?.['x-should-retry']).toBe('false');
      // Neither the cap nor the budget keeps the refused request's hold.
      const cap = await p.spendCaps.hold(k.ephemeral!.id, 10_000, 10_000);
      expect(cap).not.toBeNull();
      expect((await p.budgets.reserve(k, 10_000)).ok).toBe(true);
    });

    it('answers the cap and the budget refusals in their own words, and gives the cap back on a budget refusal', async () => {
      const { st, p, k, admit } = await keyWith({ cap: 2_000, daily: 1_500 }, 100_000);
      st.budgetSpent.set(`k:${k.id}`, 1_000);
      const byCap = refused(await admit(3_000), 'admitted past the cap');
      expect(byCap.error.code).toBe('insufficient_quota');
      expect(byCap.error.message).toContain("ephemeral key's max_cost");
      const byBudget = refused(await admit(1_000), 'admitted past the budget');
      expect(byBudget.error.code).toBe('budget_exceeded');
      expect(byBudget.error.message).toContain("this API key's daily budget");
      // The cap's hold was given back: all of it is free.
      expect(await p.spendCaps.hold(k.ephemeral!.id, 2_000, 2_000)).not.toBeNull();
    });

    it('a cheap bound refused is judged again on the exact amount, the limits counting the request once', async () => {
      const { p, k, admit } = await keyWith({ quotaNano: 1_000, limits: { rpm: 10 } }, 100_000);
      const a = admitted(await admit(5_000, { exact: () => 900 }));
      expect(a.hold.ledger.amount).toBe(900);
      expect((await p.limiter.peek(subjectOf(k))).rpm).toMatchObject({ remaining: 9 });
      a.ticket.done();
    });

    it('a long prompt is counted ahead (countAhead) before its exact amount is asked, and only then', async () => {
      for (const v of [
        { quotaNano: 2_000 },
        { quotaNano: 2_000, cap: 1_000_000, daily: 1_000_000, limits: { rpm: 10 } },
      ]) {
        const { admit } = await keyWith(v, 100_000);
        const order: string[] = [];
        const track = {
          countAhead: async () => void order.push('ahead'),
          exact: () => {
            order.push('exact');
            return 900;
          },
        };
        admitted(await admit(5_000, track)).ticket.done();
        expect(order, JSON.stringify(v)).toEqual(['ahead', 'exact']);
        order.length = 0;
        admitted(await admit(500, track)).ticket.done();
        expect(order, JSON.stringify(v)).toEqual([]);
      }
    });

    /** A request whose amount is a bound (the prompt not tokenized); `exact` counts how often it is asked. */
    const bounded = (exactAmount: number, asked = { n: 0 }): Partial<AdmitRequest> => ({
      bounded: () => true,
      exact: () => {
        asked.n++;
        return exactAmount;
      },
    });
    // The money steps in force: the ledger alone (its own scripts on Redis), or every one of them.
    const ledgerOnly = { quotaNano: 1_000_000 };
    const everyStep = { quotaNano: 1_000_000, cap: 1_000_000, daily: 1_000_000, limits: { rpm: 100 } };

    it('a bound is held as it is where every limit has BOUND_HEADROOM times its room: never counted exactly', async () => {
      for (const v of [ledgerOnly, everyStep]) {
        const { admit } = await keyWith(v, 1_000_000);
        const asked = { n: 0 };
        const bound = 1_000_000 / BOUND_HEADROOM;
        const a = admitted(await admit(bound, bounded(400, asked)));
        expect(a.hold.ledger.amount, JSON.stringify(v)).toBe(bound);
        expect(asked.n).toBe(0);
        a.ticket.done();
      }
    });

    it('nearer a limit than BOUND_HEADROOM bounds, the request is held on its exact amount', async () => {
      // Each limit in turn leaves less room than 32 × the 1 000 bound, and more than the exact 400.
      const near = [
        { v: { quotaNano: 31_999 }, balance: 1_000_000 },
        { v: {}, balance: 31_999 },
        { v: { cap: 31_999 }, balance: 1_000_000 },
        { v: { daily: 31_999 }, balance: 1_000_000 },
        { v: { ...everyStep, daily: 31_999 }, balance: 1_000_000 },
      ];
      for (const { v, balance } of near) {
        const { admit } = await keyWith(v, balance);
        const asked = { n: 0 };
        const a = admitted(await admit(1_000, bounded(400, asked)));
        expect(a.hold.ledger.amount, JSON.stringify(v)).toBe(400);
        expect(asked.n).toBe(1);
        a.ticket.done();
      }
      // With the room for exactly 32 bounds, the bound is held.
      const { admit } = await keyWith({ quotaNano: 32_000, cap: 32_000, daily: 32_000 }, 32_000);
      expect(admitted(await admit(1_000, bounded(400))).hold.ledger.amount).toBe(1_000);
    });

    it('bounds held in flight never refuse what exact holds admit: a quota of exactly 3 exact worst cases admits 3', async () => {
      for (const v of [{ quotaNano: 3_000 }, { ...everyStep, quotaNano: 3_000 }]) {
        const { admit } = await keyWith(v, 1_000_000);
        const out = await Promise.all(Array.from({ length: 30 }, () => admit(2_500, bounded(1_000))));
        const ok = out.filter((a): a is Admitted => a.ok);
        expect(
          ok.map((a) => a.hold.ledger.amount),
          JSON.stringify(v),
        ).toEqual([1_000, 1_000, 1_000]);
        for (const a of out)
          if (a.ok) a.ticket.done();
          else a.ticket?.done();
      }
    });

    it('settles the cost, releases the rest, and counts what the ledger charged in the budget', async () => {
      const { p, k, admit, settle } = await keyWith({ quotaNano: 10_000, cap: 5_000, daily: 8_000 }, 100_000);
      const a = admitted(await admit(2_000));
      expect(await settle(a, 50, 1_200)).toBe(1_200);
      // Quota 10 000 − 1 200 spent: 8 800 left; the budget 6 800; the cap 3 800.
      expect((await p.ledger.reserve(k.id, k.userId, k.quotaNano, 8_801)).ok).toBe(false);
      const left = await p.budgets.reserve(k, 6_801);
      expect(left.ok).toBe(false);
      expect(await p.spendCaps.hold(k.ephemeral!.id, 5_000, 3_801)).toBeNull();
      expect(await p.spendCaps.hold(k.ephemeral!.id, 5_000, 3_800)).not.toBeNull();
    });

    it('an overrun is charged no further than the budget, the cap and the quota still cover', async () => {
      const { p, k, admit, settle } = await keyWith(
        { quotaNano: 100_000, cap: 1_500, daily: 50_000 },
        100_000,
      );
      const a = admitted(await admit(1_000));
      // The cap covers 1 500 in all: an answer costing 9 000 is charged 1 500.
      expect(await settle(a, 0, 9_000)).toBe(1_500);
      expect((await p.ledger.reserve(k.id, k.userId, k.quotaNano, 98_500)).ok).toBe(true);
    });

    it('holds and charges amounts just below 2^53 nano-USD exactly, every money step in force', async () => {
      const max = Number.MAX_SAFE_INTEGER; // 9 007 199 254 740 991
      const half = (max - 11) / 2;
      const { p, k, admit, settle } = await keyWith({ quotaNano: max, cap: max, daily: max }, max);
      const [a, b] = [admitted(await admit(half)), admitted(await admit(half))];
      // The first settles while the second still holds, the second once it holds alone.
      expect(await settle(a, 0, half - 1)).toBe(half - 1);
      expect(await settle(b, 0, half)).toBe(half);
      // 12 nano-USD left on the quota, the balance, the cap and the budget alike.
      expect((await p.ledger.reserve(k.id, k.userId, k.quotaNano, 13)).ok).toBe(false);
      expect(await p.spendCaps.hold(k.ephemeral!.id, max, 13)).toBeNull();
      expect((await p.budgets.reserve(k, 13)).ok).toBe(false);
      expect(admitted(await admit(12)).hold.ledger.amount).toBe(12);
    });

    it('corrects the tpm estimate to the real usage at settle', async () => {
      const { p, k, admit, settle } = await keyWith({ limits: { tpm: 1_000 } }, 100_000);
      const a = admitted(await admit(100, { tokens: 600 }));
      expect((await p.limiter.peek(subjectOf(k))).tpm).toMatchObject({ remaining: 400 });
      await settle(a, 150, 100);
      // In process the correction is not awaited, but done before settle answers (no I/O).
      expect((await p.limiter.peek(subjectOf(k))).tpm).toMatchObject({ remaining: 850 });
    });

    it('settle gives the concurrency slot back before it answers', async () => {
      const { p, k, admit } = await keyWith({ limits: { maxConcurrency: 1 } }, 100_000);
      const a = admitted(await admit(100));
      expect((await admit(100)).ok).toBe(false);
      await p.admission.settle(a.hold, a.ticket, 10, 50, Date.now());
      // Free for the next request with no done() called: settle gave it back.
      const b = admitted(await admit(100));
      // The first request's end leaves the slot the second now holds alone.
      await a.ticket.done();
      expect((await p.limiter.peek(subjectOf(k))).concurrency).toMatchObject({ remaining: 0 });
      await b.ticket.done();
      await b.ticket.done(); // twice is once
      expect((await p.limiter.peek(subjectOf(k))).concurrency).toMatchObject({ remaining: 1 });
    });

    it('release and done resolve once the hold and the slot are free', async () => {
      const { p, k, admit } = await keyWith({ quotaNano: 1_000, limits: { maxConcurrency: 1 } }, 1_000);
      const a = admitted(await admit(1_000));
      await Promise.all([p.admission.release(a.hold), a.ticket.done()]);
      expect((await p.limiter.peek(subjectOf(k))).concurrency).toMatchObject({ remaining: 1 });
      expect((await p.ledger.reserve(k.id, k.userId, k.quotaNano, 1_000)).ok).toBe(true);
    });

    // On Redis a key with only the ledger in force takes the ledger's own scripts, not the composed ones.
    it('a key with no limits, cap or budget: exact under concurrency, judged on the exact amount, settled', async () => {
      const { st, p, k, admit, settle } = await keyWith({ quotaNano: 10_000 }, 100_000);
      st.used.set(k.id, 4_000);
      const out = await Promise.all(Array.from({ length: 20 }, () => admit(1_000)));
      expect(out.filter((a) => a.ok)).toHaveLength(6);
      const refusal = refused(out.find((a) => !a.ok)!, 'unreachable');
      expect(refusal.error.message).toContain("this API key's quota");
      expect(refusal.ticket?.done).toBeTypeOf('function');
      const held = out.filter((a): a is Admitted => a.ok);
      for (const a of held.slice(1)) expect(await settle(a, 10, 100)).toBe(100);
      // 1 200 on a 1 000 hold: charged whole, as the quota still covers it once the others settled.
      expect(await settle(held[0]!, 10, 1_200)).toBe(1_200);
      // 4 000 + 1 200 + 5 × 100 used: 4 300 left, so a 5 000 bound is refused and its exact 4 300 fits.
      const a = admitted(await admit(5_000, { exact: () => 4_300 }));
      expect(a.hold.ledger.amount).toBe(4_300);
      p.admission.release(a.hold);
      a.ticket.done();
      expect(admitted(await admit(4_300)).hold.ledger.amount).toBe(4_300);
      expect((await admit(1)).ok).toBe(false);
    });

    it('release gives the whole hold back', async () => {
      const { p, admit } = await keyWith({ quotaNano: 1_000, cap: 1_000, daily: 1_000 }, 1_000);
      const a = admitted(await admit(1_000));
      p.admission.release(a.hold);
      a.ticket.done();
      // Not awaited, but ahead of the next admission (in process; on Redis's one connection).
      expect((await admit(1_000)).ok).toBe(true);
    });

    it('starts from the stored spend: a counter new to the store is seeded before it admits', async () => {
      const { st, p, k, admit } = await keyWith({ quotaNano: 10_000, cap: 10_000, daily: 10_000 }, 100_000);
      st.used.set(k.id, 9_500);
      const a = refused(await admit(1_000), 'admitted past the stored spend');
      expect(a.error.message).toContain("this API key's quota");
      const k2 = key({ cap: 10_000 });
      st.balance.set(k2.userId, 100_000);
      st.capUsed.set(k2.ephemeral!.id, 9_500);
      const b = refused(await p.admission.admit(request(k2, 1_000)), 'admitted past the stored cap spend');
      expect(b.error.message).toContain('max_cost');
    });
  });
}
