// Coding agents through the real gateway, replayed from bodies recorded from the real clients
// (test/protocols/fixtures/, secrets and ids removed), against the mock provider:
// - Codex CLI 0.171 (wire_api = "responses") declares apply_patch as a freeform `custom` tool
//   and sends `custom_tool_call` / `custom_tool_call_output` items; on a channel that does not
//   speak Responses the tool must stay callable and its calls must come back as
//   `custom_tool_call` items, or Codex cannot edit files there.
// - It groups its sub-agent tools (and MCP tools) in a `namespace` tool and sends its calls
//   back with `namespace`: translated, they must stay callable and round-trip.
// - For newer model families (gpt-5.6-*) it declares every tool in an `additional_tools`
//   input item, not in `tools`: translated, they must not be lost.
import { readFileSync } from 'node:fs';
import type OpenAI from 'openai';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type TestJsonObject, type TestServer, userWithKey } from '../helpers/server.js';
import { gatewayWithChannels, priceEach } from '../helpers/gateway-channels.js';
import type { MockProvider } from '../mock-provider/server.js';
import { client as openaiClient } from '../relay/relay-helpers.js';

const UPSTREAM_KEY = 'sk-upstream-agents-secret';
const PRICE = { input: 1.25, output: 10, cached_input: 0.125 };
type Json = TestJsonObject;

const fixture = (name: string): Json =>
  JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as Json;

/** Codex's second request of a turn: the history holds its apply_patch call and output. */
const CODEX_TURN = fixture('codex-0.171-apply-patch-turn.json');
/** The first request of that turn: the same body without the call and its output. */
const codexFirst = (model: string): Json => ({
  ...CODEX_TURN,
  model,
  input: (CODEX_TURN.input as Json[]).filter((i) => !String(i.type).startsWith('custom_tool_call')),
});
const PATCH_CALL = (CODEX_TURN.input as Json[]).find((i) => i.type === 'custom_tool_call')!;
const PATCH_OUTPUT = (CODEX_TURN.input as Json[]).find((i) => i.type === 'custom_tool_call_output')!;
/** A second turn with the fallback tool set: a namespaced call (multi_agent_v1) and its output. */
const NS_TURN = fixture('codex-0.171-namespace-turn.json');
const NS_CALL = (NS_TURN.input as Json[]).find((i) => i.type === 'function_call')!;
/** A gpt-5.6-sol turn: tools in an additional_tools item, a namespaced `exec` custom call. */
const AT_TURN = fixture('codex-0.171-additional-tools-turn.json');
const EXEC_CALL = (AT_TURN.input as Json[]).find((i) => i.type === 'custom_tool_call')!;

/** A recorded custom tool call as a chat channel receives it: a function call of one string "input". */
const asChatToolCall = (call: Json, name: string) => ({
  role: 'assistant',
  content: null,
  tool_calls: [
    {
      id: call.call_id,
      type: 'function',
      function: { name, arguments: JSON.stringify({ input: call.input }) },
    },
  ],
});

/** The output items Codex read hold exactly one, with these fields. */
const expectOneItem = (done: Json[], fields: Json) => expect(done).toEqual([expect.objectContaining(fields)]);

