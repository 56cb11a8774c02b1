// No client key, upstream credential or master key is ever written to the database (SQLite
// files incl. WAL, or a pg_dump of the schema), the server's log output, an error message or
// a management API answer, after a run that exercises success, failure and refusal paths.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { backends, pgUrl, userWithKey } from '../helpers/server.js';
import { suiteGateway } from '../helpers/suite.js';
import { generateKey } from '../../src/keys/format.js';
import {
  addChannel,
  allLogs,
  client,
  rawRelay,
  sdkError,
  setPrice,
  unreachableUrl,
} from './relay-helpers.js';

describe.each(backends())('secrets stay secret (%s)', (backend) => {
  const upstreamCred = 'sk-upstream-' + randomBytes(18).toString('hex');
  const rotatedCred = 'sk-upstream-rotated-' + randomBytes(18).toString('hex');
  const wrongCred = 'sk-upstream-wrong-' + randomBytes(18).toString('hex');
  const unreachableCred = 'sk-upstream-unreachable-' + randomBytes(18).toString('hex');
  /** Every answer body the run produced, to search afterwards. */
  const answers: string[] = [];
  const clientSecrets: string[] = [];

  const { s, mock } = suiteGateway({ backend }, { apiKey: upstreamCred });

  it('an upstream that quotes its credential in a mid-stream error: not in any stream or log row', async () => {
    const quoted = `stream failed for key ${upstreamCred}`;
    const types = { 'q-oai': 'openai', 'q-anth': 'anthropic', 'q-gem': 'gemini' } as const;
    for (const [model, type] of Object.entries(types)) {
      await addChannel(s, {
        type,
        base_url: type === 'openai' ? mock.url : mock.url.replace(/\/v1$/, ''),
        api_key: upstreamCred,
        models: [model],
      });
      await setPrice(s, model, { input: 1, output: 1 });
    }
    const u = await userWithKey(s, { balance: 5 });
    const streams: string[] = [];
    const post = async (path: string, body: unknown) => {
      const r = await fetch(s.url + path, {
        method: 'POST',
        headers: { authorization: `Bearer ${u.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      streams.push(await r.text());
    };
    for (const model of Object.keys(types)) {
      mock.setScenario(model, { midStreamError: 2, chunkDelayMs: 5, errorMessage: quoted });
      const messages = [{ role: 'user', content: 'hi' }];
      await post('/v1/chat/completions', { model, messages, stream: true });
      await post('/v1/messages', { model, messages, max_tokens: 20, stream: true });
      await post('/v1/responses', { model, input: 'hi', stream: true });
      await post(`/v1beta/models/${model}:streamGenerateContent?alt=sse`, {
        contents: [{ role: 'user', parts: [{ text: 'hi' }] }],
      });
    }
    await s.services.flush();
    const rows = await allLogs(s, { key_id: u.key.id });
    expect(rows).toHaveLength(12);
    // The chat mock has no mid-stream error to quote with: the other 9 streams ended in one.
    expect(streams.filter((t) => t.includes('[redacted]'))).toHaveLength(9);
    for (const text of [...streams, JSON.stringify(rows)]) expect(text).not.toContain(upstreamCred);
  });

  it('a run through success, failure and refusal paths leaves no secret in the database, logs, errors or API answers', async () => {
    /** An openai channel at the mock (unless `fields` says otherwise) with credential `apiKey`. */
    const channel = (apiKey: string, models: string[], fields: Record<string, unknown>) =>
      addChannel(s, { type: 'openai', base_url: mock.url, api_key: apiKey, models, ...fields });
    const good = await channel(upstreamCred, ['s-chat', 's-emb'], { priority: 1 });
    answers.push(JSON.stringify(good));
    const bad = await channel(wrongCred, ['s-chat', 's-bad'], { priority: 5 });
    const dead = await channel(unreachableCred, ['s-dead'], { base_url: await unreachableUrl() });
    for (const [model, output] of [
      ['s-chat', 2],
      ['s-emb', 0],
      ['s-bad', 1],
      ['s-dead', 1],
    ] as const)
      await setPrice(s, model, { input: 1, output });

    const u = await userWithKey(s, { balance: 5, key: { models: ['s-*'] } });
    const poor = await userWithKey(s, { balance: 0 });
    const disabled = await userWithKey(s);
    await s.api('PATCH', `/api/keys/${disabled.key.id}`, { status: 'disabled' });
    const rotated = await userWithKey(s);
    const rot = await s.api('POST', `/api/keys/${rotated.key.id}/rotate`, {});
    expect(rot.status).toBe(200);
    clientSecrets.push(u.secret, poor.secret, disabled.secret, rotated.secret, rot.body.key);

    const c = client(s, u.secret);
    // the wrong-credential channel (the only one for s-bad) answers 401: 502 for the client, channel disabled
    const first = await sdkError(
      c.chat.completions.create({ model: 's-bad', messages: [{ role: 'user', content: 'x' }] }),
    );
    expect(first.status).toBe(502);
    answers.push(first.message, JSON.stringify(first.error ?? null));
    // success: plain, stream, embeddings
    await c.chat.completions.create({ model: 's-chat', messages: [{ role: 'user', content: 'hello' }] });
    for await (const _ of await c.chat.completions.create({
      model: 's-chat',
      messages: [{ role: 'user', content: 'hello' }],
      stream: true,
    })) {
      /* drain */
    }
    await c.embeddings.create({ model: 's-emb', input: 'hello' });
    expect(
      mock.requests.some((r) => r.headers.authorization === `Bearer ${upstreamCred}`),
      'the credential is really used upstream',
    ).toBe(true);
    expect(mock.requests.some((r) => r.headers.authorization === `Bearer ${wrongCred}`)).toBe(true);
    // failures and refusals
    const errs = [
      await sdkError(
        c.chat.completions.create({ model: 's-bad', messages: [{ role: 'user', content: 'x' }] }),
      ),
      await sdkError(
        c.chat.completions.create({ model: 's-dead', messages: [{ role: 'user', content: 'x' }] }),
      ),
      await sdkError(
        c.chat.completions.create({ model: 'other', messages: [{ role: 'user', content: 'x' }] }),
      ),
      await sdkError(
        client(s, poor.secret).chat.completions.create({
          model: 's-chat',
          messages: [{ role: 'user', content: 'x' }],
        }),
      ),
      await sdkError(
        client(s, disabled.secret).chat.completions.create({
          model: 's-chat',
          messages: [{ role: 'user', content: 'x' }],
        }),
      ),
      await sdkError(
        client(s, rotated.secret).chat.completions.create({
          model: 's-chat',
          messages: [{ role: 'user', content: 'x' }],
        }),
      ),
      await sdkError(
        client(s, generateKey()).chat.completions.create({
          model: 's-chat',
          messages: [{ role: 'user', content: 'x' }],
        }),
      ),
      await sdkError(
        client(s, u.secret + 'x').chat.completions.create({
          model: 's-chat',
          messages: [{ role: 'user', content: 'x' }],
        }),
      ),
    ];
    expect(errs.map((e) => e.status)).toEqual([404, 502, 403, 429, 401, 401, 401, 401]);
    // The master key is not a relay key, and is not echoed either.
    const mk = await sdkError(
      client(s, s.masterKey).chat.completions.create({
        model: 's-chat',
        messages: [{ role: 'user', content: 'x' }],
      }),
    );
    expect([mk.status, mk.code]).toEqual([401, 'invalid_api_key']);
    errs.push(mk);
    // An upstream that echoes its credential in an error the relay passes on (400): scrubbed.
    mock.setScenario('s-chat', {
      status: 400,
      errorMessage: `Bad request for key ${upstreamCred}`,
      times: 2,
    });
    const echoed = await sdkError(
      c.chat.completions.create({ model: 's-chat', messages: [{ role: 'user', content: 'x' }] }),
    );
    expect(echoed.status).toBe(400);
    expect(echoed.message).toContain('Bad request for key');
    errs.push(echoed);
    const echoedRaw = await rawRelay(s, '/chat/completions', {
      key: u.secret,
      body: JSON.stringify({ model: 's-chat', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(echoedRaw.status).toBe(400);
    answers.push(echoedRaw.text);
    for (const e of errs) answers.push(e.message, JSON.stringify(e.error ?? null));
    for (const headers of [
      { 'x-api-key': u.secret + 'x' },
      { 'api-key': u.secret.slice(0, -2) },
      { authorization: `Basic ${u.secret}` },
    ] as Array<Record<string, string>>) {
      const r = await rawRelay(s, '/chat/completions', { headers, body: '{not json' });
      expect(r.status).toBe(401);
      answers.push(r.text);
    }
    answers.push((await rawRelay(s, '/chat/completions', { key: u.secret, body: '{not json' })).text);
    answers.push(
      await (await fetch(s.url + '/v1/key', { headers: { authorization: `Bearer ${u.secret}` } })).text(),
    );
    // channel admin: credential changes and an upstream test that cannot connect
    const patched = await s.api('PATCH', `/api/channels/${good.id}`, { api_key: rotatedCred });
    expect(patched.status).toBe(200);
    answers.push(JSON.stringify(patched.body));
    await s.api('PATCH', `/api/channels/${good.id}`, { api_key: upstreamCred });
    const probe = await s.api('POST', `/api/channels/${dead.id}/test`);
    answers.push(JSON.stringify(probe.body));
    for (const p of [
      '/api/channels',
      `/api/channels/${bad.id}`,
      '/api/audit?limit=500',
      '/api/logs?limit=500',
      '/api/logs?format=csv',
      '/api/usage?group_by=key',
      '/api/keys?limit=500',
      '/api/prices',
    ]) {
      const r = await s.api('GET', p);
      expect(r.status, p).toBe(200);
      answers.push(typeof r.body === 'string' ? r.body : JSON.stringify(r.body));
    }
    // the run really logged (the database holds this run's rows)
    const rows = await allLogs(s);
    expect(rows.length).toBeGreaterThanOrEqual(10);

    const secrets: Record<string, string> = {
      master: s.masterKey,
      upstreamCred,
      rotatedCred,
      wrongCred,
      unreachableCred,
    };
    for (const [i, k] of clientSecrets.entries()) secrets[`client${i}`] = k;
    const leaks = (where: string, text: string) => {
      for (const [name, v] of Object.entries(secrets))
        expect(text.includes(v), `${name} found in ${where}`).toBe(false);
      // Also no 20-character window of a client key (e.g. a lightly masked form).
      for (const k of clientSecrets)
        expect(text.includes(k.slice(10, 30)), `a client key fragment found in ${where}`).toBe(false);
    };

    for (const [i, a] of answers.entries()) leaks(`answer #${i}`, a);
    leaks('server log output', s.logs());
    expect(s.logs().length).toBeGreaterThan(0);

    // The database itself, after every pending row is written.
    await s.services.flush();
    if (backend === 'sqlite') {
      const files = fs.readdirSync(s.dataDir).filter((f) => f.startsWith('mole.sqlite'));
      expect(files).toContain('mole.sqlite');
      let all = '';
      for (const f of files) all += fs.readFileSync(path.join(s.dataDir, f)).toString('latin1');
      expect(
        all.includes(u.username) && all.includes(u.key.display.slice(0, 7)),
        'sanity: the files hold this run',
      ).toBe(true);
      leaks('SQLite files', all);
    } else {
      const dump = execFileSync('pg_dump', ['--data-only', '--schema', s.pgSchema!, pgUrl()!], {
        encoding: 'utf8',
        maxBuffer: 256 * 1024 * 1024,
      });
      expect(
        dump.includes(u.username) && dump.includes(u.key.display),
        'sanity: the dump holds this run',
      ).toBe(true);
      leaks('pg_dump', dump);
    }
  });
});
