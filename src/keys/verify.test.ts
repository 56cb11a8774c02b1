// Invalidation by id is O(1): with 100k keys cached, a change to one key (or one user) touches
// only that key's (or user's) cache entries, counted by the verifier itself. No timing.
import { describe, expect, it } from 'vitest';
import { InvalidationBus } from '../shared/bus.js';
import { generateKey, hashKey } from './format.js';
import type { KeysService } from './service.js';
import { createKeyVerifier } from './verify.js';

const N = 100_000;
const KEYS_PER_USER = 10;

interface Row {
  id: number;
  user_id: number;
  name: string;
  key_hash: string;
  prev_key_hash: string | null;
  prev_key_expires_at: number | null;
  status: 'active' | 'disabled' | 'deleted';
  group_name: string | null;
  group_by_admin: number;
  models: string | null;
  quota_nano: number | null;
  rpm_limit: number | null;
  expires_at: number | null;
  allowed_ips: string | null;
  user_status: string;
  user_group: string;
  user_deleted_at: number | null;
}

function setup(n: number) {
  const byHash = new Map<string, Row>();
  const secrets: string[] = [];
  for (let i = 1; i <= n; i++) {
    const secret = generateKey();
    secrets.push(secret);
    byHash.set(hashKey(secret), {
      id: i,
      user_id: Math.ceil(i / KEYS_PER_USER),
      name: `k${i}`,
      key_hash: hashKey(secret),
      prev_key_hash: null,
      prev_key_expires_at: null,
      status: 'active',
      group_name: null,
      group_by_admin: 0,
      models: null,
      quota_nano: null,
      rpm_limit: null,
      expires_at: null,
      allowed_ips: null,
      user_status: 'active',
      user_group: 'default',
      user_deleted_at: null,
    });
  }
  const keys = {
    findByHash: async (h: string) => byHash.get(h),
    findEphemeralByHash: async () => undefined,
  } as unknown as KeysService;
  const bus = new InvalidationBus();
  const verifier = createKeyVerifier(keys, bus, { cacheSize: n + 10 });
  return { secrets, byHash, bus, verifier };
}

describe('key verifier cache invalidation', () => {
  it('a key or user change with 100k keys cached touches only that key’s or user’s entries', async () => {
    const { secrets, bus, verifier } = setup(N);
    for (const s of secrets) if (!(await verifier.verify(s, '127.0.0.1')).ok) throw new Error('not verified');
    expect(verifier.cacheSize()).toBe(N);
    expect(verifier.indexSizes()).toEqual({ keys: N, users: N / KEYS_PER_USER });

    // One key changes (e.g. renamed: no hashes in the message): one entry touched.
    let before = verifier.stats.invalidationTouched;
    bus.publish({ kind: 'key', keyId: 777, hashes: [] });
    expect(verifier.stats.invalidationTouched - before).toBe(1);
    expect(verifier.cacheSize()).toBe(N - 1);

    // A rotation names the old hash too: still only that key's entries.
    before = verifier.stats.invalidationTouched;
    bus.publish({ kind: 'key', keyId: 778, hashes: [hashKey(secrets[777]!)] });
    expect(verifier.stats.invalidationTouched - before).toBeLessThanOrEqual(2);
    expect(verifier.cacheSize()).toBe(N - 2);

    // One user (10 keys, two already dropped above: keys 777 and 778 belong to user 78).
    before = verifier.stats.invalidationTouched;
    bus.publish({ kind: 'user', userId: 78 });
    expect(verifier.stats.invalidationTouched - before).toBe(KEYS_PER_USER - 2);
    bus.publish({ kind: 'user', userId: 5 });
    expect(verifier.stats.invalidationTouched - before).toBe(2 * KEYS_PER_USER - 2);
    expect(verifier.cacheSize()).toBe(N - 2 * KEYS_PER_USER);
    expect(verifier.indexSizes()).toEqual({ keys: N - 2 * KEYS_PER_USER, users: N / KEYS_PER_USER - 2 });

    // An unrelated key or user: nothing touched.
    before = verifier.stats.invalidationTouched;
    bus.publish({ kind: 'key', keyId: N + 5, hashes: [] });
    bus.publish({ kind: 'user', userId: N });
    expect(verifier.stats.invalidationTouched - before).toBe(0);

    // The dropped entries really are gone: the next verification reads the store again.
    const lookups = verifier.stats.dbLookups;
    expect((await verifier.verify(secrets[776]!, '127.0.0.1')).ok).toBe(true);
    expect((await verifier.verify(secrets[40]!, '127.0.0.1')).ok).toBe(true);
    expect((await verifier.verify(secrets[1000]!, '127.0.0.1')).ok).toBe(true);
    expect(verifier.stats.dbLookups - lookups).toBe(2);
  }, 60_000);

  it('the index follows LRU eviction and overwrite, so it never outgrows the cache', async () => {
    const {
      secrets,
      bus,
      verifier: small,
    } = (() => {
      const s = setup(50);
      return {
        ...s,
        verifier: createKeyVerifier(
          {
            findByHash: async (h: string) => s.byHash.get(h),
            findEphemeralByHash: async () => undefined,
          } as unknown as KeysService,
          s.bus,
          { cacheSize: 20 },
        ),
      };
    })();
    for (const s of secrets) expect((await small.verify(s, '127.0.0.1')).ok).toBe(true);
    expect(small.cacheSize()).toBe(20);
    expect(small.indexSizes().keys).toBe(20);
    // An evicted key's change touches nothing; a cached one's touches one entry.
    const before = small.stats.invalidationTouched;
    bus.publish({ kind: 'key', keyId: 1, hashes: [] });
    expect(small.stats.invalidationTouched - before).toBe(0);
    bus.publish({ kind: 'key', keyId: 50, hashes: [] });
    expect(small.stats.invalidationTouched - before).toBe(1);
    expect(small.indexSizes().keys).toBe(19);
    bus.publish({ kind: 'user', userId: 5 });
    expect(small.cacheSize()).toBe(10);
    expect(small.indexSizes()).toEqual({ keys: 10, users: 1 });
  });
});