describe('Codex CLI apply_patch (a freeform custom tool) on translated channels', () => {
  let s: TestServer;
  let mock: MockProvider;
  let client: OpenAI;

  gatewayWithChannels(
    {},
    {
      apiKey: UPSTREAM_KEY,
      channels: [
        { type: 'openai', models: ['codex-chat'], responses: false },
        { type: 'anthropic', models: ['codex-claude'] },
      ],
      prices: priceEach(['codex-chat', 'codex-claude'], PRICE),
    },
    (g) => {
      ({ s, mock } = g);
    },
  );
  beforeAll(async () => {
    const u = await userWithKey(s, { balance: 100 });
    client = openaiClient(s, u.secret);
  });
  beforeEach(() => mock.reset());

  const lastUpstream = () => mock.requests[mock.requests.length - 1]!;

  /** Codex's first request of the turn on `model`, forcing apply_patch: the call comes back custom. */
  async function forcedPatch(model: string) {
    const res = await run({ ...codexFirst(model), tool_choice: { type: 'custom', name: 'apply_patch' } });
    expectOneItem(res.done, {
      type: 'custom_tool_call',
      status: 'completed',
      name: 'apply_patch',
      input: 'mole',
    });
    return res;
  }

  /** Streams a request as Codex does and collects what Codex's parser reads. */
  async function run(body: Json) {
    const stream = (await client.responses.create(body as never)) as unknown as AsyncIterable<Json>;
    const done: Json[] = [];
    let completed: Json | null = null;
    for await (const e of stream) {
      if (e.type === 'response.output_item.done') done.push(e.item);
      if (e.type === 'response.completed') completed = e.response;
    }
    return { done, completed };
  }

  it('chat channel: apply_patch is a function of one string "input"; the call is a custom_tool_call', async () => {
    // Codex never forces a tool; the mock calls the first declared one, or the forced one.
    const { done, completed } = await forcedPatch('codex-chat');
    const sent = lastUpstream().body as Json;
    expect(lastUpstream().path).toBe('/v1/chat/completions');
    const fn = (sent.tools as Json[]).find((t) => t.function.name === 'apply_patch');
    expect(fn?.function.parameters).toMatchObject({
      properties: { input: { type: 'string' } },
      required: ['input'],
    });
    expect(fn?.function.parameters.properties.input.description).toContain('*** Begin Patch');
    expect(sent.tool_choice).toEqual({ type: 'function', function: { name: 'apply_patch' } });
    // Hosted tools (web_search, tool_search) still have no counterpart: left out.
    expect((sent.tools as Json[]).map((t) => t.function.name)).toEqual([
      'exec_command',
      'apply_patch',
      'view_image',
    ]);
    expect(done[0]!.call_id).toMatch(/^call_/);
    expect(completed?.status).toBe('completed');
  });

  it('chat channel: the recorded history (custom_tool_call + output) becomes a tool call and its result', async () => {
    const { done, completed } = await run({ ...CODEX_TURN, model: 'codex-chat' });
    const msgs = (lastUpstream().body as Json).messages as Json[];
    expect(msgs.slice(-2)).toEqual([
      asChatToolCall(PATCH_CALL, 'apply_patch'),
      { role: 'tool', tool_call_id: PATCH_CALL.call_id, content: PATCH_OUTPUT.output },
    ]);
    // After a tool result the mock answers text: the turn ends.
    expect(done.map((i) => i.type)).toEqual(['message']);
    expect(completed?.status).toBe('completed');
    expect(completed?.usage.output_tokens).toBeGreaterThan(0);
  });

  it('Anthropic channel: apply_patch is a tool with input_schema; tool_use comes back as custom_tool_call', async () => {
    await forcedPatch('codex-claude');
    const sent = lastUpstream().body as Json;
    expect(lastUpstream().path.split('?')[0]).toBe('/v1/messages');
    const tool = (sent.tools as Json[]).find((t) => t.name === 'apply_patch');
    expect(tool?.input_schema).toMatchObject({
      properties: { input: { type: 'string' } },
      required: ['input'],
    });
    expect(sent.tool_choice).toEqual({ type: 'tool', name: 'apply_patch' });

    await run({ ...CODEX_TURN, model: 'codex-claude' });
    const msgs = (lastUpstream().body as Json).messages as Json[];
    expect(msgs.slice(-2)).toEqual([
      {
        role: 'assistant',
        content: [
          {
            type: 'tool_use',
            id: PATCH_CALL.call_id,
            name: 'apply_patch',
            input: { input: PATCH_CALL.input },
          },
        ],
      },
      {
        role: 'user',
        content: [
          {
            type: 'tool_result',
            tool_use_id: PATCH_CALL.call_id,
            content: [{ type: 'text', text: PATCH_OUTPUT.output }],
          },
        ],
      },
    ]);
  });

  it('namespace tools: flattened to {namespace}__{name}; calls come back with their namespace', async () => {
    // The mock calls the first declared function: put Codex's namespace tool first.
    const tools = [...(NS_TURN.tools as Json[])].sort((a) => (a.type === 'namespace' ? -1 : 1));
    for (const model of ['codex-chat', 'codex-claude']) {
      const first = {
        ...NS_TURN,
        model,
        tools,
        input: (NS_TURN.input as Json[]).filter((i) => i.type === 'message'),
      };
      const { done } = await run(first);
      expectOneItem(done, {
        type: 'function_call',
        name: 'close_agent',
        namespace: 'multi_agent_v1',
        arguments: '{"target":"mole"}',
      });
      const { completed } = await run({ ...NS_TURN, model, tools });
      expect(completed?.status).toBe('completed');
    }
    const sent = lastUpstream().body as Json;
    expect((sent.tools as Json[]).map((t) => t.name)).toEqual([
      'multi_agent_v1__close_agent',
      'multi_agent_v1__spawn_agent',
      'exec_command',
    ]);
    expect((sent.messages as Json[]).at(-2)).toEqual({
      role: 'assistant',
      content: [
        {
          type: 'tool_use',
          id: NS_CALL.call_id,
          name: 'multi_agent_v1__close_agent',
          input: { target: 'mole' },
        },
      ],
    });
  });

  it('additional_tools input item: its tools are declared upstream; calls keep name and namespace', async () => {
    for (const model of ['codex-claude', 'codex-chat']) {
      const first = {
        ...AT_TURN,
        model,
        input: (AT_TURN.input as Json[]).filter((i) => !String(i.type).startsWith('custom_tool_call')),
      };
      const { done } = await run(first);
      const sent = lastUpstream().body as Json;
      const names = (sent.tools as Json[]).map((t) => t.name ?? t.function.name);
      expect(names).toEqual(['functions__exec', 'functions__wait', 'collaboration__spawn_agent']);
      expectOneItem(done, { type: 'custom_tool_call', name: 'exec', namespace: 'functions', input: 'mole' });
      const { completed } = await run({ ...AT_TURN, model });
      expect(completed?.status).toBe('completed');
    }
    const msgs = (lastUpstream().body as Json).messages as Json[];
    expect(msgs.at(-2)).toEqual(asChatToolCall(EXEC_CALL, 'functions__exec'));
    expect(msgs.at(-1)).toMatchObject({ role: 'tool', tool_call_id: EXEC_CALL.call_id });
  });
});

