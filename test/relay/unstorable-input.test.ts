// Input that a database cannot store (NUL in text) must never block the log writer.
import { describe, expect, it } from 'vitest';
import { backends, userWithKey, type TestServer } from '../helpers/server.js';
import { offlineSuite } from '../helpers/relay-suite.js';
import { logRow } from '../helpers/log-row.js';

describe.each(backends())('unstorable text in relay requests (%s)', (backend) => {
  let s: TestServer;
  offlineSuite({ backend }, { 'mole-mini': { input: 1, output: 1 } }, (started) => {
    s = started;
  });

  it('a model name with NUL is refused with 400, and logging carries on', async () => {
    const { key, secret } = await userWithKey(s);
    const post = (model: string) =>
      fetch(s.url + '/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }] }),
      });
    const bad = await post('a\u0000b');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('invalid_request');
    expect((await post('mole-mini')).status).toBe(200);
    const logs = await s.api('GET', `/api/logs?key_id=${key.id}`);
    expect(logs.status).toBe(200);
    expect(logs.body.data.map((l: { status: number }) => l.status).sort()).toEqual([200, 400]);
  });

  it('the writer stores a row whose text holds NUL (stripped) instead of failing the batch forever', async () => {
    const { key, user } = await userWithKey(s);
    await s.services.usageWriter.enqueue(
      logRow({
        request_id: 'req_nul',
        user_id: user.id,
        key_id: key.id,
        key_name: 'bad\u0000name',
        model: 'm\u0000',
        upstream_model: null,
        channel_id: null,
        status: 400,
        error_code: 'invalid_request',
        prompt_tokens: 0,
        completion_tokens: 0,
      }),
    );
    await s.services.flush();
    const logs = await s.api('GET', `/api/logs?key_id=${key.id}`);
    expect(logs.status).toBe(200);
    expect(logs.body.data[0]).toMatchObject({ request_id: 'req_nul', key_name: 'badname', model: 'm' });
    expect(s.services.usageWriter.pending()).toBe(0);
  });
});
