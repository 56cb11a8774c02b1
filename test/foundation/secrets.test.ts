// No plaintext secret at rest or in the logs (contract §2): after creating and rotating keys
// (and minting, using and revoking ephemeral keys), signing in, adding channels and creating,
// using and revoking management tokens (§8), the SQLite files (main + WAL) or a pg_dump of the schema hold
// no key secret, master key, password, session token or channel api_key; neither do the
// server's log output, the answers (but a token's own creation), or the audit trail. Nor do
// GitHub secret-scanning reports leave the tokens they name anywhere (the keys they disable,
// their audit rows and events).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey } from '../../src/keys/format.js';
import { backends, pgUrl, startTestServer, type TestServer } from '../helpers/server.js';
import { createUser, relay, session } from './util.js';
import { type FakeGithub, fakeGithub, match } from '../security/helpers.js';

/** Everything the database holds, as bytes: the SQLite files, or a pg_dump of the test schema. */
async function storedBytes(s: TestServer): Promise<Buffer> {
  await s.services.flush();
  if (s.backend === 'sqlite') {
    const files = fs.readdirSync(s.dataDir).filter((f) => f.startsWith('mole.sqlite'));
    expect(files).toContain('mole.sqlite');
    expect(files).toContain('mole.sqlite-wal');
    return Buffer.concat(files.map((f) => fs.readFileSync(path.join(s.dataDir, f))));
  }
  return execFileSync(
    'pg_dump',
    ['--dbname', pgUrl()!, '--schema', s.pgSchema!, '--no-owner', '--no-privileges'],
    { maxBuffer: 256 * 1024 * 1024 },
  );
}

/** The fragments of a secret that must not appear: the whole, and its random middle. */
const fragments = (secret: string) => [secret, secret.length > 20 ? secret.slice(8, -8) : secret];

