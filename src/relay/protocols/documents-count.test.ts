// A document weighs the same at admission in every protocol: a token for every 4 bytes of the
// file (tokens.ts documentTokens), never its base64 tokenized (a 5 MB PDF sent as a Responses
// input_file held the event loop ~50 s, and a chat `file` part counted nothing at all).
import { describe, expect, it } from 'vitest';
import { refusal } from '../../../test/helpers/codec.js';
import type { Protocol } from '../canonical.js';
import { base64Bytes, documentTokens } from '../tokens.js';
import { codec } from './index.js';
import type { RouteInfo } from './types.js';

// ~1.5 MB of random-looking base64: what a PDF looks like to the tokenizer.
const PDF = Buffer.from(Array.from({ length: 1_100_000 }, (_, i) => (i * 7919) % 251)).toString('base64');
const DATA_URL = `data:application/pdf;base64,${PDF}`;

type Body = Record<string, unknown>;
const CASES: Array<{ protocol: Protocol; withDoc: Body; without: Body }> = [
  {
    protocol: 'openai',
    withDoc: {
      model: 'm',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'file', file: { filename: 'a.pdf', file_data: DATA_URL } },
            { type: 'text', text: 'Summarise.' },
          ],
        },
      ],
    },
    without: { model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: 'Summarise.' }] }] },
  },
  {
    protocol: 'responses',
    withDoc: {
      model: 'm',
      input: [
        {
          role: 'user',
          content: [
            { type: 'input_file', filename: 'a.pdf', file_data: DATA_URL },
            { type: 'input_text', text: 'Summarise.' },
          ],
        },
      ],
    },
    without: { model: 'm', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Summarise.' }] }] },
  },
  {
    protocol: 'anthropic',
    withDoc: {
      model: 'm',
      max_tokens: 16,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF } },
            { type: 'text', text: 'Summarise.' },
          ],
        },
      ],
    },
    without: {
      model: 'm',
      max_tokens: 16,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Summarise.' }] }],
    },
  },
  {
    protocol: 'gemini',
    withDoc: {
      contents: [
        {
          role: 'user',
          parts: [{ inlineData: { mimeType: 'application/pdf', data: PDF } }, { text: 'Summarise.' }],
        },
      ],
    },
    without: { contents: [{ role: 'user', parts: [{ text: 'Summarise.' }] }] },
  },
];

const route = (protocol: Protocol) => ({ protocol, operation: 'generate', pathModel: 'm' }) as RouteInfo;
const parse = (protocol: Protocol, body: Body) => codec(protocol).parseRequest(body, route(protocol), 64);

describe('a document at admission', () => {
  const share = documentTokens(base64Bytes(PDF.length));

  it.each(CASES)(
    '$protocol: its size, neither its base64 tokenized nor nothing',
    ({ protocol, withDoc, without }) => {
      expect(share).toBe(Math.ceil(base64Bytes(PDF.length) / 4));
      const exact =
        parse(protocol, withDoc).exactPromptTokens!() - parse(protocol, without).exactPromptTokens!();
      // (+ a separator where the document stood among the message's parts)
      expect(exact).toBeGreaterThanOrEqual(share);
      expect(exact).toBeLessThanOrEqual(share + 2);
      const bound = parse(protocol, withDoc).promptTokens - parse(protocol, without).promptTokens;
      expect(bound).toBeGreaterThanOrEqual(share);
    },
  );

  it('a small document counts at least an image; one by URL (size unknown) the most a document can', () => {
    expect(documentTokens(100)).toBe(documentTokens(0));
    expect(documentTokens(null)).toBe(500_000);
    expect(documentTokens(1e12)).toBe(500_000);
  });
});

describe('Anthropic documents off an Anthropic channel', () => {
  const ask = (source: Body) =>
    parse('anthropic', {
      model: 'm',
      max_tokens: 16,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'document', source },
            { type: 'text', text: 'Summarise.' },
          ],
        },
      ],
    });

  it('a `content` source goes as its text; a file_id is refused (it lives in Anthropic’s store)', () => {
    const c = codec('anthropic').toCanonical(
      ask({
        type: 'content',
        content: [
          { type: 'text', text: 'CONTENT-DOC' },
          { type: 'text', text: 'two' },
        ],
      }),
    );
    expect(c.messages[0]!.content[0]).toEqual({ type: 'text', text: 'CONTENT-DOC\ntwo' });
    const e = refusal(() => codec('anthropic').toCanonical(ask({ type: 'file', file_id: 'file_abc' })));
    expect(e.message).toContain('file_id');
  });
});

describe('Gemini fileData without a mimeType', () => {
  it('is read by its extension: a .pdf is a document, not an image', () => {
    const c = codec('gemini').toCanonical(
      parse('gemini', {
        contents: [{ role: 'user', parts: [{ fileData: { fileUri: 'https://example.com/a.pdf' } }] }],
      }),
    );
    expect(c.messages[0]!.content[0]).toEqual({
      type: 'file',
      mediaType: 'application/pdf',
      url: 'https://example.com/a.pdf',
    });
  });
});

describe('documents and text in tool results, off their protocol', () => {
  const toolTurn = (result: unknown[]) =>
    parse('anthropic', {
      model: 'm',
      max_tokens: 16,
      tools: [{ name: 'read', input_schema: { type: 'object', properties: {} } }],
      messages: [
        { role: 'user', content: 'Read it.' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'read', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: result }] },
      ],
    });

  it('Gemini gets a result’s texts apart; OpenAI’s chat is told documents follow, not only images', () => {
    const texts = toolTurn([
      { type: 'text', text: 'here' },
      { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'TR-TEXT-DOC' } },
    ]);
    const g = codec('gemini').fromCanonical(codec('anthropic').toCanonical(texts), 'up', 16) as {
      contents: Array<{ parts: Array<{ functionResponse?: { response: unknown } }> }>;
    };
    expect(g.contents[2]!.parts[0]!.functionResponse!.response).toEqual({ output: 'here\nTR-TEXT-DOC' });

    const pdf = toolTurn([
      { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0=' } },
    ]);
    const o = codec('openai').fromCanonical(codec('anthropic').toCanonical(pdf), 'up', 16) as {
      messages: Array<{ role: string; content: unknown }>;
    };
    expect(o.messages.at(-1)).toMatchObject({
      role: 'user',
      content: [
        { type: 'text', text: 'The images and documents the tool results above returned:' },
        { type: 'file' },
      ],
    });
  });

  it('a chat file part with neither file_data nor file_id says what it lacks', () => {
    const r = parse('openai', {
      model: 'm',
      messages: [{ role: 'user', content: [{ type: 'file', file: {} }] }],
    });
    expect(refusal(() => codec('openai').toCanonical(r)).message).toContain('need file_data');
  });
});
