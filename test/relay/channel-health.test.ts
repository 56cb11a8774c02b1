// A channel's health is visible to admins (issue 11): consecutive failed attempts, the latest
// failure's reason (never the credential) and when, and its cool-down.
import { describe, expect, it } from 'vitest';
import { userWithKey } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import { addPricedChannel, unreachableUrl } from './relay-helpers.js';

describe('channel health in the channel object', () => {
  const s = suiteServer({});

  it('shows failing attempts and the last error, without the credential', async () => {
    const secret = 'sk-health-credential-123456';
    const ch = await addPricedChannel(
      s,
      { type: 'openai', base_url: await unreachableUrl(), api_key: secret },
      { 'health-model': { input: 1, output: 1 } },
    );
    const before = await s.api('GET', `/api/channels/${ch.id}`);
    expect(before.body).toMatchObject({ consecutive_failures: 0, last_error: null, last_error_at: null });

    const { secret: key } = await userWithKey(s);
    const r = await fetch(s.url + '/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'health-model', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(r.status).toBe(502);
    await r.arrayBuffer();

    const after = await s.api('GET', `/api/channels/${ch.id}`);
    expect(after.body.consecutive_failures).toBeGreaterThanOrEqual(1);
    expect(typeof after.body.last_error).toBe('string');
    expect(after.body.last_error.length).toBeGreaterThan(0);
    expect(Date.parse(after.body.last_error_at)).toBeGreaterThan(Date.now() - 60_000);
    const list = await s.api('GET', '/api/channels');
    expect(JSON.stringify(list.body)).not.toContain(secret);
    expect(list.body.data.find((c: { id: number }) => c.id === ch.id)).toMatchObject({
      last_error: after.body.last_error,
    });
  });
});