describe.each(backends())('secrets at rest and in logs [%s]', (backend) => {
  let s: TestServer;
  let gh: FakeGithub;
  const keySecrets: string[] = [];
  const tokenSecrets: string[] = [];
  const otherSecrets: string[] = [];
  const visible: string[] = [];
  const answers: string[] = [];

  beforeAll(async () => {
    gh = fakeGithub();
    s = await startTestServer({
      backend,
      env: { MOLE_LOG_LEVEL: 'trace', MOLE_SECRET_SCANNING_KEYS: gh.file },
    });
    const record = (r: { body: unknown }) =>
      answers.push(typeof r.body === 'string' ? r.body : JSON.stringify(r.body));
    otherSecrets.push(s.masterKey);

    const { user, username, password } = await createUser(s, { balance: 3 });
    otherSecrets.push(password);
    visible.push(username);
    const u = await session(s, username, password);
    otherSecrets.push(decodeURIComponent(u.cookie.split('=')[1]!));

    // Keys: created by the master key and by the user, rotated with and without grace, deleted.
    for (let i = 0; i < 3; i++) {
      const name = `scan-key-${i}-${randomBytes(3).toString('hex')}`;
      const r = await s.api('POST', '/api/keys', {
        name,
        user_id: user.id,
        allowed_ips: i === 2 ? ['10.9.9.9'] : null,
      });
      record(r);
      keySecrets.push(r.body.key);
      visible.push(name, r.body.display);
      const rot = await s.api('POST', `/api/keys/${r.body.id}/rotate`, { grace_seconds: i === 0 ? 0 : 600 });
      record(rot);
      keySecrets.push(rot.body.key);
      visible.push(rot.body.display);
    }
    const own = await u.call('POST', '/api/keys', { name: 'user-made' });
    record(own);
    keySecrets.push(own.body.key);
    // Ephemeral keys minted by a live key: used below like every key; one revokes itself, one
    // outlives its parent's rotation (dead then), and refused mints carry secrets in odd fields.
    const parentSecret = own.body.key as string;
    for (const body of [
      {},
      { ttl_seconds: 60, max_cost: 0.5, allowed_origins: ['https://app.example.com'] },
    ]) {
      const e = await relay(s, parentSecret, { method: 'POST', path: '/v1/keys/ephemeral', body });
      expect(e.status).toBe(201);
      record(e);
      keySecrets.push(e.body.key);
      visible.push(e.body.display);
    }
    record(await relay(s, keySecrets.at(-1)!, { method: 'POST', path: '/v1/key/revoke' }));
    for (const body of [
      { ttl_seconds: parentSecret },
      { allowed_origins: [parentSecret] },
      { [parentSecret]: 1 },
    ])
      record(await relay(s, parentSecret, { method: 'POST', path: '/v1/keys/ephemeral', body }));
    const outlived = await s.api('POST', '/api/keys', { name: 'ephemeral-parent', user_id: user.id });
    keySecrets.push(outlived.body.key);
    const child = await relay(s, outlived.body.key, { method: 'POST', path: '/v1/keys/ephemeral', body: {} });
    record(child);
    keySecrets.push(child.body.key);
    const rotatedParent = await s.api('POST', `/api/keys/${outlived.body.id}/rotate`, {});
    record(rotatedParent);
    keySecrets.push(rotatedParent.body.key);
    const doomed = await s.api('POST', '/api/keys', { name: 'deleted-one', user_id: user.id });
    keySecrets.push(doomed.body.key);
    await s.api('DELETE', `/api/keys/${doomed.body.id}`);
    const disabled = await s.api('POST', '/api/keys', { name: 'disabled-one', user_id: user.id });
    keySecrets.push(disabled.body.key);
    await s.api('PATCH', `/api/keys/${disabled.body.id}`, { status: 'disabled' });

    // Channels: the upstream credential on create and on change; one points nowhere, so relay fails.
    const upstream1 = 'upstream-secret-' + randomBytes(16).toString('hex');
    const upstream2 = 'upstream-secret-' + randomBytes(16).toString('hex');
    otherSecrets.push(upstream1, upstream2);
    const ch = await s.api('POST', '/api/channels', {
      name: 'dead-upstream',
      type: 'openai',
      base_url: 'http://127.0.0.1:9/v1',
      api_key: upstream1,
      models: ['gpt-scan'],
    });
    expect(ch.status).toBe(201);
    record(ch);
    record(await s.api('PATCH', `/api/channels/${ch.body.id}`, { api_key: upstream2 }));
    record(await s.api('GET', '/api/channels'));
    record(await s.api('GET', `/api/channels/${ch.body.id}`));
    await s.api('PUT', '/api/prices/gpt-scan', { input: 1, output: 1 });

    // Use every key, in ways that succeed and fail, with keys in headers and query strings.
    const unknown = generateKey();
    keySecrets.push(unknown);
    for (const secret of [...keySecrets]) {
      for (const how of ['bearer', 'x-api-key', 'api-key', 'x-goog-api-key'] as const)
        record(await relay(s, secret, { how }));
      record(await relay(s, secret, { path: `/v1/key?key=${secret}` }));
      record(
        await relay(s, undefined, {
          path: `/v1beta/models/gpt-scan:generateContent?key=${secret}`,
          method: 'POST',
          body: {},
        }),
      );
      record(
        await relay(s, secret, {
          path: '/v1/chat/completions',
          method: 'POST',
          body: {
            model: 'gpt-scan',
            messages: [{ role: 'user', content: `my key is ${secret.slice(0, 3)}` }],
            max_tokens: 1,
          },
        }),
      );
      record(
        await relay(s, secret, {
          path: '/v1/chat/completions',
          method: 'POST',
          body: { model: 'gpt-scan', messages: 'not-an-array' },
        }),
      );
      record(await relay(s, secret + 'x'));
      record(await relay(s, `${secret} ${secret}`));
    }
    // GitHub reports every key (live, rotated, deleted, unknown) and a token of someone else's.
    const foreign = 'ghp_' + randomBytes(18).toString('hex');
    otherSecrets.push(foreign);
    const report = await gh.report(s, [...keySecrets.map((k) => match(k)), match(foreign)]);
    expect(report.status).toBe(200);
    expect(report.body.filter((l: { label: string }) => l.label === 'true_positive').length).toBeGreaterThan(
      0,
    );
    record(report);
    record(await s.api('GET', '/api/audit?action=key.leaked&limit=500'));
    record({ body: await s.services.events.list({ limit: 500 }) });
    // Management tokens: minted by a session and by the master key, used (also on /v1 and with
    // a broken checksum), one revoked; each is shown once, in its creation's answer only.
    for (const [i, make] of [
      () => u.call('POST', '/api/tokens', { name: 'scan-token-0', scopes: ['keys:read', 'keys:write'] }),
      () => s.api('POST', '/api/tokens', { name: 'scan-token-1', scopes: ['users:read'] }),
    ].entries()) {
      const t = await make();
      expect(t.status, JSON.stringify(t.body)).toBe(201);
      record(t);
      tokenSecrets.push(t.body.token);
      visible.push(`scan-token-${i}`, t.body.display);
      const auth = { authorization: `Bearer ${t.body.token}` };
      record(await s.api('GET', '/api/keys', undefined, auth));
      record(await s.api('POST', '/api/keys', { name: `by-token-${i}`, user_id: user.id }, auth));
      record(await s.api('GET', '/api/channels', undefined, auth));
      record(
        await s.api('GET', '/api/users', undefined, {
          authorization: `Bearer ${t.body.token.slice(0, -1)}x`,
        }),
      );
      record(await relay(s, t.body.token));
      record(
        await relay(s, undefined, {
          path: `/v1beta/models/gpt-scan:generateContent?key=${t.body.token}`,
          method: 'POST',
          body: {},
        }),
      );
      if (i === 0) {
        record(await u.call('DELETE', `/api/tokens/${t.body.id}`));
        record(await s.api('GET', '/api/keys', undefined, auth));
      }
    }
    // GitHub reports the tokens too: the live one is revoked, audited and announced.
    const tokenReport = await gh.report(
      s,
      tokenSecrets.map((t) => match(t)),
    );
    expect(tokenReport.body.map((l: { label: string }) => l.label)).toEqual([
      'true_positive',
      'true_positive',
    ]);
    record(tokenReport);
    record(await s.api('GET', '/api/audit?action=token.leaked&limit=500'));
    record(await s.api('GET', '/api/events?type=key.leaked'));
    record(await relay(s, s.masterKey));
    record(await u.call('GET', '/api/tokens'));
    record(await s.api('GET', '/api/tokens'));
    // Management calls that carry secrets in odd places.
    record(await s.api('GET', `/api/keys?q=${encodeURIComponent(keySecrets[0]!)}`));
    record(await s.api('POST', '/api/keys', { name: 'x', user_id: user.id, key: keySecrets[0] }));
    record(await s.api('POST', '/api/auth/login', { username, password: 'wrong-' + password }));
    record(await s.api('GET', '/api/users', undefined, { authorization: `Bearer ${s.masterKey}x` }));
    record(await s.api('GET', '/api/audit?limit=500'));
    record(await s.api('GET', '/api/logs?limit=500'));
    record(await s.api('GET', '/api/keys?limit=500'));
    await s.services.flush();
  });
  afterAll(async () => {
    await s?.close();
    gh?.cleanup();
  });

  it('the database holds no plaintext secret (and the scan does find plain values)', async () => {
    const bytes = await storedBytes(s);
    const text = { includes: (v: string) => bytes.includes(Buffer.from(v, 'utf8')) };
    // The scan sees stored values: names and masked forms are there in the clear.
    for (const v of visible) expect(text.includes(v), `expected to find ${v}`).toBe(true);
    for (const secret of keySecrets)
      for (const f of fragments(secret))
        expect(text.includes(f), `key secret ${secret.slice(0, 8)}… found in storage`).toBe(false);
    for (const secret of [...otherSecrets, ...tokenSecrets])
      for (const f of fragments(secret))
        expect(text.includes(f), `secret ${secret.slice(0, 10)}… found in storage`).toBe(false);
  });

  it('the server log never contains a key, the master key or another secret', async () => {
    const logs = s.logs();
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).toMatch(/listening/i);
    for (const secret of [...keySecrets, ...otherSecrets, ...tokenSecrets])
      for (const f of fragments(secret))
        expect(logs.includes(f), `secret ${secret.slice(0, 10)}… found in the log`).toBe(false);
  });

  it('no answer echoes a key secret other than its one-time creation, nor any other secret', async () => {
    // The creation/rotation answers carry their own secret once; drop exactly those occurrences.
    let text = answers.join('\n');
    for (const secret of keySecrets) text = text.replace(`"key":"${secret}"`, '"key":"<shown once>"');
    for (const secret of tokenSecrets) {
      expect(text).toContain(`"token":"${secret}"`);
      text = text.replace(`"token":"${secret}"`, '"token":"<shown once>"');
    }
    for (const secret of [...keySecrets, ...otherSecrets, ...tokenSecrets])
      for (const f of fragments(secret))
        expect(text.includes(f), `secret ${secret.slice(0, 10)}… echoed in an answer`).toBe(false);
  });
});
