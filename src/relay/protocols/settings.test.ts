// Settings beyond temperature and top_p cross protocols when the upstream's has them: seeds and
// penalties between OpenAI's chat and Gemini, top_k between Anthropic and Gemini, the end user
// and OpenAI's prompt cache key, and a tool's `strict` asked outright.
import { describe, expect, it } from 'vitest';
import type { Protocol } from '../canonical.js';
import { codec } from './index.js';
import type { RouteInfo } from './types.js';

type Body = Record<string, unknown>;
const translate = (from: Protocol, body: Body, to: Protocol): Body => {
  const route = { protocol: from, operation: 'generate', pathModel: 'm' } as RouteInfo;
  const r = codec(from).parseRequest(body, route, 64);
  return codec(to).fromCanonical(codec(from).toCanonical(r), 'up', 64) as Body;
};
const weather = {
  type: 'object',
  properties: { city: { type: 'string' } },
  required: ['city'],
  additionalProperties: false,
};

describe('settings across protocols', () => {
  const chat = {
    model: 'm',
    messages: [{ role: 'user', content: 'hi' }],
    seed: 7,
    presence_penalty: 0.5,
    frequency_penalty: -0.5,
    user: 'user-42',
    prompt_cache_key: 'session-9',
    tools: [{ type: 'function', function: { name: 'get_weather', parameters: weather, strict: true } }],
  };

  it('OpenAI chat → Gemini: seed and penalties; → Anthropic: the user; → chat: all, and strict', () => {
    const g = translate('openai', chat, 'gemini');
    expect(g.generationConfig).toMatchObject({ seed: 7, presencePenalty: 0.5, frequencyPenalty: -0.5 });
    const a = translate('openai', chat, 'anthropic');
    expect(a.metadata).toEqual({ user_id: 'user-42' });
    expect(a).not.toHaveProperty('seed');
    const back = translate('openai', chat, 'openai');
    expect(back).toMatchObject({ seed: 7, user: 'user-42', prompt_cache_key: 'session-9' });
    expect((back.tools as Body[])[0]).toMatchObject({ function: { strict: true } });
  });

  it('Responses → chat: prompt_cache_key, the user (safety_identifier first), and strict only when asked', () => {
    const body = {
      model: 'm',
      input: 'hi',
      prompt_cache_key: 'codex-thread-1',
      safety_identifier: 'hashed-1',
      user: 'old-style',
      tools: [
        { type: 'function', name: 'strict_one', parameters: weather, strict: true },
        { type: 'function', name: 'loose_one', parameters: { type: 'object', properties: {} } },
      ],
    };
    const c = translate('responses', body, 'openai');
    expect(c).toMatchObject({ prompt_cache_key: 'codex-thread-1', user: 'hashed-1' });
    const fns = (c.tools as Array<{ function: Body }>).map((t) => t.function);
    expect(fns[0]).toMatchObject({ name: 'strict_one', strict: true });
    expect(fns[1]).not.toHaveProperty('strict');
  });

  it('Anthropic ⇄ Gemini: top_k', () => {
    const a = translate(
      'anthropic',
      { model: 'm', max_tokens: 16, top_k: 40, messages: [{ role: 'user', content: 'hi' }] },
      'gemini',
    );
    expect(a.generationConfig).toMatchObject({ topK: 40 });
    const g = translate(
      'gemini',
      { contents: [{ role: 'user', parts: [{ text: 'hi' }] }], generationConfig: { topK: 12, seed: 3 } },
      'anthropic',
    );
    expect(g).toMatchObject({ top_k: 12 });
    expect(g).not.toHaveProperty('seed');
    // OpenAI's chat has no top_k: left out.
    expect(
      translate(
        'anthropic',
        { model: 'm', max_tokens: 16, top_k: 40, messages: [{ role: 'user', content: 'hi' }] },
        'openai',
      ),
    ).not.toHaveProperty('top_k');
  });

  it('a user id past the 256 characters Anthropic takes goes unsent there', () => {
    const long = { ...chat, user: 'u'.repeat(257) };
    expect(translate('openai', long, 'anthropic')).not.toHaveProperty('metadata');
    expect(translate('openai', { ...chat, user: 'u'.repeat(256) }, 'anthropic')).toHaveProperty('metadata');
  });

  it('values of the wrong kind are left out', () => {
    const odd = { ...chat, seed: 'seven', user: 42, prompt_cache_key: '' };
    const g = translate('openai', odd, 'openai');
    expect(g).not.toHaveProperty('seed');
    expect(g).not.toHaveProperty('user');
    expect(g).not.toHaveProperty('prompt_cache_key');
  });
});
