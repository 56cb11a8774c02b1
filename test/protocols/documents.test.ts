// Documents (PDFs, plain text) across protocols: Claude Code's Read tool sends a PDF as an
// Anthropic `document` block, Gemini clients as `inlineData` / `fileData`, OpenAI's SDKs as a
// chat `file` part or a Responses `input_file`. Translated, each reaches the channel in its own
// protocol's form; one the channel cannot take (a PDF by URL to OpenAI's chat, a file in
// Google's store, a type no other upstream reads) is refused with 400, never dropped.
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import { beforeEach, describe, expect, it } from 'vitest';
import { gatewayWithChannels, priceEach } from '../helpers/gateway-channels.js';
import { type TestServer, userWithKey } from '../helpers/server.js';
import type { MockProvider } from '../mock-provider/server.js';
import { canonicalRequest } from '../../src/relay/canonical.js';
import { codec } from '../../src/relay/protocols/index.js';
import { allLogs, client, rawRelay } from '../relay/relay-helpers.js';

const UP_KEY = 'sk-docs-upstream-0001';
const PDF = Buffer.from('%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n').toString('base64');
const PDF_URL = 'https://example.com/report.pdf';
const MODELS = ['to-openai', 'to-anthropic', 'to-gemini'];

describe('documents across protocols', () => {
  let s: TestServer;
  let mock: MockProvider;
  gatewayWithChannels(
    { backend: 'sqlite' },
    {
      apiKey: UP_KEY,
      channels: [
        { type: 'openai', models: ['to-openai'], responses: false },
        { type: 'anthropic', models: ['to-anthropic'] },
        { type: 'gemini', models: ['to-gemini'] },
      ],
      prices: priceEach(MODELS, { input: 1, output: 2 }),
    },
    (g) => {
      ({ s, mock } = g);
    },
  );
  beforeEach(() => mock.reset());
  const upstream = (): unknown => mock.requests.at(-1)!.body;

  const anthropic = async () =>
    new Anthropic({ baseURL: s.url, apiKey: (await userWithKey(s)).secret, maxRetries: 0 });
  const pdfBlock = {
    type: 'document' as const,
    source: { type: 'base64' as const, media_type: 'application/pdf' as const, data: PDF },
    title: 'report.pdf',
  };
  const ask = (model: string, content: Anthropic.ContentBlockParam[]) => ({
    model,
    max_tokens: 32,
    messages: [{ role: 'user' as const, content }],
  });

  it('an Anthropic PDF block reaches an OpenAI chat channel as a file part', async () => {
    const c = await anthropic();
    await c.messages.create(ask('to-openai', [pdfBlock, { type: 'text', text: 'Summarise.' }]));
    const content = (upstream() as { messages: Array<{ content: unknown }> }).messages[0]!.content;
    expect(content).toEqual([
      { type: 'file', file: { filename: 'report.pdf', file_data: `data:application/pdf;base64,${PDF}` } },
      { type: 'text', text: 'Summarise.' },
    ]);
  });

  it('…a Gemini channel as inlineData; a chat file part reaches an Anthropic channel as a document', async () => {
    const c = await anthropic();
    await c.messages.create(ask('to-gemini', [pdfBlock, { type: 'text', text: 'Summarise.' }]));
    const parts = (upstream() as { contents: Array<{ parts: unknown[] }> }).contents[0]!.parts;
    expect(parts[0]).toEqual({ inlineData: { mimeType: 'application/pdf', data: PDF } });
    const { secret } = await userWithKey(s);
    await client(s, secret).chat.completions.create({
      model: 'to-anthropic',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'file', file: { filename: 'a.pdf', file_data: `data:application/pdf;base64,${PDF}` } },
            { type: 'text', text: 'Summarise.' },
          ],
        },
      ],
    });
    const blocks = (upstream() as { messages: Array<{ content: unknown[] }> }).messages[0]!.content;
    expect(blocks[0]).toEqual({
      type: 'document',
      source: { type: 'base64', media_type: 'application/pdf', data: PDF },
      title: 'a.pdf',
    });
  });

  it('a PDF inside a tool result is kept (Claude Code reading a PDF), by URL where the channel takes URLs', async () => {
    const c = await anthropic();
    const history = (model: string, doc: Anthropic.DocumentBlockParam) => ({
      model,
      max_tokens: 32,
      tools: [{ name: 'read', input_schema: { type: 'object' as const, properties: {} } }],
      messages: [
        { role: 'user' as const, content: 'Read it.' },
        {
          role: 'assistant' as const,
          content: [{ type: 'tool_use' as const, id: 'toolu_1', name: 'read', input: {} }],
        },
        {
          role: 'user' as const,
          content: [{ type: 'tool_result' as const, tool_use_id: 'toolu_1', content: [doc] }],
        },
      ],
    });
    await c.messages.create(history('to-openai', pdfBlock));
    expect(JSON.stringify(upstream())).toContain(`"file_data":"data:application/pdf;base64,${PDF}"`);
    await c.messages.create(
      history('to-gemini', { type: 'document', source: { type: 'url', url: PDF_URL } }),
    );
    expect(JSON.stringify(upstream())).toContain(
      JSON.stringify({ fileData: { mimeType: 'application/pdf', fileUri: PDF_URL } }),
    );
  });

  it('Gemini inlineData and fileData documents reach other channels; what they cannot take is refused', async () => {
    const { secret, key } = await userWithKey(s);
    const ai = new GoogleGenAI({ apiKey: secret, httpOptions: { baseUrl: s.url } });
    const pdfInline = { inlineData: { mimeType: 'application/pdf', data: PDF } };
    await ai.models.generateContent({ model: 'to-openai', contents: [{ role: 'user', parts: [pdfInline] }] });
    expect(JSON.stringify(upstream())).toContain('"type":"file"');
    const byUrl = { fileData: { mimeType: 'application/pdf', fileUri: PDF_URL } };
    await ai.models.generateContent({ model: 'to-anthropic', contents: [{ role: 'user', parts: [byUrl] }] });
    expect((upstream() as { messages: Array<{ content: unknown[] }> }).messages[0]!.content[0]).toEqual({
      type: 'document',
      source: { type: 'url', url: PDF_URL },
    });

    mock.reset();
    const refused = async (model: string, part: Record<string, unknown>) => {
      const r = await rawRelay(s, `/models/${model}:generateContent`, {
        key: secret,
        body: JSON.stringify({ contents: [{ role: 'user', parts: [part] }] }),
      });
      return { status: r.status, message: String(r.json.error?.message) };
    };
    // OpenAI's chat takes a PDF as data only.
    expect(await refused('to-openai', byUrl)).toMatchObject({
      status: 400,
      message: expect.stringContaining('by URL'),
    });
    // A file in Google's store answers to a Google key only.
    const stored = {
      fileData: {
        mimeType: 'application/pdf',
        fileUri: 'https://generativelanguage.googleapis.com/v1beta/files/abc123',
      },
    };
    expect(await refused('to-anthropic', stored)).toMatchObject({
      status: 400,
      message: expect.stringContaining("Google's file store"),
    });
    // Audio reaches no other protocol's upstream.
    const audio = { inlineData: { mimeType: 'audio/wav', data: 'UklGRg==' } };
    expect(await refused('to-anthropic', audio)).toMatchObject({
      status: 400,
      message: expect.stringContaining('audio/wav'),
    });
    expect(mock.requests).toHaveLength(0);
    const rows = await allLogs(s, { key_id: key.id });
    expect(rows.filter((r) => r.status === 400).map((r) => r.cost)).toEqual([0, 0, 0]);
  });

  it('a Responses input_file reaches an Anthropic channel as a document, and a chat channel as a file part', async () => {
    const { secret } = await userWithKey(s);
    const c = client(s, secret);
    const input = [
      {
        role: 'user' as const,
        content: [
          { type: 'input_file' as const, filename: 'r.pdf', file_data: `data:application/pdf;base64,${PDF}` },
          { type: 'input_text' as const, text: 'Summarise.' },
        ],
      },
    ];
    await c.responses.create({ model: 'to-anthropic', input });
    expect((upstream() as { messages: Array<{ content: unknown[] }> }).messages[0]!.content[0]).toMatchObject(
      {
        type: 'document',
        title: 'r.pdf',
      },
    );
    await c.responses.create({ model: 'to-openai', input });
    expect(JSON.stringify(upstream())).toContain('"filename":"r.pdf"');
  });

  it('a file goes to a Responses upstream as input_file, as data or by URL', () => {
    const c = canonicalRequest({
      messages: [
        {
          role: 'user',
          content: [
            {
              type: 'file',
              mediaType: 'application/pdf',
              url: `data:application/pdf;base64,${PDF}`,
              name: 'r.pdf',
            },
            { type: 'file', mediaType: 'application/pdf', url: PDF_URL },
          ],
        },
      ],
    });
    const body = codec('responses').fromCanonical(c, 'm', 16) as { input: Array<{ content: unknown[] }> };
    expect(body.input[0]!.content).toEqual([
      { type: 'input_file', filename: 'r.pdf', file_data: `data:application/pdf;base64,${PDF}` },
      { type: 'input_file', file_url: PDF_URL },
    ]);
  });
});
