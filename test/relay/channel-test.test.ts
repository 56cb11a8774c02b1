// POST /api/channels/:id/test asks each channel type's own API for its models, with its own
// credential header: OpenAI's /v1/models with a Bearer token, Anthropic's /v1/models with
// x-api-key and anthropic-version, Gemini's /v1beta/models with x-goog-api-key.
import { describe, expect, it } from 'vitest';
import { gatewayWithChannels } from '../helpers/gateway-channels.js';
import type { TestServer } from '../helpers/server.js';
import type { MockProvider } from '../mock-provider/server.js';
import { addChannel } from './relay-helpers.js';

const UP_KEY = 'channel-test-upstream-key';

describe('the channel test', () => {
  let s: TestServer;
  let mock: MockProvider;
  let origin: string;
  let ids: number[];

  gatewayWithChannels(
    {},
    {
      apiKey: UP_KEY,
      channels: [
        { type: 'openai', models: ['t-openai'] },
        { type: 'anthropic', models: ['t-anthropic'] },
        { type: 'gemini', models: ['t-gemini'] },
      ],
      prices: {},
    },
    (g) => {
      ({ s, mock, origin } = g);
      ids = g.channelIds;
    },
  );

  it('reaches every type with its own path and credential header', async () => {
    mock.reset();
    for (const id of ids) {
      const r = await s.api('POST', `/api/channels/${id}/test`);
      expect(r.body, String(id)).toMatchObject({ ok: true });
    }
    const seen = mock.requests.map((r) => [
      r.path,
      r.headers.authorization ? 'bearer' : r.headers['x-api-key'] ? 'x-api-key' : 'x-goog-api-key',
    ]);
    expect(seen).toEqual([
      ['/v1/models', 'bearer'],
      ['/v1/models', 'x-api-key'],
      ['/v1beta/models', 'x-goog-api-key'],
    ]);
  });

  // Google answers a bad key with 400 (API_KEY_INVALID), the others with 401.
  it('a wrong credential is a failed test, for every type', async () => {
    for (const [type, base_url] of [
      ['openai', `${origin}/v1`],
      ['anthropic', origin],
      ['gemini', `${origin}/v1beta`],
    ] as const) {
      const ch = await addChannel(s, { type, base_url, api_key: 'wrong-key', models: [`w-${type}`] });
      const r = await s.api('POST', `/api/channels/${ch.id}/test`);
      expect(r.body, type).toMatchObject({ ok: false, error: expect.stringMatching(/HTTP 4\d\d/) });
    }
  });

  it('an OpenAI-compatible base URL without its /v1: the failed test says so', async () => {
    const ch = await addChannel(s, { type: 'openai', base_url: origin, api_key: UP_KEY, models: ['no-v1'] });
    const r = await s.api('POST', `/api/channels/${ch.id}/test`);
    expect(r.body).toMatchObject({
      ok: false,
      error:
        'upstream answered HTTP 404: an OpenAI-compatible base URL usually ends in /v1 (e.g. https://api.openai.com/v1)',
    });
    const twice = await addChannel(s, {
      type: 'openai',
      base_url: `${origin}/v1/v1`,
      api_key: UP_KEY,
      models: ['v1v1'],
    });
    expect((await s.api('POST', `/api/channels/${twice.id}/test`)).body.error).toBe(
      'upstream answered HTTP 404: the base URL repeats its version (…/v1/v1): keep one',
    );
    const right = await addChannel(s, {
      type: 'openai',
      base_url: `${origin}/v1`,
      api_key: 'wrong-key',
      models: ['v1'],
    });
    expect((await s.api('POST', `/api/channels/${right.id}/test`)).body.error).toBe(
      'upstream answered HTTP 401',
    );
  });
});