// Claude Code 2.1.197, main agent, second request of a turn (recorded on a translated
// channel): adaptive thinking, output_config, context_management, a mid-conversation system
// message, an Agent tool call and its result, anthropic-beta headers.
const CC_TURN = fixture('claude-code-2.1.197-agent-turn.json') as {
  headers: Record<string, string>;
  body: Json;
};

describe('Claude Code through the gateway, replayed', () => {
  let s: TestServer;
  let mock: MockProvider;
  let secret: string;

  gatewayWithChannels(
    {},
    {
      apiKey: UPSTREAM_KEY,
      channels: [
        { type: 'anthropic', models: ['claude-mole'] },
        { type: 'openai', models: ['gpt-mole'] },
      ],
      prices: priceEach(['claude-mole', 'gpt-mole'], PRICE),
    },
    (g) => {
      ({ s, mock } = g);
    },
  );
  beforeAll(async () => {
    secret = (await userWithKey(s, { balance: 100 })).secret;
  });
  beforeEach(() => mock.reset());

  const send = (model: string, auth: Record<string, string>, body: Json = {}) =>
    fetch(`${s.url}/v1/messages?beta=true`, {
      method: 'POST',
      headers: { ...CC_TURN.headers, 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ ...CC_TURN.body, model, ...body }),
    });

  /** The SSE events of an Anthropic stream, by name, with their data. */
  async function events(res: Response): Promise<Array<{ event: string; data: Json }>> {
    const text = await res.text();
    return text
      .split('\n\n')
      .filter((f) => f.includes('data: '))
      .map((f) => ({
        event: /^event: (.*)$/m.exec(f)?.[1] ?? '',
        data: JSON.parse(/^data: (.*)$/m.exec(f)![1]!) as Json,
      }));
  }

  it('Anthropic channel (Bearer): body and anthropic-* headers go upstream as sent; 4xx bodies come back as sent', async () => {
    // The mock, like older Anthropic models, refuses role "system" inside messages; Claude
    // Code's recovery reads the upstream's wording, so the error must reach it untouched.
    const refused = await send('claude-mole', { authorization: `Bearer ${secret}` });
    expect(refused.status).toBe(400);
    const upBody = mock.requests.at(-1)!.body;
    expect(upBody).toEqual({ ...CC_TURN.body, model: 'claude-mole' });
    expect(await refused.json()).toMatchObject({
      type: 'error',
      error: {
        type: 'invalid_request_error',
        message: "messages.1.role: Input should be 'user' or 'assistant'",
      },
      request_id: expect.stringMatching(/^req_/),
    });
    const up = mock.requests.at(-1)!;
    expect(up.headers['anthropic-beta']).toBe(CC_TURN.headers['anthropic-beta']);
    expect(up.headers['anthropic-version']).toBe('2023-06-01');
    expect(up.headers['x-api-key']).toBe(UPSTREAM_KEY);

    const messages = (CC_TURN.body.messages as Json[]).filter((m) => m.role !== 'system');
    const res = await send('claude-mole', { authorization: `Bearer ${secret}` }, { messages });
    expect(res.status).toBe(200);
    const ev = await events(res);
    expect(ev[0]!.event).toBe('message_start');
    expect(ev.at(-1)!.event).toBe('message_stop');
    expect(mock.requests.at(-1)!.body).toEqual({ ...CC_TURN.body, model: 'claude-mole', messages });
  });

  it('OpenAI channel (x-api-key): translated; the mid-conversation system message joins the system prompt', async () => {
    const res = await send('gpt-mole', { 'x-api-key': secret });
    expect(res.status).toBe(200);
    const ev = await events(res);
    expect(ev.map((e) => e.event)).toEqual(
      expect.arrayContaining(['message_start', 'content_block_delta', 'message_delta', 'message_stop']),
    );
    expect(ev.find((e) => e.event === 'message_delta')!.data.delta.stop_reason).toBe('end_turn');
    const up = mock.requests.at(-1)!;
    expect(up.path).toBe('/v1/chat/completions');
    const chat = up.body as Json;
    // Anthropic-only settings stay behind; the output cap is the client's.
    for (const k of ['thinking', 'output_config', 'context_management', 'metadata'])
      expect(chat).not.toHaveProperty(k);
    expect(chat.max_completion_tokens).toBe(32000);
    const midSystem = (CC_TURN.body.messages as Json[]).find((m) => m.role === 'system')!.content as string;
    expect(chat.messages[0].role).toBe('system');
    expect(chat.messages[0].content).toContain(midSystem);
    const call = (CC_TURN.body.messages as Json[])[2]!.content[0];
    expect(chat.messages.slice(1).map((m: Json) => m.role)).toEqual(['user', 'assistant', 'tool']);
    expect(chat.messages[2].tool_calls[0]).toEqual({
      id: call.id,
      type: 'function',
      function: { name: 'Agent', arguments: JSON.stringify(call.input) },
    });
    expect(chat.messages[3].tool_call_id).toBe(call.id);
    expect(chat.tools.map((t: Json) => t.function.name)).toEqual(['Agent', 'Write']);
  });
});
