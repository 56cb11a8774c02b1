import { describe, expect, it } from 'vitest';
import { testChannel } from '../../../test/helpers/channel.js';
import { readAll } from '../upstream-body.js';
import { mockTransport } from './mock.js';
import { AttemptSignal, type UpstreamCall } from './transport.js';

const call = (body: unknown, stream = false): UpstreamCall => ({
  channel: testChannel({ name: 'mock', type: 'mock', baseUrl: '', apiKey: '', models: ['m'] }),
  protocol: 'openai',
  operation: 'generate',
  model: 'm',
  body,
  stream,
  signal: new AttemptSignal(),
  headers: {},
});

describe('mockTransport', () => {
  it('reads a pass-through body given as the client JSON text or bytes', async () => {
    const request = { model: 'm', max_tokens: 3, messages: [{ role: 'user', content: 'hi' }] };
    for (const body of [request, JSON.stringify(request), Buffer.from(JSON.stringify(request))]) {
      const res = await mockTransport.send(call(body));
      expect(res.status).toBe(200);
      const answer = JSON.parse((await readAll(res.body, 1 << 20)).toString());
      expect(answer.choices[0].message.content).toBe(' mole tunnel soil');
      expect(answer.usage.completion_tokens).toBe(3);
    }
  });

  it('streams its answer as one SSE body', async () => {
    const res = await mockTransport.send(
      call({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] }, true),
    );
    const sse = (await readAll(res.body, 1 << 20)).toString();
    expect(sse.endsWith('data: [DONE]\n\n')).toBe(true);
  });
});
