// One spec for both limit stores (run by limiter-local.test.ts and limiter-redis.test.ts),
// through the limiter the relay uses: exact admission at each limit under bursts, sliding
// windows without a boundary burst, token estimates corrected at settle, concurrency slots
// given back and, when an instance dies, expiring on their own. Time is a manual clock.
import { afterEach, describe, expect, it } from 'vitest';
import { type Admission, createLimiter, type Limiter, type LimitSubject, type Refusal } from './limiter.js';
import { NO_LIMITS, type GroupPolicy, type LimitValues } from './policy.js';
import type { LimitStore } from './store.js';

export interface StoreImpl {
  /** Stores made with the same `space` share counters (two instances on one Redis; in memory, one store). */
  make(space: string, leaseMs: number): Promise<LimitStore>;
  shared: boolean;
}

let spaces = 0;
const newSpace = () => `lspec:${process.pid}:${Date.now().toString(36)}:${spaces++}`;

/** A clock the test moves; starts on a whole minute plus `offsetMs`. */
function manualClock(offsetMs = 0) {
  let t = Math.floor(Date.now() / 60_000) * 60_000 + 60_000 + offsetMs;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

const limits = (v: Partial<LimitValues>): LimitValues => ({ ...NO_LIMITS, ...v });
const group = (v: Partial<GroupPolicy>): GroupPolicy => ({
  ...NO_LIMITS,
  models: null,
  maxKeyLifetimeDays: null,
  ...v,
});
let ids = 1000;
function subject(v: {
  key?: Partial<LimitValues>;
  account?: Partial<LimitValues>;
  keyGroup?: Partial<GroupPolicy>;
  accountGroup?: Partial<GroupPolicy>;
  keyId?: number;
  userId?: number;
}): LimitSubject {
  return {
    keyId: v.keyId ?? ids++,
    userId: v.userId ?? ids++,
    key: limits(v.key ?? {}),
    account: limits(v.account ?? {}),
    keyGroup: v.keyGroup ? group(v.keyGroup) : null,
    accountGroup: v.accountGroup ? group(v.accountGroup) : null,
  };
}

/** The refusal of a request the test expects refused (else the test fails). */
function refusalOf(a: Admission): Refusal {
  if (a.ok) throw new Error('unreachable');
  return a.refusal;
}

export function limiterSpec(name: string, impl: StoreImpl): void {
  describe(`${name} limits`, () => {
    const open: Limiter[] = [];
    afterEach(async () => {
      for (const l of open.splice(0)) await l.close();
    });
    /** A limiter on its own store (else `opts.space`'s), on `clock` (a manual one by default). */
    async function limiterOn(
      clock: { now: () => number } = manualClock(),
      opts: { space?: string; leaseMs?: number } = {},
    ) {
      const leaseMs = opts.leaseMs ?? 30_000;
      const store = await impl.make(opts.space ?? newSpace(), leaseMs);
      const l = createLimiter({ store, now: clock.now, leaseMs, renewEveryMs: null });
      open.push(l);
      return l;
    }

    it('admits exactly rpm requests of a parallel burst, and says when to retry', async () => {
      const clock = manualClock(10_000);
      const l = await limiterOn(clock);
      const s = subject({ key: { rpm: 7 } });
      const out = await Promise.all(Array.from({ length: 40 }, () => l.admit(s, 10)));
      expect(out.filter((a) => a.ok).length).toBe(7);
      const refused = out.find((a) => !a.ok)!;
      const refusal = refusalOf(refused);
      expect(refusal.kind).toBe('rpm');
      expect(refusal.message).toContain('this API key');
      // Counted at 10 s into the minute: the bucket stops counting 61 s after its second began.
      expect(refusal.retryAfterMs).toBe(61_000);
      expect(refused.snapshot.rpm).toMatchObject({ limit: 7, remaining: 0, scope: 'key' });
    });

    it('has no burst across a minute boundary: at most rpm in any 60 seconds', async () => {
      const clock = manualClock(59_900); // 100 ms before a minute boundary
      const l = await limiterOn(clock);
      const s = subject({ key: { rpm: 5 } });
      const admitted: number[] = [];
      // One try every 250 ms for three minutes.
      for (let i = 0; i < 720; i++) {
        if ((await l.admit(s, 1)).ok) admitted.push(clock.now());
        clock.advance(250);
      }
      for (let i = 0; i < admitted.length; i++) {
        const within = admitted.filter((t) => t >= admitted[i]! && t < admitted[i]! + 60_000);
        expect(within.length).toBeLessThanOrEqual(5);
      }
      // ...and the limit is really available: 5 per 61 s over three minutes.
      expect(admitted.length).toBeGreaterThanOrEqual(10);
      // The fixed-window burst (5 just before the boundary, 5 just after) is refused.
      const burst = subject({ key: { rpm: 5 } });
      const c2 = manualClock(59_000);
      const l2 = await limiterOn(c2);
      for (let i = 0; i < 5; i++) expect((await l2.admit(burst, 1)).ok).toBe(true);
      c2.advance(2_000); // 1 s into the next minute
      expect((await l2.admit(burst, 1)).ok).toBe(false);
    });

    it('frees a window bucket by bucket as it slides', async () => {
      const clock = manualClock(0);
      const l = await limiterOn(clock);
      const s = subject({ key: { rpm: 2 } });
      expect((await l.admit(s, 1)).ok).toBe(true); // second 0
      clock.advance(30_000);
      expect((await l.admit(s, 1)).ok).toBe(true); // second 30
      expect(refusalOf(await l.admit(s, 1)).retryAfterMs).toBe(31_000); // second 0's bucket ends at 61 s
      clock.advance(31_000);
      expect((await l.admit(s, 1)).ok).toBe(true);
      expect((await l.admit(s, 1)).ok).toBe(false);
    });

    it('tpm admits on the estimate and is corrected to the real usage at settle', async () => {
      const l = await limiterOn();
      const s = subject({ key: { tpm: 1000 } });
      const a = await l.admit(s, 600);
      expect(a.ok).toBe(true);
      if (!a.ok) throw new Error('unreachable');
      expect(a.snapshot.tpm).toMatchObject({ limit: 1000, remaining: 400 });
      expect((await l.admit(s, 600)).ok).toBe(false); // 600 + 600 > 1000
      a.ticket.settleTokens(100); // it used only 100
      a.ticket.done();
      await new Promise((r) => setImmediate(r));
      expect((await l.peek(s)).tpm?.remaining).toBe(900);
      const b = await l.admit(s, 600);
      expect(b.ok).toBe(true);
      if (b.ok) b.ticket.done(); // failed upstream: the estimate is refunded
      await new Promise((r) => setImmediate(r));
      expect((await l.peek(s)).tpm?.remaining).toBe(900);
      // A request bigger than the limit itself can never pass: waiting will not help.
      expect(refusalOf(await l.admit(s, 1001)).never).toBe(true);
    });

    it('the account limit counts all its keys together; the strictest scope refuses', async () => {
      const l = await limiterOn();
      const userId = ids++;
      const k1 = subject({ userId, key: { rpm: 10 }, account: { rpm: 3 } });
      const k2 = subject({ userId, key: { rpm: 10 }, account: { rpm: 3 } });
      expect((await l.admit(k1, 1)).ok).toBe(true);
      expect((await l.admit(k2, 1)).ok).toBe(true);
      const third = await l.admit(k1, 1);
      expect(third.ok).toBe(true);
      if (third.ok) expect(third.snapshot.rpm).toMatchObject({ limit: 3, remaining: 0, scope: 'account' });
      expect(refusalOf(await l.admit(k2, 1)).message).toContain('this account');
      // A refused request is not counted in any scope: the key still has 8 left of its own.
      expect((await l.peek(k2)).rpm).toMatchObject({ limit: 3, remaining: 0 });
    });

    it('a group default applies to keys and accounts without their own, and caps those with one', async () => {
      const l = await limiterOn();
      const s = subject({ keyGroup: { rpm: 2 }, accountGroup: { rpm: 100 } });
      expect((await l.admit(s, 1)).ok).toBe(true);
      expect((await l.admit(s, 1)).ok).toBe(true);
      expect(refusalOf(await l.admit(s, 1)).message).toContain("its group's default");
      // A key's own value above its group's (the group was tightened later) counts as the group's.
      const capped = subject({ key: { rpm: 50 }, keyGroup: { rpm: 1 } });
      expect((await l.admit(capped, 1)).ok).toBe(true);
      expect((await l.admit(capped, 1)).ok).toBe(false);
    });

    it('max_concurrency: exactly that many at once; a slot frees when its request ends', async () => {
      const l = await limiterOn();
      const s = subject({ key: { maxConcurrency: 3 } });
      const out = await Promise.all(Array.from({ length: 50 }, () => l.admit(s, 1)));
      const ok = out.filter((a) => a.ok);
      expect(ok.length).toBe(3);
      const refusal = refusalOf(out.find((a) => !a.ok)!);
      expect(refusal.kind).toBe('concurrency');
      expect(refusal.retryAfterMs).toBeGreaterThan(0);
      expect((await l.peek(s)).concurrency).toMatchObject({ limit: 3, remaining: 0 });
      for (const a of ok) if (a.ok) a.ticket.done();
      for (const a of ok) if (a.ok) a.ticket.done(); // twice is once
      await new Promise((r) => setImmediate(r));
      expect((await l.peek(s)).concurrency).toMatchObject({ limit: 3, remaining: 3 });
      expect(l.heldSlots()).toBe(0);
    });

    it('instances share every counter', async () => {
      const clock = manualClock(0);
      const space = newSpace();
      const a = await limiterOn(clock, { space });
      const b = await limiterOn(clock, { space });
      const s = subject({ key: { rpm: 5, maxConcurrency: 2 } });
      const out = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).admit(s, 1)));
      expect(out.filter((x) => x.ok).length).toBe(2);
    });

    it("a dead instance's slots expire with their lease; a live one's are renewed", async () => {
      const clock = manualClock(0);
      const space = newSpace();
      const dead = await limiterOn(clock, { space, leaseMs: 1_000 });
      const live = await limiterOn(clock, { space, leaseMs: 1_000 });
      const s = subject({ key: { maxConcurrency: 2 } });
      expect((await dead.admit(s, 1)).ok).toBe(true); // never given back: its instance dies
      const held = await live.admit(s, 1);
      expect(held.ok).toBe(true);
      expect((await live.admit(s, 1)).ok).toBe(false);
      // The live request's lease is renewed (a timer does it every third of the lease)...
      clock.advance(700);
      await live.renew();
      clock.advance(700);
      // ...the other one's was not: 1.4 s later it has expired, and its slot is free again.
      const after = await live.admit(s, 1);
      expect(after.ok).toBe(true);
      expect((await live.admit(s, 1)).ok).toBe(false);
      if (held.ok) held.ticket.done();
      if (after.ok) after.ticket.done();
    });

    it('peek counts nothing and reports each limit in force', async () => {
      const l = await limiterOn();
      const s = subject({ key: { rpm: 4, tpm: 100, maxConcurrency: 2 } });
      expect(await l.peek(s)).toMatchObject({
        rpm: { limit: 4, remaining: 4, resetInMs: 0 },
        tpm: { limit: 100, remaining: 100 },
        concurrency: { limit: 2, remaining: 2, resetInMs: null },
      });
      expect(await l.peek(subject({}))).toEqual({});
      const a = await l.admit(s, 10);
      expect(a.ok && a.snapshot.rpm).toMatchObject({ remaining: 3, resetInMs: 61_000 });
      expect((await l.peek(s)).rpm).toMatchObject({ remaining: 3 });
    });
  });
}
