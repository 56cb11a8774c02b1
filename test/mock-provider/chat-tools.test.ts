// The OpenAI chat handler's deterministic tool use (the rule every mock protocol shares),
// read by the official openai SDK: plain, streamed (the SDK's stream helper), round trip.
import OpenAI from 'openai';
import { countTokens } from 'gpt-tokenizer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  countChatPromptTokens,
  expectedChatCompletion,
  type MockProvider,
  startMockProvider,
} from './server.js';
import { WEATHER_ARGS, WEATHER_SCHEMA } from './weather.js';

let mock: MockProvider;
let client: OpenAI;
beforeAll(async () => {
  mock = await startMockProvider();
  client = new OpenAI({ baseURL: mock.url, apiKey: 'x', maxRetries: 0 });
});
afterAll(async () => {
  await mock.close();
});

const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      parameters: WEATHER_SCHEMA,
    },
  },
  { type: 'function', function: { name: 'other', parameters: { type: 'object', properties: {} } } },
];
const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
  { role: 'user', content: 'Weather?' },
];
const ARGS = JSON.stringify(WEATHER_ARGS);

describe('chat tool use (mock provider)', () => {
  it('calls the first declared tool with its required arguments', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-4o', messages, tools });
    const c = r.choices[0]!;
    expect(c.finish_reason).toBe('tool_calls');
    expect(c.message.content).toBeNull();
    const call = c.message.tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
    expect(call.id).toMatch(/^call_/);
    expect(call.function).toEqual({ name: 'get_weather', arguments: ARGS });
    expect(r.usage!.completion_tokens).toBe(countTokens('get_weather') + countTokens(ARGS));
    expect(r.usage!.prompt_tokens).toBe(countChatPromptTokens(messages, tools));

    const forced = await client.chat.completions.create({
      model: 'gpt-4o',
      messages,
      tools,
      tool_choice: { type: 'function', function: { name: 'other' } },
    });
    const fc = forced.choices[0]!.message
      .tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
    expect(fc.function).toEqual({ name: 'other', arguments: '{}' });
    const none = await client.chat.completions.create({
      model: 'gpt-4o',
      messages,
      tools,
      tool_choice: 'none',
    });
    expect(none.choices[0]!.finish_reason).toBe('stop');
  });

  it('streams the call (SDK stream helper) and answers text after the tool result', async () => {
    const stream = client.chat.completions.stream({
      model: 'gpt-4o',
      messages,
      tools,
      stream_options: { include_usage: true },
    });
    const final = await stream.finalChatCompletion();
    const call = final.choices[0]!.message
      .tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
    expect(final.choices[0]!.finish_reason).toBe('tool_calls');
    expect(call.function).toEqual({ name: 'get_weather', arguments: ARGS });
    expect(final.usage!.completion_tokens).toBe(countTokens('get_weather') + countTokens(ARGS));

    const round: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
      ...messages,
      { role: 'assistant', content: null, tool_calls: [call] },
      { role: 'tool', tool_call_id: call.id, content: 'sunny' },
    ];
    const after = await client.chat.completions.create({ model: 'gpt-4o', messages: round, tools });
    expect(after.choices[0]!.finish_reason).toBe('stop');
    expect(after.choices[0]!.message.content).toBe(expectedChatCompletion(round));
  });
});
