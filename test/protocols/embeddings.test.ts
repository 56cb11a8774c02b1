// Embeddings across protocols (contract §6: any ingress protocol may reach any channel type that
// serves the model). @google/genai's embedContent (`:batchEmbedContents`) and the older
// single `:embedContent`, on a Gemini channel (passed through) and on an OpenAI channel
// (translated); the openai SDK's embeddings on a Gemini channel. The mock makes a vector from
// its text alone, the same under either protocol, so a vector's path shows in its values.
import { GoogleGenAI } from '@google/genai';
import OpenAI from 'openai';
import { beforeEach, describe, expect, it } from 'vitest';
import { countText } from '../../src/relay/tokens.js';
import { channelTo, gatewayWithChannels } from '../helpers/gateway-channels.js';
import { type TestJsonObject, type TestServer, userWithKey } from '../helpers/server.js';
import type { MockProvider } from '../mock-provider/server.js';
import {
  addChannel,
  allLogs,
  expectedCostNano,
  nanoOf,
  type PriceUsd,
  setPrice,
} from '../relay/relay-helpers.js';

const UPSTREAM_KEY = 'AIzaEmbeddingsChannelKey';
const PRICES: Record<string, PriceUsd> = {
  'g-embed': { input: 0.15, output: 0 },
  'o-embed': { input: 0.02, output: 0 },
};
const TEXTS = ['Moles dig tunnels.', 'Where do moles sleep?'];

