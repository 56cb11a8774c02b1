import { describe, expect, it } from 'vitest';
import * as canon from '../../../test/helpers/canonical.js';
import { openaiCodec } from './openai.js';

describe('openai codec: fromCanonical', () => {
  it('tool results keep their text; their images follow the run of tool messages as a user message', () => {
    const c = canon.request({
      messages: [
        canon.user('Look at the screen'),
        canon.assistant([], canon.call('toolu_1', 'screenshot', '{}'), canon.call('toolu_2', 'read', '{}')),
        canon.tool('toolu_1', ['here:', canon.image('data:image/png;base64,AAAA')]),
        canon.tool('toolu_2', [canon.image('https://example.com/b.png')]),
        canon.user('What do you see?'),
      ],
    });
    const body = openaiCodec.fromCanonical(c, 'gpt-4o', 100) as { messages: unknown[] };
    expect(body.messages).toEqual([
      { role: 'user', content: 'Look at the screen' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'toolu_1', type: 'function', function: { name: 'screenshot', arguments: '{}' } },
          { id: 'toolu_2', type: 'function', function: { name: 'read', arguments: '{}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'toolu_1', content: 'here:' },
      { role: 'tool', tool_call_id: 'toolu_2', content: '' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'The images the tool results above returned:' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
          { type: 'image_url', image_url: { url: 'https://example.com/b.png' } },
        ],
      },
      { role: 'user', content: 'What do you see?' },
    ]);
  });
});

describe('openai codec: one tool call an answer', () => {
  it('parallel_tool_calls: false goes with tools only (OpenAI refuses it without)', () => {
    const tool = { name: 'read', parameters: { type: 'object', properties: {} } };
    const one = canon.request({ messages: [canon.user('hi')], tools: [tool], parallelToolCalls: false });
    expect((openaiCodec.fromCanonical(one, 'gpt', 10) as Record<string, unknown>).parallel_tool_calls).toBe(
      false,
    );
    const toolless = canon.request({ messages: [canon.user('hi')], parallelToolCalls: false });
    expect(openaiCodec.fromCanonical(toolless, 'gpt', 10)).not.toHaveProperty('parallel_tool_calls');
  });
});
