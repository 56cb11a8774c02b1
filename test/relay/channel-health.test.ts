// A channel's health is visible to admins (issue 11): consecutive failed attempts, the latest
// failure's reason (never the credential) and when, and its cool-down.
import { describe, expect, it } from 'vitest';
import { gatewayWithChannels } from '../helpers/gateway-channels.js';
import { type TestServer, userWithKey } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import type { MockProvider } from '../mock-provider/server.js';
import { addPricedChannel, allLogs, unreachableUrl } from './relay-helpers.js';

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

describe('a channel that cuts its streams', () => {
  let s: TestServer;
  let mock: MockProvider;
  let channelId: number;
  gatewayWithChannels(
    {},
    {
      apiKey: 'cutting-upstream',
      channels: [{ type: 'openai', models: ['cut-model'] }],
      prices: { 'cut-model': { input: 1, output: 1 } },
    },
    (g) => {
      ({ s, mock } = g);
      channelId = g.channelIds[0]!;
    },
  );

  it('counts each cut against its health, and its attempt carries the error', async () => {
    mock.setScenario('cut-model', { cutAfterChunks: 2 });
    const { key, secret } = await userWithKey(s);
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${s.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'cut-model',
          stream: true,
          messages: [{ role: 'user', content: 'cut' }],
        }),
      });
      expect(r.status).toBe(200);
      expect(await r.text()).toContain('"upstream_error"');
    }
    // Three failures in a row start a cool-down (and its count afresh).
    const ch = (await s.api('GET', `/api/channels/${channelId}`)).body;
    expect(ch.cooling_down_until).not.toBeNull();
    expect(ch.last_error).toBe('upstream stream failed');
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row).toMatchObject({ status: 200, error_code: 'upstream_error' });
      expect(row.attempts).toEqual([
        expect.objectContaining({
          channel_id: channelId,
          status: 200,
          error: 'upstream stream failed',
        }),
      ]);
    }
  });
});
