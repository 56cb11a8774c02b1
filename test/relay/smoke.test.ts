import { describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { userWithKey, type TestServer } from '../helpers/server.js';
import { relaySuite } from '../helpers/relay-suite.js';

describe('relay smoke', () => {
  let s: TestServer;
  relaySuite(
    {},
    {
      apiKey: 'upstream-secret',
      prices: {
        'gpt-4o-mini': { input: 0.15, output: 0.6 },
        'text-embedding-3-small': { input: 0.02, output: 0 },
      },
    },
    (started) => {
      s = started.s;
    },
  );

  it('chat plain, stream, embeddings', async () => {
    const { secret } = await userWithKey(s);
    const client = new OpenAI({ baseURL: s.url + '/v1', apiKey: secret });
    const r = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hello' }],
    });
    expect(r.choices[0]!.message.content).toBeTruthy();
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hello' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: unknown = null;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      if (c.usage) usage = c.usage;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(usage).toBeTruthy();
    const e = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hi' });
    expect(e.data[0]!.embedding.length).toBeGreaterThan(0);
    const k = await fetch(s.url + '/v1/key', { headers: { authorization: `Bearer ${secret}` } });
    const kj = (await k.json()) as { used: number };
    expect(kj.used).toBeGreaterThan(0);
    const logs = await s.api('GET', '/api/logs');
    expect(logs.body.data.length).toBe(4);
  });
});
