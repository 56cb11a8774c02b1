// accounts/, channels/ and billing/ actions write the audit row in the same transaction as the
// change (as keys/actions.ts does): when the audit row cannot be written, the change does not
// happen either (no unaudited user, channel, price or group changes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccountActions } from '../../src/accounts/actions.js';
import { createBillingActions } from '../../src/billing/actions.js';
import { createChannelActions } from '../../src/channels/actions.js';
import { backends, startTestServer, type TestServer } from '../helpers/server.js';
import { createUser, uname } from './util.js';

const failingAudit = {
  record: async () => {
    throw new Error('audit store unavailable');
  },
};
const master = { principal: { kind: 'master' as const }, ip: '127.0.0.1' };

describe.each(backends())('changes whose audit row fails are rolled back [%s]', (backend) => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ backend });
  });
  afterAll(() => s?.close());
  /** The server's own services, but with an audit log that always fails. */
  const withFailingAudit = () => ({ ...s.services, audit: failingAudit });

  describe('accounts', () => {
    const actions = () => createAccountActions({ ...withFailingAudit(), groups: s.services.catalog });

    it('a user creation leaves no user (and the name stays free)', async () => {
      const username = uname('rollback');
      const input = { username, password: 'password-123', role: 'user' as const, group: 'default' };
      await expect(actions().create(master, { ...input, balanceNano: 0, balanceUsd: 0 })).rejects.toThrow(
        'audit store unavailable',
      );
      const found = await s.api('GET', `/api/users?q=${username}`);
      expect(found.body.data).toEqual([]);
      expect((await s.api('POST', '/api/users', { username, password: 'password-123' })).status).toBe(201);
    });

    it('an update, password change, top-up or deletion changes nothing', async () => {
      const { user, password } = await createUser(s);
      const before = (await s.api('GET', `/api/users/${user.id}`)).body;
      const a = actions();
      await expect(
        a.update(master, user.id, { role: 'admin', group: 'vip', status: 'disabled' }),
      ).rejects.toThrow();
      await expect(a.update(master, user.id, { password: 'another-password-1' })).rejects.toThrow();
      await expect(a.topup(master, user.id, 5_000_000_000, 5)).rejects.toThrow();
      await expect(a.remove(master, user.id)).rejects.toThrow();
      expect((await s.api('GET', `/api/users/${user.id}`)).body).toEqual(before);
      const login = await s.api('POST', '/api/auth/login', {
        username: user.username,
        password,
      });
      expect(login.status).toBe(200);
    });

    it('with a working audit, each change and its row land together', async () => {
      const { user } = await createUser(s);
      await s.services.accountActions.topup(master, user.id, 1_000_000_000, 1);
      const trail = (await s.api('GET', `/api/audit?user_id=${user.id}`)).body.data as { action: string }[];
      expect(trail.map((e) => e.action)).toEqual(['user.topup', 'user.create']);
    });
  });

  describe('channels', () => {
    const actions = () => createChannelActions(withFailingAudit());
    const mock = { name: 'rollback', type: 'mock' as const, baseUrl: 'mock://local', apiKey: '' };
    const input = {
      ...mock,
      models: ['rollback-model'],
      modelMap: null,
      priority: 0,
      weight: 1,
      groups: null,
    };

    it('a creation leaves no channel', async () => {
      const count = (await s.api('GET', '/api/channels')).body.data.length;
      await expect(actions().create(master, input, { name: 'rollback' })).rejects.toThrow(
        'audit store unavailable',
      );
      expect((await s.api('GET', '/api/channels')).body.data.length).toBe(count);
    });

    it('an update or removal changes nothing', async () => {
      const created = await s.api('POST', '/api/channels', {
        name: 'kept',
        type: 'mock',
        models: ['kept-model'],
      });
      expect(created.status).toBe(201);
      const id = created.body.id as number;
      const a = actions();
      await expect(a.update(master, id, { name: 'renamed', status: 'disabled' }, {})).rejects.toThrow();
      await expect(a.remove(master, id)).rejects.toThrow();
      expect((await s.api('GET', `/api/channels/${id}`)).body).toMatchObject({
        name: 'kept',
        status: 'active',
      });
    });
  });

  describe('billing', () => {
    const actions = () => createBillingActions(withFailingAudit());
    const price = {
      inputNanoPerM: 1,
      outputNanoPerM: 2,
      cachedInputNanoPerM: null,
      cacheWriteNanoPerM: null,
      cacheWrite1hNanoPerM: null,
      webSearchNanoPerK: null,
      priorityPpm: null,
    };

    it('a price or group change, or a price removal, changes nothing', async () => {
      expect((await s.api('PUT', '/api/prices/rollback-model', { input: 1, output: 2 })).status).toBe(200);
      expect((await s.api('PUT', '/api/groups/rollback', { multiplier: 2 })).status).toBe(200);
      const before = [(await s.api('GET', '/api/prices')).body, (await s.api('GET', '/api/groups')).body];
      const a = actions();
      await expect(a.setPrice(master, 'rollback-model', price, { input: 0, output: 0 })).rejects.toThrow();
      await expect(a.setPrice(master, 'rollback-new', price, { input: 0, output: 0 })).rejects.toThrow();
      await expect(a.deletePrice(master, 'rollback-model')).rejects.toThrow();
      await expect(
        a.setGroup(master, 'rollback', { multiplierPpm: 3_000_000 }, { multiplier: 3 }),
      ).rejects.toThrow();
      await expect(
        a.setGroup(master, 'rollback-new', { multiplierPpm: 3_000_000 }, { multiplier: 3 }),
      ).rejects.toThrow();
      expect([(await s.api('GET', '/api/prices')).body, (await s.api('GET', '/api/groups')).body]).toEqual(
        before,
      );
    });
  });
});
