// Gemini 3 signs each step's function call (`thoughtSignature`) and refuses a history that sends
// the call back without it. A client of another protocol on a Gemini channel keeps only the
// call's id, so the signature rides inside the id and goes back on the call's part: a tool
// loop's second turn is served, through each SDK, plain and streamed. Such an id is longer than
// OpenAI's limit (40 characters in chat): sent on to an OpenAI channel, it goes as a digest.
import Anthropic from '@anthropic-ai/sdk';
import type OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { channelTo, gatewayWithChannels } from '../helpers/gateway-channels.js';
import { type TestServer, userWithKey } from '../helpers/server.js';
import { WEATHER_TOOL } from '../helpers/weather-tool.js';
import { thoughtSignatureFor } from '../mock-provider/gemini.js';
import type { MockProvider } from '../mock-provider/server.js';
import { addChannel, client } from '../relay/relay-helpers.js';

const UP_KEY = 'sk-gemini-upstream-0001';
const PRICE = { input: 1, output: 2 };

describe('thought signatures through a Gemini channel', () => {
  let s: TestServer;
  let mock: MockProvider;
  gatewayWithChannels(
    { backend: 'sqlite' },
    {
      apiKey: UP_KEY,
      channels: [{ type: 'gemini', models: ['g3'] }],
      prices: { g3: PRICE, 'g3-or-gpt': PRICE },
    },
    (g) => {
      ({ s, mock } = g);
      mock.setScenario('g3', { thoughtSignatures: true });
    },
  );

  /** The last request the mock received on a Gemini path. */
  const lastGemini = () => [...mock.requests].reverse().find((r) => r.path.includes(':'))!;

  const chatTool = { type: 'function' as const, function: WEATHER_TOOL };
  const ask = 'Weather in Paris?';

  async function chatTurns(c: OpenAI, model: string, stream: boolean) {
    let call: OpenAI.Chat.ChatCompletionMessageToolCall;
    if (stream) {
      const st = c.chat.completions.stream({
        model,
        messages: [{ role: 'user', content: ask }],
        tools: [chatTool],
      });
      const done = await st.finalChatCompletion();
      call = done.choices[0]!.message.tool_calls![0]!;
    } else {
      const first = await c.chat.completions.create({
        model,
        messages: [{ role: 'user', content: ask }],
        tools: [chatTool],
      });
      call = first.choices[0]!.message.tool_calls![0]!;
    }
    const second = await c.chat.completions.create({
      model,
      tools: [chatTool],
      messages: [
        { role: 'user', content: ask },
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: '21 C' },
      ],
    });
    return { call, second };
  }

  const responsesTools = [
    {
      type: 'function' as const,
      name: WEATHER_TOOL.name,
      parameters: WEATHER_TOOL.parameters,
      strict: false,
    },
  ];

  /** A Responses function call from g3, and its output sent back on `next`. */
  async function responsesTurns(c: OpenAI, stream: boolean, next: string) {
    const tools = responsesTools;
    const first = stream
      ? await c.responses.stream({ model: 'g3', input: ask, tools }).finalResponse()
      : await c.responses.create({ model: 'g3', input: ask, tools });
    const call = first.output.find(
      (o) => o.type === 'function_call',
    ) as OpenAI.Responses.ResponseFunctionToolCall;
    const second = await c.responses.create({
      model: next,
      tools,
      input: [
        { role: 'user', content: ask },
        { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
        { type: 'function_call_output', call_id: call.call_id, output: '21 C' },
      ],
    });
    return { call, second };
  }

  it.each([false, true])(
    'chat completions (stream %s): the second turn carries the signature back',
    async (stream) => {
      const { secret } = await userWithKey(s);
      const { call, second } = await chatTurns(client(s, secret), 'g3', stream);
      expect(call.type === 'function' && call.function.name).toBe('get_weather');
      expect(second.choices[0]!.message.content).toBeTruthy();
      const sent = lastGemini().body as {
        contents: Array<{ role: string; parts: Array<Record<string, unknown>> }>;
      };
      const model = sent.contents.find((c) => c.role === 'model')!;
      expect(model.parts[0]).toMatchObject({
        functionCall: { name: 'get_weather' },
        thoughtSignature: thoughtSignatureFor('get_weather'),
      });
    },
  );

  it.each([false, true])('Responses (stream %s): function_call, then its output', async (stream) => {
    const { secret } = await userWithKey(s);
    const { second } = await responsesTurns(client(s, secret), stream, 'g3');
    expect(second.output_text).toBeTruthy();
  });

  it.each([false, true])('Anthropic Messages (stream %s): tool_use, then its tool_result', async (stream) => {
    const { secret } = await userWithKey(s);
    const c = new Anthropic({ baseURL: s.url, apiKey: secret, maxRetries: 0 });
    const tools = [{ name: WEATHER_TOOL.name, input_schema: WEATHER_TOOL.parameters }];
    const params = {
      model: 'g3',
      max_tokens: 64,
      tools,
      messages: [{ role: 'user' as const, content: ask }],
    };
    const first = stream ? await c.messages.stream(params).finalMessage() : await c.messages.create(params);
    const use = first.content.find((b) => b.type === 'tool_use')!;
    // Anthropic's own rule for a tool_use id, which a client may hold the history to.
    expect(use.id).toMatch(/^[a-zA-Z0-9_-]+$/);
    const second = await c.messages.create({
      ...params,
      messages: [
        { role: 'user', content: ask },
        { role: 'assistant', content: [use] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '21 C' }] },
      ],
    });
    expect(second.content[0]).toMatchObject({ type: 'text' });
  });

  it('a signed call id is sent to an OpenAI channel within its 40 characters, the call and its result alike', async () => {
    const { secret } = await userWithKey(s);
    const c = client(s, secret);
    const { call } = await chatTurns(c, 'g3', false);
    expect(call.id.length).toBeGreaterThan(40);
    // The same conversation goes on on another channel (a fallback, a model moved).
    await addChannel(s, channelTo(mock, UP_KEY, { type: 'openai', models: ['g3-or-gpt'] }));
    const next = await c.chat.completions.create({
      model: 'g3-or-gpt',
      messages: [
        { role: 'user', content: ask },
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: '21 C' },
      ],
    });
    expect(next.choices[0]!.message.content).toBeTruthy();
    const sent = mock.requests.at(-1)!.body as { messages: Array<Record<string, unknown>> };
    const id = (sent.messages[1]!.tool_calls as Array<{ id: string }>)[0]!.id;
    expect(id.length).toBeLessThanOrEqual(40);
    expect(sent.messages[2]!.tool_call_id).toBe(id);

    // Responses, passed through to the OpenAI channel: call_id within its 64 characters.
    const { call: fc, second: after } = await responsesTurns(c, false, 'g3-or-gpt');
    expect(fc.call_id.length).toBeGreaterThan(64);
    expect(after.output_text).toBeTruthy();
    const input = (mock.requests.at(-1)!.body as { input: Array<{ call_id?: string }> }).input;
    expect(input[1]!.call_id!.length).toBeLessThanOrEqual(64);
    expect(input[2]!.call_id).toBe(input[1]!.call_id);
  });
});
