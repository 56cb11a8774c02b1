// keys/actions.ts writes the audit row in the same transaction as the change: when the audit
// row cannot be written, the change does not happen either (no unaudited key changes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyActions } from '../../src/keys/actions.js';
import { backends, startTestServer, type TestServer } from '../helpers/server.js';
import { createKey, createUser, relay } from './util.js';

describe.each(backends())('key actions and their audit rows [%s]', (backend) => {
  let s: TestServer;
  let ownerId: number;
  const master = { principal: { kind: 'master' as const }, ip: '127.0.0.1' };
  const failingAudit = () =>
    createKeyActions({
      keys: s.services.keys,
      accounts: s.services.accounts,
      ephemeral: s.services.ephemeralKeys,
      groups: s.services.catalog,
      audit: {
        record: async () => {
          throw new Error('audit store unavailable');
        },
      },
      flush: () => s.services.flush(),
    });

  beforeAll(async () => {
    s = await startTestServer({ backend });
    ownerId = (await createUser(s)).user.id;
  });
  afterAll(() => s?.close());

  it('a create whose audit row fails leaves no key', async () => {
    const before = (await s.api('GET', `/api/keys?user_id=${ownerId}`)).body.data.length;
    await expect(
      failingAudit().create(master, { userId: ownerId, fields: { name: 'never-created' } }),
    ).rejects.toThrow('audit store unavailable');
    expect((await s.api('GET', `/api/keys?user_id=${ownerId}`)).body.data.length).toBe(before);
  });

  it('an update, rotation or deletion whose audit row fails changes nothing', async () => {
    const { id, secret } = await createKey(s, ownerId, { name: 'kept' });
    const actions = failingAudit();
    await expect(actions.update(master, id, { name: 'renamed', status: 'disabled' })).rejects.toThrow();
    await expect(actions.rotate(master, id, 0)).rejects.toThrow();
    await expect(actions.remove(master, id)).rejects.toThrow();
    const key = (await s.api('GET', `/api/keys/${id}`)).body;
    expect(key).toMatchObject({ name: 'kept', status: 'active' });
    expect((await relay(s, secret)).status).toBe(200);
  });

  it('with a working audit, each change and its row land together', async () => {
    const { id } = await createKey(s, ownerId);
    await s.services.keyActions.update(master, id, { name: 'audited' });
    const trail = (await s.api('GET', `/api/audit?key_id=${id}`)).body.data as { action: string }[];
    expect(trail.map((e) => e.action)).toEqual(['key.update', 'key.create']);
  });
});
