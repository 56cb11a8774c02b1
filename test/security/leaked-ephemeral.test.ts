import { describe, expect, it } from 'vitest';
import { createKey, createUser, expectRelayError, relay } from '../foundation/util.js';
import { githubForSuite, match, tokenHash } from './helpers.js';
import type { AuditPage } from '../../web/src/api-types.js';

describe('leaked ephemeral keys', () => {
  const { s, gh } = githubForSuite({});

  it('revokes just the leaked ephemeral key', async () => {
    const { user } = await createUser(s);
    const parent = await createKey(s, user.id);
    const mint = async () =>
      (await relay(s, parent.secret, { method: 'POST', path: '/v1/keys/ephemeral', body: {} })).body as {
        key: string;
        id: number;
      };
    const leaked = await mint();
    const sibling = await mint();
    const r = await gh.report(s, [match(leaked.key)]);
    expect(r.status).toBe(200);
    expect(r.body).toEqual([
      {
        token_hash: tokenHash(leaked.key),
        token_type: expect.any(String),
        label: 'true_positive',
      },
    ]);
    expectRelayError(await relay(s, leaked.key), 401, 'key_disabled');
    expect((await relay(s, sibling.key)).status).toBe(200);
    expect((await relay(s, parent.secret)).status).toBe(200);
    const audit = await s.api<AuditPage>('GET', `/api/audit?key_id=${parent.id}`);
    const row = audit.body.data.find((a) => a.action === 'key.leaked');
    expect(row).toMatchObject({ actor: 'github:secret-scanning', changes: { ephemeral_id: leaked.id } });
    expect(JSON.stringify(audit.body)).not.toContain(leaked.key);
    // Reported again: still true_positive, nothing more to do.
    expect((await gh.report(s, [match(leaked.key)])).body[0].label).toBe('true_positive');
  });
});
