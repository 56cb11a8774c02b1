// GitHub secret-scanning reports (contract §8): a signed report disables and locks each live
// key it names, audits `key.leaked` with the report's url and source (never the token),
// raises a `key.leaked` event and labels every token; unsigned, forged and unknown-key
// reports are refused (401), malformed ones too (400); without a key file the route is off.
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateKey } from '../../src/keys/format.js';
import { backends } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import { expectOwnerCannotEnable } from '../helpers/locked-key.js';
import { createKey, createUser, expectRelayError, relay } from '../foundation/util.js';
import { fakeGithub, githubForSuite, match, tokenHash } from './helpers.js';

describe.each(backends())('GitHub secret-scanning reports [%s]', (backend) => {
  const { s, gh } = githubForSuite({ backend });

  it('a signed report disables and locks a live key, labels every token, audits and announces', async () => {
    const { user, username, password } = await createUser(s, { balance: 5 });
    const live = await createKey(s, user.id);
    const gone = await createKey(s, user.id);
    await s.api('DELETE', `/api/keys/${gone.id}`);
    const bystander = await createKey(s, user.id);
    expect((await relay(s, live.secret)).status).toBe(200);

    const neverOurs = generateKey(); // our shape and checksum, but no such key
    const notAKey = 'ghp_' + 'x'.repeat(36);
    const url = 'https://github.com/acme/app/blob/abc123/.env';
    const reports = [match(live.secret, url), match(gone.secret), match(neverOurs), match(notAKey)];
    const r = await gh.report(s, reports);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toEqual([
      { token_hash: tokenHash(live.secret), token_type: 'moleapi_api_key', label: 'true_positive' },
      { token_hash: tokenHash(gone.secret), token_type: 'moleapi_api_key', label: 'true_positive' },
      { token_hash: tokenHash(neverOurs), token_type: 'moleapi_api_key', label: 'false_positive' },
      { token_hash: tokenHash(notAKey), token_type: 'moleapi_api_key', label: 'false_positive' },
    ]);
    // The answer never echoes a token.
    for (const t of [live.secret, gone.secret, neverOurs, notAKey])
      expect(JSON.stringify(r.body)).not.toContain(t);

    // Off at once, and locked.
    expectRelayError(await relay(s, live.secret), 401, 'key_disabled');
    const k = await s.api('GET', `/api/keys/${live.id}`);
    expect(k.body).toMatchObject({ status: 'disabled', locked: true });
    // Another key of the same owner is untouched.
    expect((await relay(s, bystander.secret)).status).toBe(200);

    // The owner cannot switch it back on; an admin can.
    const owner = await expectOwnerCannotEnable(s, { username, password }, live.id);
    expectRelayError(await relay(s, live.secret), 401, 'key_disabled');

    // Audited with the report's url and source, never the token.
    const audit = await s.api('GET', `/api/audit?key_id=${live.id}&action=key.leaked`);
    expect(audit.body.data).toHaveLength(1);
    expect(audit.body.data[0]).toMatchObject({
      actor: 'github:secret-scanning',
      action: 'key.leaked',
      key_id: live.id,
      user_id: user.id,
      changes: {
        url,
        source: 'content',
        type: 'moleapi_api_key',
        name: live.key.name,
        display: live.key.display,
        status: { from: 'active', to: 'disabled' },
      },
    });
    expect(JSON.stringify(audit.body)).not.toContain(live.secret);
    // The owner sees it in their own trail (the console's Security page reads this).
    const mine = await owner.call('GET', '/api/audit?action=key.leaked,key.auto_disabled');
    expect(mine.body.data.map((e: { key_id: number }) => e.key_id)).toEqual([live.id]);

    // Announced as an event for the owner.
    const events = await s.services.events.list({ limit: 10, keyId: live.id, type: 'key.leaked' });
    expect(events.data).toHaveLength(1);
    expect(events.data[0]).toMatchObject({
      type: 'key.leaked',
      user_id: user.id,
      key_id: live.id,
      data: { url, source: 'content', disabled: true },
    });
    expect(JSON.stringify(events.data)).not.toContain(live.secret.slice(8, -8));

    // Reported again (GitHub may): same answer, no second audit row or event; still off.
    const again = await gh.report(s, [match(live.secret, url)]);
    expect(again.status).toBe(200);
    expect(again.body).toEqual([r.body[0]]);
    expect((await s.api('GET', `/api/audit?key_id=${live.id}&action=key.leaked`)).body.data).toHaveLength(1);
    expect(
      (await s.services.events.list({ limit: 10, keyId: live.id, type: 'key.leaked' })).data,
    ).toHaveLength(1);

    // An admin may enable it again (after rotating it, say).
    expect((await s.api('PATCH', `/api/keys/${live.id}`, { status: 'active' })).status).toBe(200);
    expect((await relay(s, live.secret)).status).toBe(200);
    // Reported once more while on: locked again, with an audit row and an event of its own.
    await gh.report(s, [match(live.secret, url)]);
    expectRelayError(await relay(s, live.secret), 401, 'key_disabled');
    expect((await s.api('GET', `/api/audit?key_id=${live.id}&action=key.leaked`)).body.data).toHaveLength(2);
    expect(
      (await s.services.events.list({ limit: 10, keyId: live.id, type: 'key.leaked' })).data,
    ).toHaveLength(2);
  });

  it('a key disabled by its owner is locked by a report; a grace-period secret counts too', async () => {
    const { user } = await createUser(s);
    const off = await createKey(s, user.id);
    await s.api('PATCH', `/api/keys/${off.id}`, { status: 'disabled' });
    const rotated = await createKey(s, user.id);
    const rot = await s.api('POST', `/api/keys/${rotated.id}/rotate`, { grace_seconds: 600 });
    expect(rot.status).toBe(200);
    const r = await gh.report(s, [match(off.secret), match(rotated.secret)]);
    expect(r.body.map((l: { label: string }) => l.label)).toEqual(['true_positive', 'true_positive']);
    expect((await s.api('GET', `/api/keys/${off.id}`)).body).toMatchObject({
      status: 'disabled',
      locked: true,
    });
    // The old secret is out in the open: the key is switched off, new secret included.
    expectRelayError(await relay(s, rot.body.key), 401, 'key_disabled');
  });

  it('refuses unsigned, forged, unknown-key and re-serialised reports with 401', async () => {
    const { user } = await createUser(s);
    const k = await createKey(s, user.id);
    const body = JSON.stringify([match(k.secret)]);
    const cases: Record<string, Record<string, string | undefined>> = {
      unsigned: { 'github-public-key-identifier': undefined, 'github-public-key-signature': undefined },
      'no signature': { 'github-public-key-signature': undefined },
      'no key id': { 'github-public-key-identifier': undefined },
      'unknown key id': { 'github-public-key-identifier': 'f'.repeat(64) },
      'signed by someone else': {
        'github-public-key-signature': sign(
          'sha256',
          Buffer.from(body),
          generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey,
        ).toString('base64'),
      },
      'signature of another body': { 'github-public-key-signature': gh.sign(body + ' ') },
      garbage: { 'github-public-key-signature': 'bm90IGEgc2lnbmF0dXJl' },
    };
    for (const [what, headers] of Object.entries(cases)) {
      const r = await gh.report(s, body, headers);
      expect({ what, status: r.status, code: r.body?.error?.code }).toEqual({
        what,
        status: 401,
        code: 'invalid_signature',
      });
      expect(typeof r.body.error.message).toBe('string');
    }
    // The same bytes, pretty-printed after signing: the signature no longer holds.
    const pretty = JSON.stringify(JSON.parse(body), null, 2);
    const r = await gh.report(s, pretty, { 'github-public-key-signature': gh.sign(body) });
    expect(r.status).toBe(401);
    // Nothing happened to the key.
    expect((await relay(s, k.secret)).status).toBe(200);
  });

  it('refuses malformed reports with 400 (signed, so the shape is what is wrong)', async () => {
    const { user } = await createUser(s);
    const k = await createKey(s, user.id);
    const bad: string[] = [
      'not json',
      '{"token":"x"}',
      JSON.stringify([{ type: 'moleapi_api_key', url: '', source: 'content' }]),
      JSON.stringify([{ token: 42, type: 'x', url: '', source: '' }]),
      JSON.stringify([match(k.secret), 'nope']),
      JSON.stringify(Array.from({ length: 1001 }, () => match(k.secret))),
    ];
    for (const body of bad) {
      const r = await gh.report(s, body);
      expect({ body: body.slice(0, 40), status: r.status, code: r.body?.error?.code }).toEqual({
        body: body.slice(0, 40),
        status: 400,
        code: 'invalid_request',
      });
    }
    expect((await relay(s, k.secret)).status).toBe(200);
    // Whatever the content type says (or none), the signed bytes are what count.
    for (const type of [undefined, 'text/plain', 'application/json; charset=utf-8'])
      expect((await gh.report(s, [match(generateKey())], { 'content-type': type })).status).toBe(200);
    expect(
      (
        await gh.report(s, [match(generateKey())], {
          'content-type': undefined,
          'github-public-key-signature': undefined,
        })
      ).status,
    ).toBe(401);
    // An empty report is fine.
    expect((await gh.report(s, [])).body).toEqual([]);
    // The report needs no session or master key.
    expect((await gh.report(s, [match(generateKey())])).status).toBe(200);
  });
});

describe('without MOLE_SECRET_SCANNING_KEYS', () => {
  const s = suiteServer({});

  it('the route answers 404 secret_scanning_disabled, signed or not', async () => {
    const gh = fakeGithub();
    try {
      const r = await gh.report(s, [match(generateKey())]);
      expect(r.status).toBe(404);
      expect(r.body.error.code).toBe('secret_scanning_disabled');
      expect(r.body.error.message).toMatch(/MOLE_SECRET_SCANNING_KEYS/);
    } finally {
      gh.cleanup();
    }
  });
});
