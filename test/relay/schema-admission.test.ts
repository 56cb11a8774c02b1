// A structured output's JSON schema is part of the prompt the upstream bills (OpenAI, Anthropic
// and Google count it), so admission holds it too: a key whose quota covers the messages but
// not the schema is refused up front, instead of being served and charged only up to its quota.
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import { describe, expect, it } from 'vitest';
import type { Protocol } from '../../src/relay/canonical.js';
import { codec } from '../../src/relay/protocols/index.js';
import type { RouteInfo } from '../../src/relay/protocols/types.js';
import { countText } from '../../src/relay/tokens.js';
import { relaySuite } from '../helpers/relay-suite.js';
import { backends, type TestServer, userWithKey } from '../helpers/server.js';
import { allLogs, client, expectedCostNano } from './relay-helpers.js';

const PRICE = { input: 2, output: 8 };
const MAX_OUT = 16;
/** ~6k tokens of schema (a long description, as generated schemas carry) beside a 1-word prompt. */
const schema = {
  type: 'object',
  description: 'Each field of the extracted record, described at length. '.repeat(600),
  properties: { answer: { type: 'string' } },
  required: ['answer'],
};
const SCHEMA_TOKENS = countText(JSON.stringify(schema));

type Ask = (s: TestServer, secret: string) => Promise<unknown>;
const CASES: Array<{ name: string; protocol: Protocol; body: Record<string, unknown>; ask: Ask }> = [
  {
    name: 'chat completions, response_format',
    protocol: 'openai',
    body: {
      model: 'schema',
      max_tokens: MAX_OUT,
      messages: [{ role: 'user', content: 'hi' }],
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema } },
    },
    ask: (s, secret) =>
      client(s, secret).chat.completions.create({
        model: 'schema',
        max_tokens: MAX_OUT,
        messages: [{ role: 'user', content: 'hi' }],
        response_format: { type: 'json_schema', json_schema: { name: 'x', schema } },
      }),
  },
  {
    name: 'Responses, text.format',
    protocol: 'responses',
    body: {
      model: 'schema',
      input: 'hi',
      max_output_tokens: MAX_OUT,
      text: { format: { type: 'json_schema', name: 'x', schema } },
    },
    ask: (s, secret) =>
      client(s, secret).responses.create({
        model: 'schema',
        input: 'hi',
        max_output_tokens: MAX_OUT,
        text: { format: { type: 'json_schema', name: 'x', schema } },
      }),
  },
  ...(['output_config', 'output_format'] as const).map((field) => {
    const format = { type: 'json_schema', schema };
    const extra = field === 'output_config' ? { output_config: { format } } : { output_format: format };
    return {
      name: `Anthropic Messages, ${field}`,
      protocol: 'anthropic' as Protocol,
      body: { model: 'schema', max_tokens: MAX_OUT, messages: [{ role: 'user', content: 'hi' }], ...extra },
      ask: ((s, secret) =>
        new Anthropic({ baseURL: s.url, apiKey: secret, maxRetries: 0 }).messages.create({
          model: 'schema',
          max_tokens: MAX_OUT,
          messages: [{ role: 'user', content: 'hi' }],
          ...extra,
        } as Anthropic.MessageCreateParamsNonStreaming)) as Ask,
    };
  }),
  {
    name: 'Gemini, responseJsonSchema',
    protocol: 'gemini',
    body: {
      contents: [{ role: 'user', parts: [{ text: 'hi' }] }],
      generationConfig: {
        maxOutputTokens: MAX_OUT,
        responseMimeType: 'application/json',
        responseJsonSchema: schema,
      },
    },
    ask: (s, secret) =>
      new GoogleGenAI({ apiKey: secret, httpOptions: { baseUrl: s.url } }).models.generateContent({
        model: 'schema',
        contents: 'hi',
        config: {
          maxOutputTokens: MAX_OUT,
          responseMimeType: 'application/json',
          responseJsonSchema: schema,
        },
      }),
  },
];

describe('a structured output schema in the local prompt count', () => {
  it.each(CASES)('$name', ({ protocol, body }) => {
    const route = { protocol, operation: 'generate', pathModel: 'schema' } as RouteInfo;
    const parse = (b: Record<string, unknown>) => codec(protocol).parseRequest(b, route, 100);
    const without = structuredClone(body);
    for (const k of ['response_format', 'text', 'output_config', 'output_format']) delete without[k];
    if (protocol === 'gemini') without.generationConfig = { maxOutputTokens: MAX_OUT };
    const exact = parse(body).exactPromptTokens!() - parse(without).exactPromptTokens!();
    expect(exact).toBeGreaterThanOrEqual(SCHEMA_TOKENS);
    expect(exact).toBeLessThan(SCHEMA_TOKENS + 40);
    expect(parse(body).promptTokens - parse(without).promptTokens).toBeGreaterThanOrEqual(SCHEMA_TOKENS);
  });
});

describe.each(backends())('admission holds a structured output schema [%s]', (backend) => {
  let s: TestServer;
  relaySuite({ backend }, { apiKey: 'schema-upstream', prices: { schema: PRICE } }, (started) => {
    ({ s } = started);
  });

  it.each(CASES)('$name: a quota that covers the messages but not the schema is refused', async ({ ask }) => {
    // Room for the prompt without its schema, a thousand tokens of slack, and the output cap.
    const quota = expectedCostNano({ prompt: 1_000, completion: MAX_OUT }, PRICE);
    expect(quota).toBeLessThan(expectedCostNano({ prompt: SCHEMA_TOKENS, completion: MAX_OUT }, PRICE));
    const { secret, key } = await userWithKey(s, { balance: 100, key: { quota: Number(quota) / 1e9 } });
    const err = (await ask(s, secret).then(
      () => null,
      (e: unknown) => e,
    )) as { status: number } | null;
    expect(err?.status).toBe(429);
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows.map((r) => [r.status, r.error_code, r.cost])).toEqual([[429, 'insufficient_quota', 0]]);
  });
});
