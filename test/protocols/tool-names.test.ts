// Tool names OpenAI refuses (past 64 characters, or characters outside [A-Za-z0-9_-]) are
// common in coding agents: Claude Code names an MCP server's tools `mcp__<server>__<tool>`. A
// request translated to another upstream carries such a name renamed to fit, and the calls
// that come back carry the client's name again, plain and streamed, turn after turn.
import Anthropic from '@anthropic-ai/sdk';
import { describe, expect, it } from 'vitest';
import { gatewayWithChannels } from '../helpers/gateway-channels.js';
import { type TestServer, userWithKey } from '../helpers/server.js';
import type { MockProvider } from '../mock-provider/server.js';

const UP_KEY = 'sk-names-upstream-0001';
const LONG = 'mcp__plugin_acme-knowledge-base_acme-knowledge-base__search_knowledge_base_documents_by_query';
const DOTTED = 'acme.search';
const schema = {
  type: 'object' as const,
  properties: { query: { type: 'string' } },
  required: ['query'],
};

describe('tool names that do not fit the upstream', () => {
  let s: TestServer;
  let mock: MockProvider;
  gatewayWithChannels(
    { backend: 'sqlite' },
    {
      apiKey: UP_KEY,
      channels: [{ type: 'openai', models: ['names'] }],
      prices: { names: { input: 1, output: 2 } },
    },
    (g) => {
      ({ s, mock } = g);
    },
  );

  const sentTools = () =>
    (mock.requests.at(-1)!.body as { tools: Array<{ function: { name: string } }> }).tools.map(
      (t) => t.function.name,
    );

  it.each([false, true])(
    'Anthropic in → OpenAI channel (stream %s): renamed up, named back down',
    async (stream) => {
      const c = new Anthropic({ baseURL: s.url, apiKey: (await userWithKey(s)).secret, maxRetries: 0 });
      const tools = [
        { name: LONG, input_schema: schema },
        { name: DOTTED, input_schema: schema },
        { name: 'Read', input_schema: schema },
      ];
      const params = {
        model: 'names',
        max_tokens: 64,
        tools,
        tool_choice: { type: 'tool' as const, name: LONG },
        messages: [{ role: 'user' as const, content: 'Find the onboarding guide.' }],
      };
      const first = stream ? await c.messages.stream(params).finalMessage() : await c.messages.create(params);
      const up = sentTools();
      expect(up.every((n) => /^[a-zA-Z0-9_-]{1,64}$/.test(n))).toBe(true);
      expect(up[2]).toBe('Read');
      expect(up[0]).not.toBe(up[1]);
      const use = first.content.find((b) => b.type === 'tool_use')!;
      expect(use).toMatchObject({ type: 'tool_use', name: LONG, input: { query: 'mole' } });

      // The next turn sends the call back under the client's name: it goes up renamed the same way.
      const second = await c.messages.create({
        ...params,
        tool_choice: { type: 'auto' },
        messages: [
          ...params.messages,
          { role: 'assistant', content: [use] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'onboarding.md' }] },
        ],
      });
      expect(second.content[0]).toMatchObject({ type: 'text' });
      const history = (mock.requests.at(-1)!.body as { messages: Array<Record<string, unknown>> }).messages;
      expect((history[1]!.tool_calls as Array<{ function: { name: string } }>)[0]!.function.name).toBe(up[0]);
    },
  );
});
