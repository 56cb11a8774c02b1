// The permission switch. Turns a presented credential into a verified key or a typed denial,
// in the contract's order: present → well-formed (checksum, no I/O) → known → enabled →
// not expired → owner active → client IP allowed. Known keys live in a bounded in-memory
// cache, so a hit costs no database round trip; every change to a key or its owner is
// announced on the invalidation bus and drops the cached entry.
//
// Keys imported from new-api / one-api (`mole import new-api`) are "sk-" + 48 characters
// without our checksum. Their hashes are held in memory (loaded at start and whenever an
// import or a change to one of them is announced): a string that fails the checksum is
// looked up only when its hash is in that set, so every other string is still refused
// before any storage lookup.
import { LRUCache } from 'lru-cache';
import type { InvalidationBus } from '../shared/bus.js';
import { type Guard, readGuard } from '../billing/guard.js';
import type { LimitValues } from '../limits/policy.js';
import { CidrSet } from './cidr.js';
import { hashKey, isWellFormedKey, KEY_REGEX } from './format.js';
import { compileModelList, type ModelMatcher } from './models.js';
import { compileOrigins, type OriginList } from './origins.js';
import type { KeysService } from './service.js';
import { type Budget, budgetOf, thresholdsOf } from '../budgets/service.js';

export interface VerifiedKey {
  id: number;
  userId: number;
  name: string;
  /** The group whose policy and prices apply: one an admin granted the key, else its owner's current one. */
  group: string;
  models: ModelMatcher | null;
  quotaNano: number | null;
  rpm: number | null;
  /** The key's own limits (rpm above, tpm, max_concurrency; null = its group's default). */
  limits: LimitValues;
  /** The owner's current group (whose defaults and ceilings apply to the account's limits). */
  userGroup: string;
  /** The owner account's own limits, over all its keys. */
  accountLimits: LimitValues;
  expiresAt: number | null;
  /** Browser origins whose requests this key serves (an `Origin` header not listed is refused). */
  origins: OriginList;
  /**
   * Set for an ephemeral key: its own id and max_cost. Everything else above is its parent's
   * (it bills and counts as the parent, `id`), narrowed by its own models, origins and expiry.
   */
  ephemeral: { id: number; maxCostNano: number | null } | null;
  /** The key's own anomaly guard; its group's applies as well (security/guard.ts). */
  guard: Guard | null;
  /** The key's own periodic budget (its group's default applies besides, budgets/). */
  budget: Budget | null;
  /** null = the default thresholds. */
  alertThresholds: number[] | null;
  /** The owner account's periodic budget. */
  accountBudget: Budget | null;
  accountAlertThresholds: number[] | null;
  /** Set when the secret presented is the previous one of a rotated key: valid until then. */
  graceUntil: number | null;
}

interface CachedKey extends VerifiedKey {
  status: 'active' | 'disabled' | 'deleted';
  ownerActive: boolean;
  allowedIps: CidrSet | null;
}

export type KeyDenialCode =
  | 'missing_api_key'
  | 'invalid_api_key'
  | 'key_disabled'
  | 'key_expired'
  | 'account_disabled'
  | 'ip_not_allowed';

export type Verification =
  | { ok: true; key: VerifiedKey }
  | { ok: false; code: KeyDenialCode; message: string; key?: VerifiedKey };

const numOrNull = (v: number | null) => (v === null ? null : Number(v));

const DENY_ALL = (CidrSet.parse([]) as { ok: true; value: CidrSet }).value;
const NO_ORIGINS = compileOrigins([]);
const originsOf = (json: string | null | undefined): OriginList =>
  json == null ? NO_ORIGINS : compileOrigins(JSON.parse(json) as string[]);

/** Both lists must allow (null = no list of its own). */
function bothModels(a: ModelMatcher | null, b: ModelMatcher | null): ModelMatcher | null {
  if (!a || !b) return a ?? b;
  return { allows: (m) => a.allows(m) && b.allows(m) };
}

/** An ephemeral key's origins: its own list (else its parent's), within its parent's when the parent lists any. */
function ephemeralOrigins(parent: OriginList, own: OriginList | null): OriginList {
  if (!own) return parent;
  if (parent.entries.length === 0) return own;
  return {
    entries: own.entries,
    allows: (o) => own.allows(o) && parent.allows(o),
    covers: (e) => own.covers(e) && parent.covers(e),
  };
}

const deny = (code: KeyDenialCode, message: string, key?: VerifiedKey): Verification => ({
  ok: false,
  code,
  message,
  ...(key ? { key } : {}),
});

export interface KeyVerifierStats {
  hits: number;
  misses: number;
  dbLookups: number;
  /** Presented secrets without our checksum that matched an imported key's hash. */
  importedMatches: number;
  /** Cache entries looked at while handling invalidations (O(entries of that key or user), never the whole cache). */
  invalidationTouched: number;
}

