// Key verification on a cache hit costs no database round trip. Shown two ways: the verifier's
// own counters (dbLookups stays flat over many verifications), and every query the Kysely
// instance executes counted at its executor (zero during cache hits). Both counters are first
// shown to move on a miss, so the flat line means something.
import { beforeAll, describe, expect, it } from 'vitest';
import { generateKey } from '../../src/keys/format.js';
import { backends } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import { createKey, createUser, expectRelayError, relay } from './util.js';
import { countQueries } from '../helpers/queries.js';

describe.each(backends())('key verification cache [%s]', (backend) => {
  let userId: number;
  const s = suiteServer({ backend });
  beforeAll(async () => {
    userId = (await createUser(s)).user.id;
  });

  it('a cache hit runs no query at all', async () => {
    const { secret, id } = await createKey(s, userId, { allowed_ips: ['127.0.0.0/8'], models: ['gpt-*'] });
    const v = s.services.verifier;
    const q = countQueries(s);
    try {
      // The first verification is a miss: one lookup, and the counter sees its query.
      const first = await v.verify(secret, '127.0.0.1');
      expect(first.ok).toBe(true);
      expect(q.seen.length).toBeGreaterThanOrEqual(1);
      expect(q.seen.some((sql) => /api_keys/.test(sql))).toBe(true);
      const lookups = v.stats.dbLookups;
      const hits = v.stats.hits;
      q.seen.length = 0;
      for (let i = 0; i < 500; i++) {
        const r = await v.verify(secret, '127.0.0.1');
        if (!r.ok || r.key.id !== id) throw new Error(`verification ${i} failed`);
      }
      // Denials answered from the cache cost nothing either.
      expect((await v.verify(secret, '10.0.0.1')).ok).toBe(false);
      expect(q.seen).toEqual([]);
      expect(v.stats.dbLookups).toBe(lookups);
      expect(v.stats.hits).toBe(hits + 501);
    } finally {
      q.restore();
    }
  });

  it('bad checksums never reach the database; unknown keys are looked up once', async () => {
    const v = s.services.verifier;
    const q = countQueries(s);
    try {
      const valid = generateKey();
      const bad = valid.slice(0, -1) + (valid.endsWith('0') ? '1' : '0');
      const before = v.stats.dbLookups;
      for (let i = 0; i < 100; i++) expect((await v.verify(bad, '127.0.0.1')).ok).toBe(false);
      expect(v.stats.dbLookups).toBe(before);
      expect(q.seen).toEqual([]);
      // A well-formed unknown key: one lookup, then remembered briefly as unknown.
      for (let i = 0; i < 50; i++) {
        const r = await v.verify(valid, '127.0.0.1');
        expect(r.ok ? 'ok' : r.code).toBe('invalid_api_key');
      }
      expect(v.stats.dbLookups).toBe(before + 1);
      expect(q.seen.length).toBe(1);
    } finally {
      q.restore();
    }
  });

  it('over HTTP: many GET /v1/key calls with one key, dbLookups stays flat', async () => {
    const { secret } = await createKey(s, userId);
    expect((await relay(s, secret)).status).toBe(200);
    const lookups = s.services.verifier.stats.dbLookups;
    for (let i = 0; i < 100; i++)
      expect((await relay(s, secret, { how: i % 2 ? 'x-api-key' : 'bearer' })).status).toBe(200);
    expect(s.services.verifier.stats.dbLookups).toBe(lookups);
  });

  it('every change to the key or its owner drops the cached entry at once', async () => {
    const { secret, id } = await createKey(s, userId);
    const v = s.services.verifier;
    expect((await v.verify(secret, '127.0.0.1')).ok).toBe(true);
    const changes: Array<[() => Promise<unknown>, string | null]> = [
      [() => s.api('PATCH', `/api/keys/${id}`, { status: 'disabled' }), 'key_disabled'],
      [() => s.api('PATCH', `/api/keys/${id}`, { status: 'active' }), null],
      [() => s.api('PATCH', `/api/keys/${id}`, { allowed_ips: ['10.0.0.1'] }), 'ip_not_allowed'],
      [() => s.api('PATCH', `/api/keys/${id}`, { allowed_ips: null }), null],
      [
        () => s.api('PATCH', `/api/keys/${id}`, { expires_at: new Date(Date.now() - 1000).toISOString() }),
        'key_expired',
      ],
      [() => s.api('PATCH', `/api/keys/${id}`, { expires_at: null }), null],
      [() => s.api('PATCH', `/api/users/${userId}`, { status: 'disabled' }), 'account_disabled'],
      [() => s.api('PATCH', `/api/users/${userId}`, { status: 'active' }), null],
    ];
    for (const [change, expected] of changes) {
      await change();
      const before = v.stats.dbLookups;
      const r = await v.verify(secret, '127.0.0.1');
      expect(r.ok ? null : r.code).toBe(expected);
      expect(v.stats.dbLookups).toBe(before + 1); // reloaded, not served stale
      await v.verify(secret, '127.0.0.1');
      expect(v.stats.dbLookups).toBe(before + 1); // and cached again
    }
    const group = await s.api('PATCH', `/api/keys/${id}`, { group: 'g-new' });
    expect(group.status).toBe(200);
    const r = await v.verify(secret, '127.0.0.1');
    expect(r.ok && r.key.group).toBe('g-new');
    await s.api('DELETE', `/api/keys/${id}`);
    expectRelayError(await relay(s, secret), 401, 'invalid_api_key');
  });
});
