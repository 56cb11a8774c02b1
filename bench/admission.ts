/**
 * What admitting and settling one relay request costs on Redis: the admission script
 * (admission/admission-redis.ts: one round trip each way) against the same domains called one
 * after another (admission-local.ts over the Redis-backed limiter, spend caps, budgets and
 * ledger: the relay's path before it), with every step in force (rpm, tpm, max_concurrency, a
 * daily budget, an ephemeral max_cost).
 *
 *   BENCH_REDIS_URL=redis://127.0.0.1:6379 npx tsx bench/admission.ts [--requests 3000] [--parallel 1]
 *
 * Reports wall time and this process's CPU per request, and Redis commands per request.
 */
import pino from 'pino';
import type { Admission } from '../src/admission/admission.js';
import { redisParts } from '../src/admission/redis-parts.spec.js';
import { testRedis, watchRedisCommands } from '../src/shared/redis.spec.js';
import { createBudgets } from '../src/budgets/service.js';
import type { VerifiedKey } from '../src/keys/verify.js';
import { NO_LIMITS } from '../src/limits/policy.js';
import { numArg } from './lib/args.js';

const REQUESTS = numArg('--requests', 3000);
const PARALLEL = numArg('--parallel', 1);
const url = process.env.BENCH_REDIS_URL;
if (!url) throw new Error('BENCH_REDIS_URL is required');
const silent = pino({ level: 'silent' });

let commands = 0;
watchRedisCommands(
  () => true,
  () => commands++,
);

async function build(kind: 'sequential' | 'script') {
  const redis = testRedis(url!);
  const now = Date.now;
  const parts = redisParts({
    redis,
    space: `bench-adm:${process.pid}:${kind}`,
    now,
    logger: silent,
    ledgerStore: {
      usedNano: async () => 0,
      balanceNano: async () => 1e15,
      addUsed: async () => {},
      subtractSpend: async () => {},
    },
    capStore: { usedNano: async () => 0, addUsed: async () => {} },
    budgetStore: { spentSince: async () => 0 },
    budgets: (meter) =>
      createBudgets({ meter, groupBudget: () => null, notify: async () => {}, logger: silent, now }),
  });
  const admission: Admission = parts[kind]();
  return {
    admission,
    async close() {
      await parts.limiter.close();
      await parts.ledger.close();
      await parts.budgets.close();
      redis.destroy();
    },
  };
}

const limits = { ...NO_LIMITS, rpm: 1e9, tpm: 1e12, maxConcurrency: 1e6 };
const key: VerifiedKey = {
  id: 1,
  userId: 2,
  name: 'bench',
  group: 'default',
  models: null,
  quotaNano: 1e15,
  rpm: limits.rpm,
  limits,
  userGroup: 'default',
  accountLimits: NO_LIMITS,
  expiresAt: null,
  origins: null as unknown as VerifiedKey['origins'],
  ephemeral: { id: 3, maxCostNano: 1e15 },
  guard: null,
  budget: { amountNano: 1e15, period: 'daily' },
  alertThresholds: null,
  accountBudget: null,
  accountAlertThresholds: null,
  graceUntil: null,
};
const subject = { keyId: 1, userId: 2, key: limits, account: NO_LIMITS, keyGroup: null, accountGroup: null };

async function one(a: Admission) {
  const r = await a.admit({ key, subject, tokens: 100, amount: () => 5_000 });
  if (!r.ok) throw new Error(r.error.message);
  await a.settle(r.hold, r.ticket, 80, 4_000, Date.now());
  r.ticket.done();
}

async function measure(kind: 'sequential' | 'script') {
  const { admission, close } = await build(kind);
  for (let i = 0; i < 200; i++) await one(admission); // warm-up: seeded counters, loaded scripts, JIT
  commands = 0;
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next++ < REQUESTS) await one(admission);
    }),
  );
  const ms = performance.now() - t0;
  const used = process.cpuUsage(cpu);
  const out = {
    kind,
    wallUsPerRequest: Math.round((ms * 1000) / REQUESTS),
    cpuUsPerRequest: Math.round((used.user + used.system) / REQUESTS),
    commandsPerRequest: +(commands / REQUESTS).toFixed(2),
  };
  await close();
  return out;
}

const rows = [];
for (const kind of ['sequential', 'script', 'sequential', 'script'] as const) rows.push(await measure(kind));
console.table(rows);
process.exit(0);
