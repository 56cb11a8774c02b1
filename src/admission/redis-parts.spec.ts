// The parts an admission runs on with Redis (limits, spend caps, budgets, ledger), wired as
// services.ts wires them: for the admission spec on Redis (admission-redis.test.ts) and the
// admission benchmark (bench/admission.ts), which puts both admissions over the same parts.
import type { RedisClient } from '../shared/redis.js';
import type { Logger } from 'pino';
import type { LedgerStore } from '../billing/ledger.js';
import { createRedisLedger } from '../billing/ledger-redis.js';
import { createSpendCaps, type SpendCapStore } from '../billing/spend-caps.js';
import { type BudgetMeter, type BudgetStore, createRedisMeter } from '../budgets/meter.js';
import type { Budgets } from '../budgets/service.js';
import { createLimiter } from '../limits/limiter.js';
import { createRedisLimitStore } from '../limits/store-redis.js';
import { InvalidationBus } from '../shared/bus.js';
import { createLocalAdmission } from './admission-local.js';
import { createRedisAdmission } from './admission-redis.js';

export function redisParts(d: {
  redis: RedisClient;
  /** The prefix of every Redis key. */
  space: string;
  now: () => number;
  logger: Logger;
  ledgerStore: LedgerStore;
  capStore: SpendCapStore;
  budgetStore: BudgetStore;
  budgets: (meter: BudgetMeter) => Budgets;
  /** The limiter's lease renewal (null: none; else every third of the lease). */
  renewEveryMs?: number | null;
}) {
  const { redis, space, now, logger } = d;
  const limitStore = createRedisLimitStore({ redis, redisPrefix: space, leaseTtlMs: 30_000 });
  const limiter = createLimiter({ store: limitStore, now, leaseMs: 30_000, renewEveryMs: d.renewEveryMs });
  const bus = new InvalidationBus();
  const ledger = createRedisLedger({ store: d.ledgerStore, bus, logger, redis, redisPrefix: space, now });
  const spendCaps = createSpendCaps({
    store: d.capStore,
    logger,
    redis: { client: redis, prefix: space },
    now,
  });
  const meter = createRedisMeter({ store: d.budgetStore, logger, redis, redisPrefix: space, now });
  const parts = { limiter, ledger, spendCaps, budgets: d.budgets(meter) };
  return {
    ...parts,
    /** One script to admit, one to settle (admission-redis.ts). */
    script: () => createRedisAdmission({ redis, logger, limitStore, meter, now, ...parts }),
    /** The domains' own calls, one after another (admission-local.ts). */
    sequential: () => createLocalAdmission({ logger, ...parts }),
  };
}
