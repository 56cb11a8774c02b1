// Wires the domains together from config and storage. Arrows point down: relay → keys /
// billing / channels / usage → db; nothing here holds logic of its own.
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Storage } from './db/index.js';
import { openStorage } from './db/open.js';
import { nowAndThen } from './shared/now-and-then.js';
import { InvalidationBus } from './shared/bus.js';
import { createAccountActions } from './accounts/actions.js';
import { createAccountsService } from './accounts/service.js';
import {
  databaseId,
  databaseIncarnation,
  loadMasterKey,
  type MasterKey,
  probeDatabase,
} from './accounts/master-key.js';
import { createAuditService } from './audit/service.js';
import { createEventsService } from './events/service.js';
import { createWebhookOutbox } from './events/webhook.js';
import { createExpiryScanner } from './events/expiry.js';
import { createKeysService } from './keys/service.js';
import { createKeyActions } from './keys/actions.js';
import { createKeyVerifier, type KeyVerifier } from './keys/verify.js';
import { createEphemeralKeys } from './keys/ephemeral.js';
import { createSpendCaps } from './billing/spend-caps.js';
import { type Clock, systemClock } from './shared/clock.js';
import { loadScanningKeys } from './security/github.js';
import { createSecurityActions } from './security/actions.js';
import { createAnomalyGuard } from './security/guard.js';
import { createBillingActions } from './billing/actions.js';
import { createPriceCatalog } from './billing/catalog.js';
import type { Ledger, LedgerStore } from './billing/ledger.js';
import { createLocalLedger } from './billing/ledger-local.js';
import { createRedisLedger } from './billing/ledger-redis.js';
import { createChannelActions } from './channels/actions.js';
import { createChannelsService } from './channels/service.js';
import { resolveSecret, SecretBox } from './channels/secretbox.js';
import { createTokenActions } from './tokens/actions.js';
import { createTokensService } from './tokens/service.js';
import { createUsageWriter } from './usage/writer.js';
import { createSpendReader } from './usage/spend.js';
import { createBudgets } from './budgets/service.js';
import { type BudgetMeter, createLocalMeter, createRedisMeter } from './budgets/meter.js';
import { openJournal } from './usage/journal.js';
import { createUsageQueries } from './usage/queries.js';
import { createUsagePages } from './usage/pages.js';
import { createLogUpkeep } from './usage/retention.js';
import { createLimiter } from './limits/limiter.js';
import { createLocalAdmission } from './admission/admission-local.js';
import { createRedisAdmission } from './admission/admission-redis.js';
import { createLocalLimitStore } from './limits/store-local.js';
import { createRedisLimitStore } from './limits/store-redis.js';
import { createMetrics } from './ops/metrics.js';
import { createReadiness, databaseCheck, redisCheck } from './ops/health.js';
import { connectWithin, createRedis, forgetAnotherIncarnation, type RedisClient } from './shared/redis.js';

/** How long a readiness check may take before it counts as failed. */
const READY_TIMEOUT_MS = 2000;

export interface ServiceOptions {
  announceMasterKey: (key: string) => void;
  /**
   * A generated master key is stored and announced only when `keepMasterKey()` is called (the
   * gateway does once it listens); otherwise at once.
   */
  deferMasterKey?: boolean;
  /** PostgreSQL schema to isolate in (tests). */
  pgSchema?: string;
  /** Stop migrating after this migration (benchmarks of an older schema). */
  migrateUpTo?: string;
  /** The clock keys are created, rotated, expired and verified by (tests move it forward). */
  now?: Clock;
}

/** The verifier, reading `now` whenever its caller passes no time. */
function verifierOn(v: KeyVerifier, now: Clock): KeyVerifier {
  return {
    ...v,
    verify: (presented, clientIp, at = now()) => v.verify(presented, clientIp, at),
    touch: (keyId, ip, at = now()) => v.touch(keyId, ip, at),
  };
}