describe('embeddings across protocols', () => {
  let s: TestServer;
  let mock: MockProvider;
  gatewayWithChannels(
    {},
    {
      apiKey: UPSTREAM_KEY,
      channels: [
        { type: 'gemini', models: ['g-embed'], model_map: { 'g-embed': 'gemini-embedding-001' } },
        { type: 'openai', models: ['o-embed'], model_map: { 'o-embed': 'text-embedding-3-small' } },
      ],
      prices: PRICES,
    },
    (g) => {
      ({ s, mock } = g);
    },
  );
  beforeEach(() => mock.reset());

  async function fresh() {
    const u = await userWithKey(s, { balance: 10 });
    return {
      ...u,
      ai: new GoogleGenAI({ apiKey: u.secret, httpOptions: { baseUrl: s.url } }),
      openai: new OpenAI({ apiKey: u.secret, baseURL: `${s.url}/v1`, maxRetries: 0 }),
    };
  }
  /** The mock's own vectors, asked for directly in its OpenAI protocol. */
  async function direct(texts: string[], dimensions: number): Promise<number[][]> {
    const o = new OpenAI({ apiKey: UPSTREAM_KEY, baseURL: mock.url, maxRetries: 0 });
    const r = await o.embeddings.create({ model: 'text-embedding-3-small', input: texts, dimensions });
    return r.data.map((d) => d.embedding);
  }
  async function onlyLog(keyId: number) {
    const rows = await allLogs(s, { key_id: keyId });
    expect(rows).toHaveLength(1);
    return rows[0]! as (typeof rows)[0] & { protocol?: string };
  }
  const last = () => mock.requests[mock.requests.length - 1]!;
  const localCount = (texts: string[]) => texts.reduce((n, t) => n + countText(t), 0);

  it('@google/genai on a Gemini channel: passed through, the texts billed as counted here', async () => {
    const { ai, key } = await fresh();
    const want = await direct(TEXTS, 16);
    const r = await ai.models.embedContent({
      model: 'g-embed',
      contents: TEXTS,
      config: { outputDimensionality: 16, taskType: 'RETRIEVAL_DOCUMENT' },
    });
    expect(r.embeddings?.map((e) => e.values)).toEqual(want);
    expect(last().path).toBe('/v1beta/models/gemini-embedding-001:batchEmbedContents');
    expect(last().headers['x-goog-api-key']).toBe(UPSTREAM_KEY);
    const sent = last().body as { requests: TestJsonObject[] };
    // As sent, but each request names the upstream's model.
    expect(sent.requests.map((q) => [q.model, q.taskType, q.outputDimensionality])).toEqual([
      ['models/gemini-embedding-001', 'RETRIEVAL_DOCUMENT', 16],
      ['models/gemini-embedding-001', 'RETRIEVAL_DOCUMENT', 16],
    ]);
    const row = await onlyLog(key.id as number);
    const prompt = localCount(TEXTS);
    expect(row).toMatchObject({ status: 200, model: 'g-embed', protocol: 'gemini', prompt_tokens: prompt });
    expect(row.completion_tokens).toBe(0);
    expect(nanoOf(row.cost)).toBe(expectedCostNano({ prompt, completion: 0 }, PRICES['g-embed']!));
  });

  it('@google/genai on an OpenAI channel: translated, billed on the upstream’s usage', async () => {
    const { ai, key } = await fresh();
    const r = await ai.models.embedContent({
      model: 'o-embed',
      contents: TEXTS,
      config: { outputDimensionality: 8 },
    });
    expect(r.embeddings?.map((e) => e.values)).toEqual(await direct(TEXTS, 8));
    const sent = mock.requests.find((q) => q.path === '/v1/embeddings' && q.headers.authorization)!;
    expect(sent.body).toEqual({
      model: 'text-embedding-3-small',
      input: TEXTS,
      encoding_format: 'float',
      dimensions: 8,
    });
    const row = await onlyLog(key.id as number);
    expect(row).toMatchObject({
      status: 200,
      model: 'o-embed',
      protocol: 'gemini',
      prompt_tokens: localCount(TEXTS),
    });
    expect(nanoOf(row.cost)).toBe(
      expectedCostNano({ prompt: localCount(TEXTS), completion: 0 }, PRICES['o-embed']!),
    );
  });

  it('the single :embedContent answers { embedding: { values } } on either channel', async () => {
    const { secret } = await fresh();
    const body = JSON.stringify({ content: { parts: [{ text: TEXTS[0] }] }, outputDimensionality: 4 });
    const [want] = await direct([TEXTS[0]!], 4);
    for (const model of ['g-embed', 'o-embed']) {
      const res = await fetch(`${s.url}/v1beta/models/${model}:embedContent`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-goog-api-key': secret },
        body,
      });
      expect(res.status, model).toBe(200);
      expect(await res.json()).toEqual({ embedding: { values: want } });
    }
    expect(last().path).toBe('/v1/embeddings');
  });

  it('the openai SDK on a Gemini channel: translated both ways, base64 (its default) and floats', async () => {
    const { openai, key } = await fresh();
    const want = await direct(TEXTS, 12);
    const asBase64 = await openai.embeddings.create({ model: 'g-embed', input: TEXTS, dimensions: 12 });
    expect(asBase64.data.map((d) => d.embedding)).toEqual(want);
    expect(asBase64.usage).toEqual({ prompt_tokens: localCount(TEXTS), total_tokens: localCount(TEXTS) });
    expect(last().path).toBe('/v1beta/models/gemini-embedding-001:batchEmbedContents');
    expect(last().body).toEqual({
      requests: TEXTS.map((text) => ({
        model: 'models/gemini-embedding-001',
        content: { parts: [{ text }] },
        outputDimensionality: 12,
      })),
    });
    const floats = await openai.embeddings.create({
      model: 'g-embed',
      input: TEXTS[1]!,
      dimensions: 12,
      encoding_format: 'float',
    });
    expect(floats.data[0]!.embedding).toEqual(want[1]);
    const rows = await allLogs(s, { key_id: key.id as number });
    expect(rows.map((r) => [r.status, r.prompt_tokens])).toEqual([
      [200, countText(TEXTS[1]!)],
      [200, localCount(TEXTS)],
    ]);
  });

  it('more inputs than one Gemini call takes go in pieces of 100, answered as one', async () => {
    const { openai, key } = await fresh();
    const texts = Array.from({ length: 250 }, (_, i) => `mole fact ${i}`);
    const want = await direct(texts, 4);
    const r = await openai.embeddings.create({ model: 'g-embed', input: texts, dimensions: 4 });
    expect(r.data.map((d) => d.index)).toEqual(texts.map((_, i) => i));
    expect(r.data.map((d) => d.embedding)).toEqual(want);
    const pieces = mock.requests.filter((q) => q.path.endsWith(':batchEmbedContents'));
    expect(pieces.map((q) => (q.body as { requests: unknown[] }).requests.length)).toEqual([100, 100, 50]);
    const row = await onlyLog(key.id as number);
    expect(row).toMatchObject({ status: 200, prompt_tokens: localCount(texts) });
  });

  it('what cannot be translated, or is malformed, is refused in the client’s shape', async () => {
    const { openai, secret } = await fresh();
    // Token ids mean nothing to a Gemini model.
    const tokens = await openai.embeddings.create({ model: 'g-embed', input: [[1, 2, 3]] }).catch((e) => e);
    expect(tokens).toBeInstanceOf(OpenAI.APIError);
    expect([tokens.status, tokens.code]).toEqual([400, 'invalid_request']);
    for (const [body, says] of [
      [{ input: 'x', encoding_format: 'int8' }, 'encoding_format'],
      [{ input: [] }, 'must not be empty'],
    ] as const) {
      const e = await openai.embeddings
        .create({ model: 'g-embed', ...(body as unknown as { input: string }) })
        .catch((err: unknown) => err);
      expect(e).toBeInstanceOf(OpenAI.APIError);
      expect([(e as InstanceType<typeof OpenAI.APIError>).status, (e as Error).message]).toEqual([
        400,
        expect.stringContaining(says),
      ]);
    }
    const post = (model: string, method: string, body: unknown) =>
      fetch(`${s.url}/v1beta/models/${model}:${method}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-goog-api-key': secret },
        body: JSON.stringify(body),
      }).then(async (r) => ({ status: r.status, json: (await r.json()) as TestJsonObject }));
    for (const [method, body] of [
      ['embedContent', {}],
      ['embedContent', { content: { parts: [] } }],
      ['batchEmbedContents', { requests: [] }],
      ['batchEmbedContents', { requests: [{ content: { parts: [{ text: 1 }] } }] }],
    ] as const) {
      const r = await post('o-embed', method, body);
      expect(r.status, JSON.stringify(r.json)).toBe(400);
      expect(r.json.error).toMatchObject({ code: 400, status: 'INVALID_ARGUMENT' });
    }
    // A batch request names the path's model, or none.
    const other = await post('o-embed', 'batchEmbedContents', {
      requests: [{ model: 'models/g-embed', content: { parts: [{ text: 'a' }] } }],
    });
    expect([other.status, other.json.error.details?.[0]?.metadata?.param]).toEqual([
      400,
      'requests[0].model',
    ]);
    // One OpenAI call takes one vector size.
    const mixed = await post('o-embed', 'batchEmbedContents', {
      requests: [
        { content: { parts: [{ text: 'a' }] }, outputDimensionality: 4 },
        { content: { parts: [{ text: 'b' }] }, outputDimensionality: 8 },
      ],
    });
    expect(mixed.status).toBe(400);
    expect(JSON.stringify(mixed.json)).toContain('outputDimensionality');
    // A model no channel embeds with: the client's to change, not a 502 to retry.
    await addChannel(s, channelTo(mock, UPSTREAM_KEY, { type: 'anthropic', models: ['a-only'] }));
    await setPrice(s, 'a-only', { input: 1, output: 1 });
    const none = await post('a-only', 'batchEmbedContents', {
      requests: [{ content: { parts: [{ text: 'x' }] } }],
    });
    expect([none.status, none.json.error.status]).toEqual([400, 'INVALID_ARGUMENT']);
    expect(none.json.error.message).toContain('not served for embeddings');
  });
});