describe('key verifier reads in flight', () => {
  it('a lookup after a change never joins a read that began before it', async () => {
    const { secrets, byHash, bus } = setup(1);
    const secret = secrets[0]!;
    const row = byHash.get(hashKey(secret))!;
    // The first read is slow and sees the key as it was (active).
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const gated = createKeyVerifier(
      {
        findByHash: async (h: string) => {
          const before = { ...byHash.get(h)! };
          await gate;
          return before;
        },
      } as unknown as KeysService,
      bus,
      { cacheSize: 10 },
    );
    const first = gated.verify(secret, '127.0.0.1');
    // The key is deleted while that read is in flight.
    row.status = 'deleted';
    bus.publish({ kind: 'key', keyId: row.id, hashes: [row.key_hash] });
    const second = gated.verify(secret, '127.0.0.1');
    release();
    expect((await first).ok).toBe(true); // began before the delete
    const after = await second;
    expect(after.ok).toBe(false);
    expect(!after.ok && after.code).toBe('invalid_api_key');
  });

  it('`all` (announcements may have been missed) drops every entry and the index with them', async () => {
    const { secrets, byHash, bus, verifier } = setup(30);
    for (const s of secrets) expect((await verifier.verify(s, '127.0.0.1')).ok).toBe(true);
    expect(verifier.cacheSize()).toBe(30);
    // Disabled in the store while the announcement went astray: the cache still says yes.
    byHash.get(hashKey(secrets[3]!))!.status = 'disabled';
    expect((await verifier.verify(secrets[3]!, '127.0.0.1')).ok).toBe(true);
    bus.publish({ kind: 'all' });
    expect(verifier.cacheSize()).toBe(0);
    expect(verifier.indexSizes()).toEqual({ keys: 0, users: 0 });
    const lookups = verifier.stats.dbLookups;
    expect(await verifier.verify(secrets[3]!, '127.0.0.1')).toMatchObject({
      ok: false,
      code: 'key_disabled',
    });
    expect((await verifier.verify(secrets[4]!, '127.0.0.1')).ok).toBe(true);
    expect(verifier.stats.dbLookups - lookups).toBe(2);
  });
});