export async function createServices(config: Config, logger: Logger, opts: ServiceOptions) {
  const secretBox = new SecretBox(resolveSecret(config));
  const storage: Storage = await openStorage({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    ...(opts.pgSchema ? { pgSchema: opts.pgSchema } : {}),
    ...(opts.migrateUpTo ? { migrateUpTo: opts.migrateUpTo } : {}),
    queryTimeoutMs: config.dbTimeoutMs,
    poolSize: config.dbPoolSize,
    // A restart of PostgreSQL fails every connection at once: one line now and then.
    onConnectionError: nowAndThen(10_000, (err: Error) =>
      logger.warn({ err: err.message }, 'database: a connection failed; the pool reconnects'),
    ),
  });
  const { db } = storage;
  if (storage.newerMigrations?.length)
    logger.warn(
      { migrations: storage.newerMigrations },
      'database: a newer release has migrated it; this one runs on (its migrations only add), but upgrade it soon',
    );
  const bus = new InvalidationBus();

  // Shared Redis counters and announcements are namespaced by database, so gateways on
  // different databases (ids restart at 1 in each) never share a key's or user's counters.
  const redisPrefix = `mole:${await databaseId(db)}`;
  let redis: RedisClient | null = null;
  let redisSub: RedisClient | null = null;
  if (config.redisUrl) {
    // node-redis writes the commands issued in one event-loop turn in one write (order kept).
    redis = createRedis(config.redisUrl, logger, { timeoutMs: config.redisTimeoutMs });
    redisSub = createRedis(config.redisUrl, logger, { timeoutMs: config.redisTimeoutMs });
    await connectWithin(redis, config.redisTimeoutMs);
    await connectWithin(redisSub, config.redisTimeoutMs);
    // A database restored from a backup keeps its id, and so Redis's namespace: counters of
    // spend and holds from after the backup would govern admission. Read anew instead.
    if (storage.dialect === 'postgres') {
      const [client, sub] = [redis, redisSub];
      const cleared = await forgetAnotherIncarnation(
        client,
        redisPrefix,
        await databaseIncarnation(db),
        `${redisPrefix}:*:live:*`,
      ).catch(async (err: unknown) => {
        // Refused to start: what was opened is closed before the error is told.
        await Promise.allSettled([client.quit(), sub.quit(), storage.close()]);
        throw err;
      });
      if (cleared !== null)
        logger.warn(
          { keys: cleared },
          'redis: the database was restored or recreated since Redis last saw it; its counters (spend, holds, limits) were cleared and are read anew from the database',
        );
    }
    await bus.connectRedis(redis, redisSub, redisPrefix);
  }

  const masterKey: MasterKey = await loadMasterKey(db, config.masterKey, opts.announceMasterKey);
  if (!opts.deferMasterKey) await masterKey.keep();
  const accounts = createAccountsService(
    db,
    bus,
    { ...config, dialect: storage.dialect },
    {
      onUserDeleted: async (trx, userId, now) => {
        await keys.deleteAllFor(trx, userId, now);
        await tokens.revokeAllFor(trx, userId, now);
      },
    },
  );
  const tokens = createTokensService(db, {
    getUser: (id) => accounts.getUser(id),
    ...(opts.now ? { now: opts.now } : {}),
  });
  const audit = createAuditService(db);
  // Notifications: other domains report through `events.emit` (stored, then delivered).
  const clock = opts.now ?? systemClock;
  const webhook = config.webhook
    ? createWebhookOutbox({ db, logger, options: config.webhook, now: clock })
    : null;
  const events = createEventsService(db, {
    deliver: webhook !== null,
    now: clock,
    onStored: () => webhook?.nudge(),
  });
  const keys = createKeysService(
    db,
    bus,
    {
      maxKeysPerUser: config.maxKeysPerUser,
      dialect: storage.dialect,
      ...(opts.now ? { now: opts.now } : {}),
    },
    accounts,
  );
  const ephemeralKeys = createEphemeralKeys(db, bus, {
    maxLivePerKey: config.maxEphemeralKeysPerKey,
    dialect: storage.dialect,
    ...(opts.now ? { now: opts.now } : {}),
  });
  const verifier0 = createKeyVerifier(keys, bus, { cacheSize: config.keyCacheSize });
  await verifier0.loadImported();
  const verifier = opts.now ? verifierOn(verifier0, opts.now) : verifier0;
  const catalog = await createPriceCatalog(db, bus, logger);
  const channels = await createChannelsService(db, bus, secretBox, audit, logger, events);
  // Leak response: GitHub's signing keys (read once, at start) and the anomaly guard.
  const scanningKeys = config.secretScanningKeysFile ? loadScanningKeys(config.secretScanningKeysFile) : null;
  const securityActions = createSecurityActions({
    keys,
    ephemeral: ephemeralKeys,
    tokens,
    audit,
    events,
    logger,
  });
  const guard = createAnomalyGuard({
    redis,
    redisPrefix,
    groupGuard: (group) => catalog.guard(group),
    actions: securityActions,
    logger,
    now: opts.now ?? systemClock,
  });
  // The ledger reads and writes spend and balances through these four functions only.
  const ledgerStore: LedgerStore = {
    usedNano: keys.usedNano,
    addUsed: keys.addUsed,
    balanceNano: accounts.balanceNano,
    subtractSpend: accounts.subtractSpend,
  };
  const redisLedger = redis
    ? createRedisLedger({
        store: ledgerStore,
        bus,
        logger,
        redis,
        redisPrefix,
        holdLeaseMs: config.holdLeaseMs,
      })
    : null;
  const ledger: Ledger = redisLedger ?? createLocalLedger({ store: ledgerStore, bus, logger });
  // Ephemeral keys' max_cost, held like a key quota (shared through Redis when configured).
  const spendCaps = createSpendCaps({
    store: { usedNano: ephemeralKeys.usedNano, addUsed: ephemeralKeys.addUsed },
    logger,
    redis: redis ? { client: redis, prefix: redisPrefix } : null,
  });

  // Periodic budgets: spend per period is the daily rollup's since the period began, plus what
  // is settled and not written yet; held exactly like the ledger (in memory, or Redis shared).
  const spend = createSpendReader(db);
  const redisMeter = redis
    ? createRedisMeter({
        store: spend,
        logger,
        redis,
        redisPrefix,
        holdLeaseMs: config.holdLeaseMs,
        now: clock,
      })
    : null;
  const meter: BudgetMeter = redisMeter ?? createLocalMeter({ store: spend, logger, now: clock });
  const budgets = createBudgets({
    meter,
    groupBudget: (group) => catalog.groupBudget(group),
    notify: (e) => events.emit(e),
    logger,
    now: clock,
  });
  const usageWriter = createUsageWriter({
    db,
    dialect: storage.dialect,
    // SQLite: batches are written off the event loop, by a worker thread (usage/writer-worker.ts).
    sqliteFile: storage.sqliteFile,
    logger,
    intervalMs: config.flushIntervalMs,
    // Spend, log rows and last-use times land in one transaction, so key `used` and the
    // account balance always equal the sum of logged costs.
    contributors: [
      ledger.flushInto,
      spendCaps.flushInto,
      budgets.flushInto,
      async (trx) => {
        const uses = verifier.drainLastUse();
        await keys.recordLastUse(trx, uses);
        // A batch that does not commit gives them back (a newer use noted meanwhile wins).
        return { committed() {}, aborted: () => verifier.restoreLastUse(uses) };
      },
    ],
    // Every row is durable here before its answer is released (usage/journal.ts).
    journal: openUsageJournal(config, logger),
  });
  // What a crashed process billed but had not written yet, before serving anything.
  await usageWriter.recover();
  const usage = createUsageQueries(db, storage.dialect, keys);
  const usagePages = createUsagePages(usage, { now: clock });
  // Call-log partitions ahead (PostgreSQL) and MOLE_LOG_RETENTION_DAYS. Today's partition is
  // made before serving; should that wait too long, rows go to the DEFAULT partition meanwhile.
  const logUpkeep = createLogUpkeep({
    db,
    dialect: storage.dialect,
    retentionDays: config.logRetentionDays,
    now: clock,
    logger,
  });
  await logUpkeep
    .ensurePartitions()
    .catch((err) => logger.warn({ err: String(err) }, 'call-log partitions: not made at start; retried'));
  const keyActions = createKeyActions({
    keys,
    accounts,
    audit,
    ephemeral: ephemeralKeys,
    groups: catalog,
    flush: () => usageWriter.flush(),
    groupBudget: (group) => catalog.groupBudget(group),
    budgetUsage: (keyId, budget) => budgets.usage('k', keyId, budget),
  });
  const accountActions = createAccountActions({
    accounts,
    audit,
    ledger,
    keys,
    flush: () => usageWriter.flush(),
    budgetUsage: (userId, budget) => budgets.usage('u', userId, budget),
    groups: catalog,
  });
  const billingActions = createBillingActions({ catalog, audit });
  const tokenActions = createTokenActions({ tokens, audit });
  const channelActions = createChannelActions({ channels, audit, catalog });
  const expiryScanner = createExpiryScanner({
    events,
    expiringBetween: keys.expiringBetween,
    now: clock,
    logger,
  });
  bus.on((m) => {
    if (m.kind === 'key' || m.kind === 'all') expiryScanner.soon();
  });
  // rpm / tpm / max_concurrency: shared by every instance with Redis, else in memory. A
  // concurrency slot is a lease of MOLE_HOLD_LEASE_MS, renewed while its request runs.
  const redisLimits = redis
    ? createRedisLimitStore({ redis, redisPrefix, leaseTtlMs: config.holdLeaseMs })
    : null;
  const limiter = createLimiter({
    store: redisLimits ?? createLocalLimitStore(),
    now: opts.now ?? systemClock,
    leaseMs: config.holdLeaseMs,
    onError: (err, what) => logger.warn({ err: String(err) }, `limits: ${what} failed`),
  });
  // Steps 3, 4 and 8 of a relay request: limits and money, one Redis round trip to admit and
  // one to settle with REDIS_URL (admission/admission-redis.ts), else in process.
  const admission =
    redis && redisLimits && redisLedger && redisMeter
      ? createRedisAdmission({
          redis,
          logger,
          limiter,
          limitStore: redisLimits,
          spendCaps,
          budgets,
          meter: redisMeter,
          ledger: redisLedger,
          now: clock,
        })
      : createLocalAdmission({ logger, limiter, spendCaps, budgets, ledger });
  const metrics = createMetrics({
    keyCache: () => verifier.stats,
    keyCacheSize: () => verifier.cacheSize(),
    logQueueDepth: () => usageWriter.pending(),
    logWriteFailures: () => usageWriter.stats().failures,
    ...(redisLedger ? { redisPendingWrites: () => redisLedger.steps.once.pending() } : {}),
    knownModel: (m) => catalog.price(m) !== null,
  });
  const readiness = createReadiness(
    [databaseCheck(() => probeDatabase(db)), ...(redis ? [redisCheck([redis, redisSub])] : [])],
    {
      timeoutMs: READY_TIMEOUT_MS,
      logger,
    },
  );

  webhook?.start();
  expiryScanner.start();
  logUpkeep.start();

  return {
    config,
    logger,
    storage,
    bus,
    masterKey,
    accounts,
    audit,
    events,
    webhook,
    expiryScanner,
    keys,
    ephemeralKeys,
    keyActions,
    accountActions,
    tokens,
    tokenActions,
    billingActions,
    channelActions,
    securityActions,
    scanningKeys,
    guard,
    verifier,
    catalog,
    channels,
    ledger,
    spendCaps,
    budgets,
    /** The services' clock (the system's, or a test's). */
    now: clock,
    usageWriter,
    usage,
    usagePages,
    logUpkeep,
    limiter,
    admission,
    secretBox,
    metrics,
    readiness,
    /** Read-your-writes for management reads: persist everything the hot path holds. */
    flush: () => usageWriter.flush(),
    async close() {
      // Stop hearing announcements first: a reload must not start on a closing database.
      redisSub?.destroy();
      await expiryScanner.stop();
      await logUpkeep.stop();
      await webhook?.stop();
      // A channel's disable or cool-down row written in the background must not meet a closed database.
      await channels.settled();
      await usageWriter.close();
      await limiter.close();
      await ledger.close();
      await budgets.close();
      await storage.close();
      redis?.destroy();
    },
  };
}

export type Services = Awaited<ReturnType<typeof createServices>>;

/** The usage journal in the data dir; a data dir it cannot write to stops the start, loudly. */
function openUsageJournal(config: Config, logger: Logger) {
  const dir = path.join(config.dataDir, 'journal');
  try {
    return openJournal({
      dir,
      sync: config.journalSync,
      syncIntervalMs: config.journalSyncIntervalMs,
      logger,
    });
  } catch (err) {
    throw new Error(
      `the usage journal needs a writable MOLE_DATA_DIR (${dir}): ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}
