// The client libraries the README names, tried for real against the gateway (SQLite): the
// Vercel AI SDK (its default `openai('model')` speaks the Responses API) and LangChain's
// ChatOpenAI (chat completions), each through a pass-through channel and a translating one.
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { generateText, streamText } from 'ai';
import { beforeAll, describe, expect, it } from 'vitest';
import { userWithKey } from '../helpers/server.js';
import { suiteGateway } from '../helpers/suite.js';
import { addChannel, allLogs, setPrice, uniq } from '../relay/relay-helpers.js';

describe('client libraries named in the README', () => {
  let secret: string;
  let keyId: number;
  let responsesModel: string;
  let chatOnlyModel: string;

  const { s, mock } = suiteGateway({}, {});
  beforeAll(async () => {
    responsesModel = uniq('resp');
    chatOnlyModel = uniq('chat');
    // One channel serves Responses as sent; the other lacks it, so the relay translates to chat.
    await addChannel(s, { type: 'openai', base_url: mock.url, api_key: 'x', models: [responsesModel] });
    await addChannel(s, {
      type: 'openai',
      base_url: mock.url,
      api_key: 'x',
      models: [chatOnlyModel],
      responses: false,
    });
    for (const m of [responsesModel, chatOnlyModel]) await setPrice(s, m, { input: 1, output: 2 });
    const u = await userWithKey(s, { balance: 10 });
    secret = u.secret;
    keyId = u.key.id;
  });

  const aiSdk = () => createOpenAI({ baseURL: `${s.url}/v1`, apiKey: secret });

  it.each([
    ['a channel that speaks Responses', () => responsesModel, '/v1/responses'],
    ['a chat-only channel (translated)', () => chatOnlyModel, '/v1/chat/completions'],
  ])(
    'Vercel AI SDK generateText and streamText with openai(model): %s',
    async (_name, model, upstreamPath) => {
      mock.reset();
      const plain = await generateText({ model: aiSdk()(model()), prompt: 'Say something about moles.' });
      expect(plain.text.length).toBeGreaterThan(0);
      expect(plain.usage.outputTokens).toBeGreaterThan(0);

      const streamed = streamText({ model: aiSdk()(model()), prompt: 'Say something about moles.' });
      let text = '';
      for await (const part of streamed.textStream) text += part;
      expect(text.length).toBeGreaterThan(0);
      expect((await streamed.usage).outputTokens).toBeGreaterThan(0);

      expect(mock.requests.map((r) => r.path)).toEqual([upstreamPath, upstreamPath]);
      const logs = (await allLogs(s, { key_id: keyId, model: model() })).filter((l) => l.status === 200);
      expect(logs).toHaveLength(2);
      for (const l of logs) expect(l).toMatchObject({ protocol: 'responses', estimated: false });
    },
  );

  it('LangChain ChatOpenAI invoke and stream', async () => {
    const llm = new ChatOpenAI({
      model: responsesModel,
      apiKey: secret,
      configuration: { baseURL: `${s.url}/v1` },
      maxRetries: 0,
    });
    const answer = await llm.invoke('Say something about moles.');
    expect(String(answer.content).length).toBeGreaterThan(0);
    let text = '';
    for await (const chunk of await llm.stream('Say something about moles.')) text += String(chunk.content);
    expect(text.length).toBeGreaterThan(0);
    const logs = (await allLogs(s, { key_id: keyId, model: responsesModel })).filter(
      (l) => l.protocol === 'openai',
    );
    expect(logs.length).toBeGreaterThanOrEqual(2);
  });
});