export function createKeyVerifier(keys: KeysService, bus: InvalidationBus, opts: { cacheSize: number }) {
  // Which cached hashes belong to a key, and which cached keys to a user, so dropping a key
  // or a user touches only its own entries. Kept in step by the LRU's dispose hook (called
  // on delete, eviction and overwrite).
  const hashesByKey = new Map<number, Set<string>>();
  const keysByUser = new Map<number, Set<number>>();
  const unindex = (hash: string, v: CachedKey) => {
    const hs = hashesByKey.get(v.id);
    if (!hs) return;
    hs.delete(hash);
    if (hs.size > 0) return;
    hashesByKey.delete(v.id);
    const ks = keysByUser.get(v.userId);
    if (!ks) return;
    ks.delete(v.id);
    if (ks.size === 0) keysByUser.delete(v.userId);
  };
  const index = (hash: string, v: CachedKey) => {
    let hs = hashesByKey.get(v.id);
    if (!hs) {
      hs = new Set();
      hashesByKey.set(v.id, hs);
    }
    hs.add(hash);
    let ks = keysByUser.get(v.userId);
    if (!ks) {
      ks = new Set();
      keysByUser.set(v.userId, ks);
    }
    ks.add(v.id);
  };
  const cache = new LRUCache<string, CachedKey>({
    max: opts.cacheSize,
    dispose: (v, hash) => unindex(hash, v),
  });
  /** Well-formed but unknown hashes, briefly, so a flood of made-up keys cannot hammer the DB. */
  const unknown = new LRUCache<string, true>({ max: 10_000, ttl: 30_000 });
  // Concurrent misses share one read, but only reads begun since the last change: a read that
  // started before a key or user change may return the row as it was, so a lookup after the
  // change starts its own.
  const inflight = new Map<string, { generation: number; p: Promise<CachedKey | null> }>();
  const stats: KeyVerifierStats = {
    hits: 0,
    misses: 0,
    dbLookups: 0,
    importedMatches: 0,
    invalidationTouched: 0,
  };
  /** SHA-256 of every live imported secret: the only checksum-less strings worth a lookup. */
  let imported = new Set<string>();
  let importedLoads = 0;
  async function loadImported(): Promise<void> {
    const mine = ++importedLoads;
    const hashes = await keys.importedHashes();
    // A newer load (started after a later announcement) wins.
    if (mine === importedLoads) imported = new Set(hashes);
  }
  const reloadImported = () => {
    // A failed reload keeps the previous set (its keys stay usable); the next announcement retries.
    loadImported().catch(() => {});
  };
  const dropKey = (keyId: number) => {
    const hs = hashesByKey.get(keyId);
    if (!hs) return;
    for (const h of [...hs]) {
      stats.invalidationTouched++;
      cache.delete(h);
    }
  };
  const lastUse = new Map<number, { at: number; ip: string }>();
  let generation = 0;

  bus.on((msg) => {
    if (msg.kind === 'all') {
      // Changes may have been missed: nothing cached is trusted any more.
      generation++;
      stats.invalidationTouched += cache.size;
      cache.clear();
      unknown.clear();
      reloadImported();
      return;
    }
    if (msg.kind === 'imported-keys') reloadImported();
    if (msg.kind === 'key' && msg.hashes.some((h) => imported.has(h))) reloadImported();
    if (msg.kind === 'key') {
      generation++;
      for (const h of msg.hashes) {
        stats.invalidationTouched++;
        cache.delete(h);
        unknown.delete(h);
      }
      dropKey(msg.keyId);
    } else if (msg.kind === 'user') {
      generation++;
      const ks = keysByUser.get(msg.userId);
      if (ks) for (const id of [...ks]) dropKey(id);
    }
  });

  async function load(hash: string): Promise<CachedKey | null> {
    stats.dbLookups++;
    const startGen = generation;
    // A key, else an ephemeral key (with its parent's row: it is cached under its parent's id,
    // so whatever drops the parent drops it too).
    const row = await keys.findByHash(hash);
    const eph = row && row.e_id != null ? row : null;
    if (
      !row ||
      row.status === 'deleted' ||
      row.user_deleted_at !== null ||
      // Minted under a secret its parent no longer holds (rotated): gone like a rotated-out key.
      (eph !== null && eph.e_parent_key_hash !== row.key_hash)
    ) {
      if (startGen === generation) unknown.set(hash, true);
      return null;
    }
    const isPrev = eph === null && row.key_hash !== hash;
    const ips = row.allowed_ips === null ? null : CidrSet.parse(JSON.parse(row.allowed_ips) as string[]);
    const parentModels = compileModelList(row.models === null ? null : (JSON.parse(row.models) as string[]));
    const parentExpiry = row.expires_at === null ? null : Number(row.expires_at);
    const entry: CachedKey = {
      id: Number(row.id),
      userId: Number(row.user_id),
      name: row.name,
      // A group the owner pinned was their own group then: it follows them, never outlives a move.
      group: row.group_name !== null && Number(row.group_by_admin) === 1 ? row.group_name : row.user_group,
      models: eph
        ? bothModels(
            parentModels,
            compileModelList(eph.e_models === null ? null : (JSON.parse(eph.e_models) as string[])),
          )
        : parentModels,
      quotaNano: row.quota_nano === null ? null : Number(row.quota_nano),
      rpm: numOrNull(row.rpm_limit),
      limits: {
        rpm: numOrNull(row.rpm_limit),
        tpm: numOrNull(row.tpm_limit),
        maxConcurrency: numOrNull(row.max_concurrency),
      },
      userGroup: row.user_group,
      accountLimits: {
        rpm: numOrNull(row.user_rpm),
        tpm: numOrNull(row.user_tpm),
        maxConcurrency: numOrNull(row.user_max_concurrency),
      },
      expiresAt: eph
        ? Math.min(Number(eph.e_expires_at), parentExpiry ?? Number.POSITIVE_INFINITY)
        : parentExpiry,
      origins: eph
        ? ephemeralOrigins(
            originsOf(row.allowed_origins),
            eph.e_allowed_origins === null ? null : originsOf(eph.e_allowed_origins),
          )
        : originsOf(row.allowed_origins),
      ephemeral: eph
        ? {
            id: Number(eph.e_id),
            maxCostNano: eph.e_max_cost_nano === null ? null : Number(eph.e_max_cost_nano),
          }
        : null,
      guard: readGuard(row.guard),
      budget: budgetOf(row.budget_nano, row.budget_period),
      alertThresholds: thresholdsOf(row.alert_thresholds),
      accountBudget: budgetOf(row.user_budget_nano, row.user_budget_period),
      accountAlertThresholds: thresholdsOf(row.user_alert_thresholds),
      // A revoked ephemeral key answers like a disabled key.
      status: eph && eph.e_status !== 'active' ? 'disabled' : row.status,
      ownerActive: row.user_status === 'active',
      // A stored rule that no longer parses denies everyone rather than allowing everyone.
      allowedIps: ips === null ? null : ips.ok ? ips.value : DENY_ALL,
      graceUntil: isPrev ? Number(row.prev_key_expires_at ?? 0) : null,
    };
    // A change announced while we were reading may have been missed by this row: don't cache it.
    if (startGen === generation) {
      cache.set(hash, entry);
      index(hash, entry);
    }
    return entry;
  }

  async function lookup(hash: string): Promise<CachedKey | null> {
    const hit = cache.get(hash);
    if (hit) {
      stats.hits++;
      return hit;
    }
    stats.misses++;
    if (unknown.has(hash)) return null;
    const shared = inflight.get(hash);
    if (shared && shared.generation === generation) return shared.p;
    const read = { generation, p: load(hash) };
    inflight.set(hash, read);
    void read.p
      .finally(() => {
        if (inflight.get(hash) === read) inflight.delete(hash);
      })
      .catch(() => {});
    return read.p;
  }

  return {
    stats,

    /** Loads the imported keys' hashes; call once before serving. */
    loadImported,

    async verify(presented: string | undefined, clientIp: string, now = Date.now()): Promise<Verification> {
      if (!presented)
        return deny('missing_api_key', 'No API key provided. Send it as "Authorization: Bearer sk-...".');
      let hash: string;
      if (isWellFormedKey(presented)) hash = hashKey(presented);
      else {
        // No checksum: only an imported key's secret may go on, and only if we hold its hash.
        if (imported.size === 0 || !KEY_REGEX.test(presented))
          return deny('invalid_api_key', 'Invalid API key.');
        hash = hashKey(presented);
        if (!imported.has(hash)) return deny('invalid_api_key', 'Invalid API key.');
        stats.importedMatches++;
      }
      const k = await lookup(hash);
      if (!k || (k.graceUntil !== null && k.graceUntil <= now))
        return deny('invalid_api_key', 'Invalid API key.');
      const key: VerifiedKey = k;
      if (k.status !== 'active') return deny('key_disabled', 'This API key is disabled.', key);
      if (k.expiresAt !== null && k.expiresAt <= now)
        return deny('key_expired', 'This API key has expired.', key);
      if (!k.ownerActive)
        return deny('account_disabled', 'The account that owns this API key is disabled.', key);
      if (k.allowedIps !== null && !k.allowedIps.contains(clientIp))
        return deny('ip_not_allowed', `Requests from ${clientIp} are not allowed for this API key.`, key);
      return { ok: true, key };
    },

    /** Recorded in memory; the usage writer persists it in its next batch. */
    touch(keyId: number, ip: string, at = Date.now()): void {
      lastUse.set(keyId, { at, ip });
    },

    drainLastUse(): Map<number, { at: number; ip: string }> {
      const out = new Map(lastUse);
      lastUse.clear();
      return out;
    },

    /** Takes back drained uses a batch did not write, unless a newer use was noted since. */
    restoreLastUse(uses: Map<number, { at: number; ip: string }>): void {
      for (const [keyId, u] of uses) {
        const now = lastUse.get(keyId);
        if (!now || now.at < u.at) lastUse.set(keyId, u);
      }
    },

    cacheSize: () => cache.size,

    /** Sizes of the invalidation indexes (for tests: they must shrink with the cache). */
    indexSizes: () => ({ keys: hashesByKey.size, users: keysByUser.size }),
  };
}

export type KeyVerifier = ReturnType<typeof createKeyVerifier>;
