import { describe, expect, it } from 'vitest';
import { generateToken } from '../../src/tokens/format.js';
import { backends } from '../helpers/server.js';
import { createUser, expectApiError, session } from '../foundation/util.js';
import { githubForSuite, match, tokenHash } from './helpers.js';

describe.each(backends())('leaked management tokens [%s]', (backend) => {
  const { s, gh } = githubForSuite({ backend });

  it('revokes a reported mg- token at once, audits and announces it, labels it true_positive', async () => {
    const { user, username, password } = await createUser(s);
    const owner = await session(s, username, password);
    const mint = async (call: typeof owner.call, name: string) => {
      const t = await call('POST', '/api/tokens', { name, scopes: ['keys:read'] });
      expect(t.status, JSON.stringify(t.body)).toBe(201);
      return t.body as { id: number; token: string; display: string };
    };
    const leaked = await mint(owner.call, 'ci-token');
    const masters = await mint((m, p, b) => s.api(m, p, b), 'ops-token');
    const bystander = await mint(owner.call, 'other-token');
    const use = (token: string) => s.api('GET', '/api/keys', undefined, { authorization: `Bearer ${token}` });
    for (const t of [leaked, masters, bystander]) expect((await use(t.token)).status).toBe(200);

    const url = 'https://github.com/acme/app/blob/abc123/deploy.sh';
    const unknown = generateToken(); // our shape and checksum, but no such token
    const r = await gh.report(s, [
      { ...match(leaked.token, url), type: 'moleapi_management_token' },
      match(masters.token),
      match(unknown),
    ]);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toEqual([
      { token_hash: tokenHash(leaked.token), token_type: 'moleapi_management_token', label: 'true_positive' },
      { token_hash: tokenHash(masters.token), token_type: 'moleapi_api_key', label: 'true_positive' },
      { token_hash: tokenHash(unknown), token_type: 'moleapi_api_key', label: 'false_positive' },
    ]);

    // Refused at once; the owner's other token still works.
    expectApiError(await use(leaked.token), 401, 'unauthorized');
    expectApiError(await use(masters.token), 401, 'unauthorized');
    expect((await use(bystander.token)).status).toBe(200);
    const listed = await owner.call('GET', '/api/tokens');
    expect(listed.body.data.map((t: { id: number }) => t.id)).toEqual([bystander.id]);

    // Audited `token.leaked` with the report's url and source, never the token.
    const audit = await s.api('GET', '/api/audit?action=token.leaked');
    const rows = audit.body.data as { user_id: number | null; changes: { token_id: number } }[];
    expect(rows).toHaveLength(2);
    const mine = rows.find((a) => a.changes.token_id === leaked.id);
    expect(mine).toMatchObject({
      actor: 'github:secret-scanning',
      action: 'token.leaked',
      user_id: user.id,
      changes: {
        url,
        source: 'content',
        type: 'moleapi_management_token',
        name: 'ci-token',
        display: leaked.display,
        revoked: true,
      },
    });
    expect(rows.find((a) => a.changes.token_id === masters.id)).toMatchObject({ user_id: null });
    // The owner sees it in their own trail.
    const own = await owner.call('GET', '/api/audit?action=token.leaked');
    expect(own.body.data.map((a: { changes: { token_id: number } }) => a.changes.token_id)).toEqual([
      leaked.id,
    ]);

    // Announced as a key.leaked event of kind management_token.
    const events = await s.api('GET', '/api/events?type=key.leaked');
    expect(events.status, JSON.stringify(events.body)).toBe(200);
    const ev = (events.body.data as { user_id: number | null; data: Record<string, unknown> }[]).filter(
      (e) => e.data.kind === 'management_token',
    );
    expect(ev).toHaveLength(2);
    expect(ev.find((e) => e.data.token_id === leaked.id)).toMatchObject({
      type: 'key.leaked',
      user_id: user.id,
      data: { kind: 'management_token', name: 'ci-token', url, source: 'content', revoked: true },
    });
    for (const body of [r.body, audit.body, own.body, events.body])
      for (const t of [leaked.token, masters.token])
        expect(JSON.stringify(body)).not.toContain(t.slice(3, -3));

    // Reported again (GitHub may): still true_positive, no second audit row or event.
    const again = await gh.report(s, [match(leaked.token)]);
    expect(again.body[0].label).toBe('true_positive');
    expect((await s.api('GET', '/api/audit?action=token.leaked')).body.data).toHaveLength(2);
    const evAgain = (await s.api('GET', '/api/events?type=key.leaked')).body.data.filter(
      (e: { data: Record<string, unknown> }) => e.data.kind === 'management_token',
    );
    expect(evAgain).toHaveLength(2);
  });

  it('a token revoked before the report is a true positive with nothing more to do', async () => {
    const t = await s.api('POST', '/api/tokens', { name: 'old-token', scopes: ['users:read'] });
    expect((await s.api('DELETE', `/api/tokens/${t.body.id}`)).status).toBe(200);
    const r = await gh.report(s, [match(t.body.token)]);
    expect(r.body[0].label).toBe('true_positive');
    const audit = await s.api('GET', '/api/audit?action=token.leaked');
    expect(
      audit.body.data.some((a: { changes: { token_id: number } }) => a.changes.token_id === t.body.id),
    ).toBe(false);
  });
});
