// An upstream that goes quiet after its stream began: past MOLE_UPSTREAM_IDLE_TIMEOUT_MS the
// stream ends with the protocol's error frame, typed as a timeout (the 504 it would have been
// before the stream began), not as an overloaded or unavailable upstream.
import Anthropic from '@anthropic-ai/sdk';
import { ApiError, GoogleGenAI } from '@google/genai';
import { beforeAll, describe, expect, it } from 'vitest';
import { gatewayWithChannels } from '../helpers/gateway-channels.js';
import type { TestServer } from '../helpers/server.js';
import { userWithKey } from '../helpers/server.js';
import type { MockProvider } from '../mock-provider/server.js';
import { allLogs, client } from './relay-helpers.js';

const IDLE_MS = 400;

describe('a stream whose upstream goes quiet', () => {
  let s: TestServer;
  let mock: MockProvider;
  let secret: string;
  let keyId: number;

  gatewayWithChannels(
    { env: { MOLE_UPSTREAM_IDLE_TIMEOUT_MS: String(IDLE_MS) } },
    {
      apiKey: 'quiet-upstream',
      channels: [{ type: 'openai', models: ['quiet'] }],
      prices: { quiet: { input: 1, output: 2 } },
    },
    (g) => {
      ({ s, mock } = g);
    },
  );
  beforeAll(async () => {
    // Three chunks reach the client, then the upstream stalls past the idle timeout.
    mock.setScenario('quiet', { cutAfterChunks: 3, hangMs: IDLE_MS * 10 });
    const u = await userWithKey(s);
    secret = u.secret;
    keyId = u.key.id;
  });

  it('Anthropic: event: error of type timeout_error', async () => {
    const stream = new Anthropic({ baseURL: s.url, apiKey: secret, maxRetries: 0 }).messages.stream({
      model: 'quiet',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'hello?' }],
    });
    const err = await stream.finalMessage().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect((err as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({
      type: 'error',
      error: { type: 'timeout_error', code: 'upstream_error' },
    });
  });

  it('Gemini: an error frame with 504 DEADLINE_EXCEEDED', async () => {
    const ai = new GoogleGenAI({ apiKey: secret, httpOptions: { baseUrl: s.url } });
    const err = await (async () => {
      for await (const _ of await ai.models.generateContentStream({ model: 'quiet', contents: 'hello?' })) {
        // reading until the error frame
      }
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    const body = JSON.parse((err as ApiError).message.slice((err as ApiError).message.indexOf('{')));
    expect(body.error).toMatchObject({ code: 504, status: 'DEADLINE_EXCEEDED' });
  });

  it('OpenAI: the data: {"error"} frame; every such stream is logged as an upstream error', async () => {
    const err = await (async () => {
      const stream = await client(s, secret).chat.completions.create({
        model: 'quiet',
        stream: true,
        messages: [{ role: 'user', content: 'hello?' }],
      });
      for await (const _ of stream) {
        // reading until the error frame
      }
    })().catch((e: unknown) => e as { code?: string; message?: string });
    expect(err).toMatchObject({ code: 'upstream_error', message: expect.stringMatching(/timed out/) });
    const rows = await allLogs(s, { key_id: keyId });
    expect(rows.map((r) => [r.status, r.error_code])).toEqual([
      [200, 'upstream_error'],
      [200, 'upstream_error'],
      [200, 'upstream_error'],
    ]);
  });
});
