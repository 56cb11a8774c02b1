// Wires the domains together from config and storage. Arrows point down: relay → keys /
// billing / channels / usage → db; nothing here holds logic of its own.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Redis } from 'ioredis';
import type { Config } from './config.js';
import { openStorage, type Storage } from './db/index.js';
import { InvalidationBus } from './shared/bus.js';
import { createAccountsService } from './accounts/service.js';
import { loadMasterKey, type MasterKey } from './accounts/master-key.js';
import { createAuditService } from './audit/service.js';
import { createKeysService } from './keys/service.js';
import { createKeyVerifier } from './keys/verify.js';
import { createPriceCatalog } from './billing/catalog.js';
import { createLedger } from './billing/ledger.js';
import { createChannelsService } from './channels/service.js';
import { SecretBox } from './channels/secretbox.js';
import { createUsageWriter } from './usage/writer.js';
import { createUsageQueries } from './usage/queries.js';
import { createRateLimiter } from './relay/rate-limit.js';
import { createMetrics } from './ops/metrics.js';
import { createReadiness, databaseCheck, redisCheck } from './ops/health.js';

/** How long a readiness check may take before it counts as failed. */
const READY_TIMEOUT_MS = 2000;

export interface ServiceOptions {
  announceMasterKey: (key: string) => void;
  /** PostgreSQL schema to isolate in (tests). */
  pgSchema?: string;
}

/** MOLE_SECRET, or in SQLite mode a secret generated once into the data dir. */
function resolveSecret(config: Config): string {
  if (config.secret) return config.secret;
  if (config.databaseUrl)
    throw new Error('MOLE_SECRET is required with DATABASE_URL (it encrypts upstream credentials)');
  const file = path.join(config.dataDir, 'secret');
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  if (!fs.existsSync(file))
    fs.writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
  return fs.readFileSync(file, 'utf8').trim();
}

/** A random id stored once per database: the same for every instance sharing it. */
async function databaseId(db: Storage['db']): Promise<string> {
  await db
    .insertInto('meta')
    .values({ name: 'database_id', value: randomBytes(8).toString('hex') })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  return (
    await db.selectFrom('meta').select('value').where('name', '=', 'database_id').executeTakeFirstOrThrow()
  ).value;
}

export async function createServices(config: Config, logger: Logger, opts: ServiceOptions) {
  const secretBox = new SecretBox(resolveSecret(config));
  const storage: Storage = await openStorage({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    ...(opts.pgSchema ? { pgSchema: opts.pgSchema } : {}),
  });
  const { db } = storage;
  const bus = new InvalidationBus();

  let redis: Redis | null = null;
  let redisSub: Redis | null = null;
  if (config.redisUrl) {
    redis = new Redis(config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
    redisSub = new Redis(config.redisUrl, { lazyConnect: true });
    await redis.connect();
    await redisSub.connect();
    await bus.connectRedis(redis, redisSub);
  }

  const masterKey: MasterKey = await loadMasterKey(db, config.masterKey, opts.announceMasterKey);
  // Shared Redis counters are namespaced by database, so gateways on different databases
  // (ids restart at 1 in each) never share a key's or user's counters.
  const redisPrefix = `mole:${await databaseId(db)}`;
  const accounts = createAccountsService(db, bus, config);
  const audit = createAuditService(db);
  const keys = createKeysService(db, bus, config);
  const verifier = createKeyVerifier(keys, bus, { cacheSize: config.keyCacheSize });
  const catalog = await createPriceCatalog(db, bus);
  const channels = await createChannelsService(db, bus, secretBox, audit, logger);
  const ledger = createLedger({ db, bus, keys, accounts, logger, redis, redisPrefix });
  const usageWriter = createUsageWriter({
    db,
    logger,
    intervalMs: config.flushIntervalMs,
    // Spend, log rows and last-use times land in one transaction, so key `used` and the
    // account balance always equal the sum of logged costs.
    contributors: [ledger.flushInto, async (trx) => keys.recordLastUse(trx, verifier.drainLastUse())],
  });
  const usage = createUsageQueries(db, storage.dialect);
  const rateLimiter = createRateLimiter(redis, redisPrefix);
  const metrics = createMetrics({
    keyCache: () => verifier.stats,
    keyCacheSize: () => verifier.cacheSize(),
    logQueueDepth: () => usageWriter.pending(),
    logWriteFailures: () => usageWriter.stats().failures,
    knownModel: (m) => catalog.price(m) !== null,
  });
  const readiness = createReadiness([databaseCheck(db), ...(redis ? [redisCheck([redis, redisSub])] : [])], {
    timeoutMs: READY_TIMEOUT_MS,
    logger,
  });

  return {
    config,
    logger,
    storage,
    bus,
    masterKey,
    accounts,
    audit,
    keys,
    verifier,
    catalog,
    channels,
    ledger,
    usageWriter,
    usage,
    rateLimiter,
    secretBox,
    metrics,
    readiness,
    /** Read-your-writes for management reads: persist everything the hot path holds. */
    flush: () => usageWriter.flush(),
    async close() {
      await usageWriter.close();
      await channels.close();
      await storage.close();
      redis?.disconnect();
      redisSub?.disconnect();
    },
  };
}

export type Services = Awaited<ReturnType<typeof createServices>>;
