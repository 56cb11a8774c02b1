// The anomaly guard on its own, with an injected clock and recorded actions, against both
// counter stores (memory; Redis when MOLE_TEST_REDIS_URL is set): distinct IPs per clock hour,
// spend per hour, alert once per hour and threshold, disable on every request past it, the
// key's and the group's guard both applying.
import { compileOrigins } from '../keys/origins.js';
import { randomBytes } from 'node:crypto';
import { testRedis } from '../shared/redis.spec.js';
import type { RedisClient } from '../shared/redis.js';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { Guard } from '../billing/guard.js';
import type { VerifiedKey } from '../keys/verify.js';
import type { GuardTrip } from './actions.js';
import { createAnomalyGuard } from './guard.js';

const HOUR = 3_600_000;
const redisUrl = process.env.MOLE_TEST_REDIS_URL;
const stores = redisUrl ? (['memory', 'redis'] as const) : (['memory'] as const);
const clients: RedisClient[] = [];

afterAll(() => {
  for (const c of clients) c.destroy();
});

function setup(store: 'memory' | 'redis', groupGuard: Guard | null = null) {
  let now = Date.UTC(2026, 11, 5, 6, 0, 0);
  const calls: { kind: 'disable' | 'alert'; keyId: number; trip: GuardTrip }[] = [];
  let redis: RedisClient | null = null;
  if (store === 'redis') {
    redis = testRedis(redisUrl!);
    clients.push(redis);
  }
  const guard = createAnomalyGuard({
    redis,
    redisPrefix: `mole:test-guard-${randomBytes(6).toString('hex')}`,
    groupGuard: () => groupGuard,
    actions: {
      autoDisable: async (keyId, _userId, trip) => {
        calls.push({ kind: 'disable', keyId, trip });
      },
      alert: async (keyId, _userId, trip) => {
        calls.push({ kind: 'alert', keyId, trip });
      },
    },
    logger: pino({ level: 'silent' }),
    now: () => now,
  });
  return {
    guard,
    calls,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const key = (id: number, guard: Guard | null): VerifiedKey => ({
  id,
  userId: 1,
  name: 'k',
  group: 'default',
  models: null,
  quotaNano: null,
  rpm: null,
  limits: { rpm: null, tpm: null, maxConcurrency: null },
  userGroup: 'default',
  accountLimits: { rpm: null, tpm: null, maxConcurrency: null },
  expiresAt: null,
  origins: compileOrigins([]),
  ephemeral: null,
  guard,
  budget: null,
  alertThresholds: null,
  accountBudget: null,
  accountAlertThresholds: null,
  graceUntil: null,
});

describe.each(stores)('anomaly guard [%s]', (store) => {
  it('disable: refuses each new IP past the limit, never a known one', async () => {
    const { guard, calls } = setup(store);
    const k = key(1, { maxIpsPerHour: 2, maxSpendPerHourNano: null, action: 'disable' });
    expect(await guard.checkIp(k, '10.0.0.1')).toEqual({ ok: true });
    expect(await guard.checkIp(k, '10.0.0.2')).toEqual({ ok: true });
    expect(await guard.checkIp(k, '10.0.0.1')).toEqual({ ok: true });
    expect(calls).toEqual([]);
    expect((await guard.checkIp(k, '10.0.0.3')).ok).toBe(false);
    expect((await guard.checkIp(k, '10.0.0.4')).ok).toBe(false);
    expect(await guard.checkIp(k, '10.0.0.2')).toEqual({ ok: true });
    expect(calls.map((c) => c.kind)).toEqual(['disable', 'disable']);
    expect(calls[0]!.trip).toMatchObject({
      metric: 'ips',
      limit: 2,
      value: 3,
      hour: '2026-12-05T06:00:00.000Z',
    });
  });

  it('alert: one call per key, hour and metric; the next hour counts afresh', async () => {
    const { guard, calls, advance } = setup(store);
    const k = key(2, { maxIpsPerHour: 1, maxSpendPerHourNano: 100, action: 'alert' });
    for (const ip of ['a', 'b', 'c', 'd']) expect(await guard.checkIp(k, ip)).toEqual({ ok: true });
    await guard.noteSpend(k, 60);
    await guard.noteSpend(k, 60);
    await guard.noteSpend(k, 60);
    expect(calls.map((c) => `${c.kind}:${c.trip.metric}`)).toEqual(['alert:ips', 'alert:spend']);
    expect(calls[1]!.trip).toMatchObject({ limit: 100 / 1e9, value: 120 / 1e9 });
    advance(HOUR);
    expect(await guard.checkIp(k, 'd')).toEqual({ ok: true });
    await guard.noteSpend(k, 100);
    expect(calls).toHaveLength(2);
    expect(await guard.checkIp(k, 'e')).toEqual({ ok: true });
    expect(calls.map((c) => c.trip.hour)).toEqual([
      '2026-12-05T06:00:00.000Z',
      '2026-12-05T06:00:00.000Z',
      '2026-12-05T07:00:00.000Z',
    ]);
  });

  it('keys are counted apart; no guard means nothing is counted', async () => {
    const { guard, calls } = setup(store);
    const g: Guard = { maxIpsPerHour: 1, maxSpendPerHourNano: null, action: 'disable' };
    expect((await guard.checkIp(key(3, g), 'x')).ok).toBe(true);
    expect((await guard.checkIp(key(4, g), 'y')).ok).toBe(true);
    for (const ip of ['p', 'q', 'r']) expect((await guard.checkIp(key(5, null), ip)).ok).toBe(true);
    await guard.noteSpend(key(5, null), 1e12);
    expect(calls).toEqual([]);
  });

  it("the group's guard applies beside the key's own; past both, disable acts", async () => {
    const { guard, calls } = setup(store, { maxIpsPerHour: 2, maxSpendPerHourNano: null, action: 'disable' });
    const k = key(6, { maxIpsPerHour: 1, maxSpendPerHourNano: null, action: 'alert' });
    expect((await guard.checkIp(k, 'a')).ok).toBe(true);
    expect((await guard.checkIp(k, 'b')).ok).toBe(true); // past the key's alert only
    expect((await guard.checkIp(k, 'c')).ok).toBe(false); // past the group's disable too
    expect(calls.map((c) => `${c.kind}:${c.trip.limit}`)).toEqual(['alert:1', 'disable:2']);
  });
});
