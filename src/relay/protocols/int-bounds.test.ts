// An output cap out of range is refused with a message that names the bound it broke: a
// 2147483647 cap used to be told "must be a positive integer", which it is.
import { describe, expect, it } from 'vitest';
import { refusal } from '../../../test/helpers/codec.js';
import type { Protocol } from '../canonical.js';
import { codec } from './index.js';
import type { RouteInfo } from './types.js';

const CASES: Array<{ protocol: Protocol; body: (v: unknown) => Record<string, unknown>; param: string }> = [
  {
    protocol: 'openai',
    body: (v) => ({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: v }),
    param: 'max_completion_tokens',
  },
  {
    protocol: 'responses',
    body: (v) => ({ model: 'm', input: 'hi', max_output_tokens: v }),
    param: 'max_output_tokens',
  },
  {
    protocol: 'anthropic',
    body: (v) => ({ model: 'm', max_tokens: v, messages: [{ role: 'user', content: 'hi' }] }),
    param: 'max_tokens',
  },
  {
    protocol: 'gemini',
    body: (v) => ({ contents: [{ parts: [{ text: 'hi' }] }], generationConfig: { maxOutputTokens: v } }),
    param: 'generationConfig.maxOutputTokens',
  },
];

describe.each(CASES)('$protocol output cap bounds', ({ protocol, body, param }) => {
  const route = { protocol, operation: 'generate', pathModel: 'm' } as RouteInfo;
  const refused = (v: unknown) => refusal(() => codec(protocol).parseRequest(body(v), route, 64));

  it.each([
    [2_147_483_647, /10000000/],
    [0, /(at least|greater than or equal to) 1/],
    [1.5, /integer/],
    ['8', /integer/],
  ])('%s → %s', (v, message) => {
    const e = refused(v);
    expect(e.code).toBe('invalid_request');
    expect(e.param).toBe(param);
    expect(e.message).toMatch(message);
  });
});
