import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiError, FunctionCallingConfigMode, GoogleGenAI } from '@google/genai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as canon from '../../../test/helpers/canonical.js';
import { decodeStream, refusal } from '../../../test/helpers/codec.js';
import { AppError } from '../../http/errors.js';
import type { CanonicalAnswer, CanonicalRequest, StreamEvent } from '../canonical.js';
import { StreamBroken } from '../canonical.js';
import { countChatPrompt } from '../tokens.js';
import { countGeminiTokens, geminiCodec, geminiModelList, geminiUsage } from './gemini.js';
import { exactPromptTokens, type IngressRequest, type RouteInfo } from './types.js';

const route = (pathModel: string, pathStream = false): RouteInfo => ({
  protocol: 'gemini',
  operation: 'generate',
  pathModel,
  pathStream,
});
const parse = (body: Record<string, unknown>, r = route('gemini-2.5-flash')) =>
  geminiCodec.parseRequest(body, r, 4096);
/** A parsed request with its exact prompt count (admission holds a bound until it needs this). */
const counted = (body: Record<string, unknown>) => {
  const r = parse(body);
  return { ...r, promptTokens: exactPromptTokens(r) };
};

// What @google/genai 2.x sends for generateContent with a system instruction, a tool and config.
const SDK_BODY = {
  contents: [{ parts: [{ text: 'What is the weather in Paris?' }], role: 'user' }],
  systemInstruction: { parts: [{ text: 'Answer briefly.' }], role: 'user' },
  tools: [
    {
      functionDeclarations: [
        {
          name: 'get_weather',
          description: 'Weather for a city',
          parametersJsonSchema: {
            type: 'object',
            properties: { city: { type: 'string' } },
            required: ['city'],
          },
        },
      ],
    },
  ],
  toolConfig: { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['get_weather'] } },
  generationConfig: {
    maxOutputTokens: 100,
    temperature: 0.2,
    topP: 0.9,
    stopSequences: ['END'],
    thinkingConfig: { thinkingBudget: 0 },
  },
};

describe('gemini codec: parseRequest', () => {
  it('takes the model and streaming from the path, tolerating a models/ prefix', () => {
    const r = parse(SDK_BODY, route('models/gemini-2.5-flash', true));
    expect(r).toMatchObject({
      protocol: 'gemini',
      operation: 'generate',
      model: 'gemini-2.5-flash',
      stream: true,
      maxOutputTokens: 100,
      impliedOutputCap: null,
      clientWantsUsage: true,
    });
    expect(r.body).toBe(SDK_BODY);
    expect(parse({ contents: [{ parts: [{ text: 'hi' }] }] }).stream).toBe(false);
  });

  it('admits with the default cap when none is given, times candidateCount', () => {
    const r = parse({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] });
    expect(r.maxOutputTokens).toBe(4096);
    expect(r.impliedOutputCap).toBe(4096);
    const n = parse({ contents: [{ parts: [{ text: 'hi' }] }], generationConfig: { candidateCount: 2 } });
    expect(n.maxOutputTokens).toBe(8192);
    // A thinking budget (Gemini CLI grants 8192) comes on top of the implied cap.
    const t = parse({
      contents: [{ parts: [{ text: 'hi' }] }],
      generationConfig: { thinkingConfig: { includeThoughts: true, thinkingBudget: 8192 } },
    });
    expect([t.maxOutputTokens, t.impliedOutputCap]).toEqual([4096 + 8192, 4096 + 8192]);
    const dyn = parse({
      contents: [{ parts: [{ text: 'hi' }] }],
      generationConfig: { maxOutputTokens: 100, thinkingConfig: { thinkingBudget: -1 } },
    });
    expect([dyn.maxOutputTokens, dyn.impliedOutputCap]).toEqual([100, null]);
  });

  it('accepts the proto snake_case names Google documents', () => {
    const r = parse({
      system_instruction: { parts: [{ text: 'Be terse.' }] },
      contents: [
        { role: 'user', parts: [{ inline_data: { mime_type: 'image/png', data: 'iVBORw0KGgo=' } }] },
      ],
      generation_config: { max_output_tokens: 7 },
    });
    expect(r.maxOutputTokens).toBe(7);
    const c = geminiCodec.toCanonical(r);
    expect(c.system).toEqual(['Be terse.']);
    expect(c.messages[0]).toEqual({
      role: 'user',
      content: [{ type: 'image', url: 'data:image/png;base64,iVBORw0KGgo=' }],
    });
    expect(c.maxOutputTokens).toBe(7);
  });

  it('refuses client mistakes with invalid_request and the parameter, never a crash', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'contents'],
      [{ contents: 5 }, 'contents'],
      [{ contents: [] }, 'contents'],
      [{ contents: ['hi'] }, 'contents[0]'],
      [{ contents: [{ role: 'assistant', parts: [] }] }, 'contents[0].role'],
      [{ contents: [{ role: 7, parts: [] }] }, 'contents[0].role'],
      [{ contents: [{ parts: 'hi' }] }, 'contents[0].parts'],
      [{ contents: [{ parts: [null] }] }, 'contents[0].parts[0]'],
      [{ contents: [{ parts: [{ text: 3 }] }] }, 'contents[0].parts[0].text'],
      [{ contents: [{ parts: [{ inlineData: { data: 'x' } }] }] }, 'contents[0].parts[0].inlineData'],
      [{ contents: [{ parts: [{ fileData: {} }] }] }, 'contents[0].parts[0].fileData'],
      [{ contents: [{ parts: [{ functionCall: { args: {} } }] }] }, 'contents[0].parts[0].functionCall'],
      [
        { contents: [{ parts: [{ functionCall: { name: 'f', args: 'x' } }] }] },
        'contents[0].parts[0].functionCall.args',
      ],
      [
        { contents: [{ parts: [{ functionResponse: { response: {} } }] }] },
        'contents[0].parts[0].functionResponse',
      ],
      [{ contents: [{ parts: [] }], systemInstruction: 4 }, 'systemInstruction'],
      [{ contents: [{ parts: [] }], tools: {} }, 'tools'],
      [{ contents: [{ parts: [] }], tools: [{ functionDeclarations: {} }] }, 'tools[0].functionDeclarations'],
      [
        { contents: [{ parts: [] }], tools: [{ functionDeclarations: [{}] }] },
        'tools[0].functionDeclarations[0].name',
      ],
      [{ contents: [{ parts: [] }], toolConfig: [] }, 'toolConfig'],
      [
        { contents: [{ parts: [] }], toolConfig: { functionCallingConfig: { mode: 'SOMETIMES' } } },
        'toolConfig.functionCallingConfig.mode',
      ],
      [
        { contents: [{ parts: [] }], toolConfig: { functionCallingConfig: { allowedFunctionNames: 'f' } } },
        'toolConfig.functionCallingConfig.allowedFunctionNames',
      ],
      [{ contents: [{ parts: [] }], generationConfig: 'x' }, 'generationConfig'],
      [
        { contents: [{ parts: [] }], generationConfig: { maxOutputTokens: '10' } },
        'generationConfig.maxOutputTokens',
      ],
      [
        { contents: [{ parts: [] }], generationConfig: { maxOutputTokens: 0 } },
        'generationConfig.maxOutputTokens',
      ],
      [
        { contents: [{ parts: [] }], generationConfig: { temperature: 'hot' } },
        'generationConfig.temperature',
      ],
      [
        { contents: [{ parts: [] }], generationConfig: { stopSequences: [1] } },
        'generationConfig.stopSequences',
      ],
      [
        { contents: [{ parts: [] }], generationConfig: { thinkingConfig: 1 } },
        'generationConfig.thinkingConfig',
      ],
      [
        { contents: [{ parts: [] }], generationConfig: { thinkingConfig: { thinkingBudget: 'lots' } } },
        'generationConfig.thinkingConfig.thinkingBudget',
      ],
    ];
    for (const [body, param] of cases) {
      const e = refusal(() => parse(body));
      expect(e.code, JSON.stringify(body)).toBe('invalid_request');
      expect(e.param, JSON.stringify(body)).toBe(param);
    }
    expect(refusal(() => parse(SDK_BODY, route(''))).param).toBe('model');
    expect(refusal(() => parse(SDK_BODY, route('models/'))).param).toBe('model');
  });

  it('counts system, text, media, function calls and responses, and tool declarations', () => {
    const base = counted({ contents: [{ role: 'user', parts: [{ text: 'Hello there' }] }] }).promptTokens;
    expect(base).toBe(countChatPrompt([{ role: 'user', content: 'Hello there' }]));
    const withSystem = counted({
      contents: [{ role: 'user', parts: [{ text: 'Hello there' }] }],
      systemInstruction: { parts: [{ text: 'You are a helpful mole.' }] },
    }).promptTokens;
    expect(withSystem).toBeGreaterThan(base + 5);
    const withImage = counted({
      contents: [
        { role: 'user', parts: [{ text: 'Hello there' }, { fileData: { fileUri: 'https://x/y.png' } }] },
      ],
    }).promptTokens;
    expect(withImage).toBeGreaterThanOrEqual(base + 85);
    const full = counted(SDK_BODY).promptTokens;
    const noTools = counted({ ...SDK_BODY, tools: undefined }).promptTokens;
    expect(full - noTools).toBeGreaterThan(20);
    const turn = counted({
      contents: [
        { role: 'user', parts: [{ text: 'Hello there' }] },
        { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }] },
        {
          role: 'user',
          parts: [{ functionResponse: { name: 'get_weather', response: { output: 'sunny, 21C' } } }],
        },
      ],
    }).promptTokens;
    expect(turn).toBeGreaterThan(base + 15);
  });

  it('countGeminiTokens counts a countTokens body, plain or wrapped', () => {
    const body = { contents: [{ role: 'user', parts: [{ text: 'Hello there' }] }] };
    expect(countGeminiTokens(body)).toBe(counted(body).promptTokens);
    expect(countGeminiTokens({ generateContentRequest: { model: 'models/x', ...SDK_BODY } })).toBe(
      counted(SDK_BODY).promptTokens,
    );
    expect(() => countGeminiTokens({ contents: 'x' })).toThrow(AppError);
  });

  it('lists models the way the SDK reads them', () => {
    const list = geminiModelList(['gemini-2.5-flash']);
    expect(list.models[0]).toMatchObject({
      name: 'models/gemini-2.5-flash',
      displayName: 'gemini-2.5-flash',
      supportedGenerationMethods: expect.arrayContaining(['generateContent', 'countTokens']),
    });
  });
});

describe('gemini codec: toCanonical', () => {
  it('maps system, tools, tool choice, sampling and the output cap', () => {
    const c = geminiCodec.toCanonical(parse(SDK_BODY));
    expect(c).toEqual({
      system: ['Answer briefly.'],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'What is the weather in Paris?' }] }],
      tools: [
        {
          name: 'get_weather',
          description: 'Weather for a city',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
        },
      ],
      toolChoice: { name: 'get_weather' },
      maxOutputTokens: 100,
      temperature: 0.2,
      topP: 0.9,
      stop: ['END'],
      stream: false,
      responseFormat: null,
      parallelToolCalls: null,
    } satisfies CanonicalRequest);
  });

  it("turns Gemini's OpenAPI schema into JSON Schema, and maps every mode", () => {
    const body = {
      contents: [{ parts: [{ text: 'x' }] }],
      tools: [
        {
          functionDeclarations: [
            {
              name: 'f',
              parameters: {
                type: 'OBJECT',
                properties: {
                  n: { type: 'INTEGER', nullable: true },
                  tags: { type: 'ARRAY', items: { type: 'STRING', enum: ['a', 'b'] } },
                },
                required: ['n'],
                propertyOrdering: ['n', 'tags'],
              },
            },
            { name: 'g' },
          ],
        },
        { googleSearch: {} },
      ],
    };
    const c = geminiCodec.toCanonical(parse(body));
    expect(c.tools).toEqual([
      {
        name: 'f',
        parameters: {
          type: 'object',
          properties: {
            n: { type: ['integer', 'null'] },
            tags: { type: 'array', items: { type: 'string', enum: ['a', 'b'] } },
          },
          required: ['n'],
        },
      },
      { name: 'g', parameters: { type: 'object', properties: {} } },
    ]);
    const mode = (fc: Record<string, unknown>) =>
      geminiCodec.toCanonical(parse({ ...body, toolConfig: { functionCallingConfig: fc } })).toolChoice;
    expect(mode({ mode: 'NONE' })).toBe('none');
    expect(mode({ mode: 'AUTO' })).toBe('auto');
    expect(mode({ mode: 'ANY' })).toBe('required');
    expect(mode({ mode: 'ANY', allowedFunctionNames: ['f', 'g'] })).toBe('required');
    expect(mode({ mode: 'ANY', allowedFunctionNames: ['g'] })).toEqual({ name: 'g' });
    expect(geminiCodec.toCanonical(parse(body)).toolChoice).toBeNull();
  });

  it('gives function calls stable ids and matches responses by echoed id, else by name', () => {
    const body = {
      contents: [
        { role: 'user', parts: [{ text: 'Weather in Paris and Rome, and the time?' }] },
        {
          role: 'model',
          parts: [
            { text: 'Let me check.' },
            { functionCall: { name: 'get_weather', args: { city: 'Paris' } } },
            { functionCall: { name: 'get_weather', args: { city: 'Rome' } } },
            { functionCall: { name: 'get_time', args: {} } },
            { text: 'pondering', thought: true },
          ],
        },
        {
          role: 'user',
          parts: [
            // Gemini CLI echoes its own ids: unknown ids fall back to the name.
            { functionResponse: { id: 'get_time-123', name: 'get_time', response: { output: '12:00' } } },
            { functionResponse: { name: 'get_weather', response: { output: 'sunny' } } },
            { functionResponse: { name: 'get_weather', response: { error: 'no data' } } },
            { text: 'Thanks' },
          ],
        },
      ],
    };
    const c = geminiCodec.toCanonical(parse(body));
    expect(c.messages).toEqual([
      canon.user('Weather in Paris and Rome, and the time?'),
      canon.assistant(
        'Let me check.',
        canon.call('call_0', 'get_weather', '{"city":"Paris"}'),
        canon.call('call_1', 'get_weather', '{"city":"Rome"}'),
        canon.call('call_2', 'get_time', '{}'),
      ),
      canon.tool('call_2', '12:00', { name: 'get_time' }),
      canon.tool('call_0', 'sunny', { name: 'get_weather' }),
      canon.tool('call_1', 'no data', { name: 'get_weather', isError: true }),
      canon.user('Thanks'),
    ]);
    // An echoed id that matches wins over the name order.
    const withIds = geminiCodec.toCanonical(
      parse({
        contents: [
          {
            role: 'model',
            parts: [
              { functionCall: { id: 'a', name: 'f', args: {} } },
              { functionCall: { id: 'b', name: 'f', args: {} } },
            ],
          },
          { role: 'user', parts: [{ functionResponse: { id: 'b', name: 'f', response: { x: 1 } } }] },
        ],
      }),
    );
    expect(withIds.messages[1]).toEqual({
      role: 'tool',
      toolCallId: 'b',
      name: 'f',
      content: [{ type: 'text', text: '{"x":1}' }],
    });
  });

  it('maps inline images and file URIs; refuses media it cannot translate', () => {
    const c = geminiCodec.toCanonical(
      parse({
        contents: [
          {
            parts: [
              { text: 'Compare' },
              { inlineData: { mimeType: 'image/jpeg', data: '/9j/4AAQ' } },
              { fileData: { mimeType: 'image/png', fileUri: 'https://example.com/a.png' } },
            ],
          },
        ],
      }),
    );
    expect(c.messages[0]!.content).toEqual([
      { type: 'text', text: 'Compare' },
      { type: 'image', url: 'data:image/jpeg;base64,/9j/4AAQ' },
      { type: 'image', url: 'https://example.com/a.png' },
    ]);
    // Documents other protocols take: PDFs and plain text, inline or by URL.
    const pdf = parse({
      contents: [
        {
          parts: [
            { inlineData: { mimeType: 'application/pdf', data: 'JVBER' } },
            { fileData: { mimeType: 'text/plain', fileUri: 'https://example.com/a.txt' } },
          ],
        },
      ],
    });
    expect(geminiCodec.toCanonical(pdf).messages[0]!.content).toEqual([
      { type: 'file', mediaType: 'application/pdf', url: 'data:application/pdf;base64,JVBER' },
      { type: 'file', mediaType: 'text/plain', url: 'https://example.com/a.txt' },
    ]);
    for (const part of [
      { inlineData: { mimeType: 'audio/wav', data: 'UklGRg==' } },
      { fileData: { mimeType: 'image/png', fileUri: 'gs://bucket/a.png' } },
      {
        fileData: {
          mimeType: 'application/pdf',
          fileUri: 'https://generativelanguage.googleapis.com/v1beta/files/x',
        },
      },
    ])
      expect(refusal(() => geminiCodec.toCanonical(parse({ contents: [{ parts: [part] }] }))).code).toBe(
        'invalid_request',
      );
  });
});

describe('gemini codec: fromCanonical and passThroughBody', () => {
  it('builds a Gemini body: system, media, tools, tool choice, calls and grouped responses with their images', () => {
    const c = canon.request({
      system: ['Be brief.', 'Use tools.'],
      messages: [
        canon.user([
          'Look',
          canon.image('data:image/png;base64,AAAA'),
          canon.image('https://example.com/cat.webp?x=1'),
        ]),
        canon.assistant(
          [],
          canon.call('toolu_1', 'get_weather', '{"city":"Paris"}'),
          canon.call('toolu_2', 'get_time', ''),
        ),
        canon.tool('toolu_1', ['sunny', canon.image('data:image/png;base64,BBBB')]),
        canon.tool('toolu_2', '{"time":"12:00"}'),
        canon.tool('toolu_3', 'boom', { name: 'x', isError: true }),
        canon.user('And?'),
      ],
      tools: [{ name: 'get_weather', description: 'w', parameters: { type: 'object', properties: {} } }],
      toolChoice: { name: 'get_weather' },
      maxOutputTokens: 50,
      temperature: 0.5,
      topP: 1,
      stop: ['\n\n'],
      stream: true,
    });
    expect(geminiCodec.fromCanonical(c, 'gemini-2.5-pro', 50)).toEqual({
      contents: [
        {
          role: 'user',
          parts: [
            { text: 'Look' },
            { inlineData: { mimeType: 'image/png', data: 'AAAA' } },
            { fileData: { mimeType: 'image/webp', fileUri: 'https://example.com/cat.webp?x=1' } },
          ],
        },
        {
          role: 'model',
          parts: [
            { functionCall: { name: 'get_weather', args: { city: 'Paris' } } },
            { functionCall: { name: 'get_time', args: {} } },
          ],
        },
        {
          role: 'user',
          parts: [
            { functionResponse: { name: 'get_weather', response: { output: 'sunny' } } },
            { functionResponse: { name: 'get_time', response: { time: '12:00' } } },
            { functionResponse: { name: 'x', response: { error: 'boom' } } },
            // A result's image, after the turn's responses.
            { inlineData: { mimeType: 'image/png', data: 'BBBB' } },
          ],
        },
        { role: 'user', parts: [{ text: 'And?' }] },
      ],
      systemInstruction: { parts: [{ text: 'Be brief.\n\nUse tools.' }] },
      tools: [
        {
          functionDeclarations: [
            {
              name: 'get_weather',
              description: 'w',
              parametersJsonSchema: { type: 'object', properties: {} },
            },
          ],
        },
      ],
      toolConfig: { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['get_weather'] } },
      generationConfig: { maxOutputTokens: 50, temperature: 0.5, topP: 1, stopSequences: ['\n\n'] },
    });
    const none = geminiCodec.fromCanonical(
      { ...c, messages: [c.messages[0]!], toolChoice: 'none', temperature: null, topP: null, stop: [] },
      'm',
      9,
    ) as Record<string, unknown>;
    expect(none.toolConfig).toEqual({ functionCallingConfig: { mode: 'NONE' } });
    expect(none.generationConfig).toEqual({ maxOutputTokens: 9 });
  });

  it('passes the body through untouched, adding only the implied output cap', () => {
    const body = { contents: [{ parts: [{ text: 'hi' }] }], someFutureField: { a: 1 } };
    const r = parse(body);
    expect(geminiCodec.passThroughBody({ ...r, impliedOutputCap: null }, 'x')).toBe(body);
    expect(geminiCodec.passThroughBody(r, 'x')).toEqual({
      ...body,
      generationConfig: { maxOutputTokens: 4096 },
    });
    const withGen = { contents: [{ parts: [{ text: 'hi' }] }], generationConfig: { temperature: 1 } };
    expect(geminiCodec.passThroughBody(parse(withGen), 'x')).toEqual({
      ...withGen,
      generationConfig: { temperature: 1, maxOutputTokens: 4096 },
    });
    expect(geminiCodec.forwardedHeaders({ 'x-goog-api-key': 'k', 'x-goog-api-client': 'sdk' })).toEqual({});
  });
});

// Recorded from generativelanguage.googleapis.com (gemini-2.5-flash), ids shortened.
const ANSWER = {
  candidates: [
    {
      content: {
        parts: [{ text: 'Thinking about it…', thought: true }, { text: 'Paris is sunny.' }],
        role: 'model',
      },
      finishReason: 'STOP',
      index: 0,
    },
  ],
  usageMetadata: {
    promptTokenCount: 120,
    candidatesTokenCount: 5,
    totalTokenCount: 162,
    cachedContentTokenCount: 100,
    promptTokensDetails: [{ modality: 'TEXT', tokenCount: 120 }],
    cacheTokensDetails: [{ modality: 'TEXT', tokenCount: 100 }],
    thoughtsTokenCount: 37,
  },
  modelVersion: 'gemini-2.5-flash',
  responseId: 'mGNyaOe3F4',
};
const TOOL_ANSWER = {
  candidates: [
    {
      content: {
        parts: [
          { functionCall: { name: 'get_weather', args: { city: 'Paris' } }, thoughtSignature: 'CiQB…' },
          { functionCall: { name: 'get_time', args: {} } },
        ],
        role: 'model',
      },
      finishReason: 'STOP',
      index: 0,
    },
  ],
  usageMetadata: { promptTokenCount: 60, candidatesTokenCount: 20, totalTokenCount: 80 },
  modelVersion: 'gemini-2.5-flash',
  responseId: 'xyz',
};

describe('gemini codec: decodeAnswer and answerError', () => {
  it('reads text, thoughts and usage (cached inside prompt, thoughts as output)', () => {
    expect(geminiCodec.decodeAnswer(ANSWER)).toEqual(
      canon.answer({
        id: 'mGNyaOe3F4',
        model: 'gemini-2.5-flash',
        text: 'Paris is sunny.',
        reasoning: 'Thinking about it…',
        usage: { input: 20, cacheRead: 100, cacheWrite: 0, output: 42, reasoning: 37 },
      }),
    );
  });

  it('reads function calls with invented ids (unique across answers) and the tool_calls reason', () => {
    const a = geminiCodec.decodeAnswer(TOOL_ANSWER);
    expect(a.toolCalls).toEqual([
      canon.call(expect.stringMatching(/^call_[0-9a-f]{24}$/), 'get_weather', '{"city":"Paris"}'),
      canon.call(expect.stringMatching(/^call_[0-9a-f]{24}$/), 'get_time', '{}'),
    ]);
    const again = geminiCodec.decodeAnswer(TOOL_ANSWER);
    const ids = [...a.toolCalls, ...again.toolCalls].map((c) => c.id);
    expect(new Set(ids).size).toBe(4);
    expect(a.stopReason).toBe('tool_calls');
    expect(a.usage).toEqual({ input: 60, cacheRead: 0, cacheWrite: 0, output: 20, reasoning: 0 });
  });

  it('maps finish reasons, blocked prompts, tool-use prompt tokens and missing usage', () => {
    const withFinish = (finishReason: string) =>
      geminiCodec.decodeAnswer({ candidates: [{ content: { parts: [{ text: 'x' }] }, finishReason }] })
        .stopReason;
    expect(withFinish('MAX_TOKENS')).toBe('length');
    expect(withFinish('SAFETY')).toBe('content_filter');
    expect(withFinish('RECITATION')).toBe('content_filter');
    expect(withFinish('PROHIBITED_CONTENT')).toBe('content_filter');
    expect(withFinish('STOP')).toBe('stop');
    const blocked = geminiCodec.decodeAnswer({
      promptFeedback: { blockReason: 'SAFETY' },
      usageMetadata: { promptTokenCount: 8, totalTokenCount: 8 },
    });
    expect(blocked).toMatchObject({ text: '', stopReason: 'content_filter', usage: { input: 8, output: 0 } });
    expect(geminiCodec.decodeAnswer({ candidates: [] }).usage).toBeNull();
    expect(
      geminiUsage({
        usageMetadata: { promptTokenCount: 10, toolUsePromptTokenCount: 5, candidatesTokenCount: 1 },
      }),
    ).toEqual({ input: 15, cacheRead: 0, cacheWrite: 0, output: 1, reasoning: 0 });
  });

  it("channelFault: a bad channel key or region is the channel's fault, a bad request is not", () => {
    const apiKeyInvalid = {
      error: {
        code: 400,
        message: 'API key not valid. Please pass a valid API key.',
        status: 'INVALID_ARGUMENT',
        details: [
          {
            '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
            reason: 'API_KEY_INVALID',
            domain: 'googleapis.com',
            metadata: { service: 'generativelanguage.googleapis.com' },
          },
        ],
      },
    };
    const fault = geminiCodec.channelFault!;
    expect(fault(400, apiKeyInvalid)).toBe(true);
    expect(
      fault(400, {
        error: {
          code: 400,
          message: 'User location is not supported for the API use.',
          status: 'FAILED_PRECONDITION',
        },
      }),
    ).toBe(true);
    expect(
      fault(400, {
        error: { code: 400, message: '* contents is not specified', status: 'INVALID_ARGUMENT' },
      }),
    ).toBe(false);
    expect(fault(404, { error: { code: 404, message: 'models/x is not found', status: 'NOT_FOUND' } })).toBe(
      false,
    );
    expect(fault(400, 'nonsense')).toBe(false);
    expect(fault(200, apiKeyInvalid)).toBe(false);
  });

  it('answerError finds the error inside a 2xx body', () => {
    expect(geminiCodec.answerError(ANSWER)).toBeNull();
    expect(
      geminiCodec.answerError({
        error: { code: 500, message: 'An internal error has occurred.', status: 'INTERNAL' },
      }),
    ).toBe('An internal error has occurred.');
    expect(geminiCodec.answerError(null)).toBeNull();
  });
});

// A gemini-2.5-flash stream as Google sends it: CRLF frame ends, JSON with spaces after ':'.
const RECORDED_STREAM = [
  'data: {"candidates": [{"content": {"parts": [{"text": "Hello"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 9}]},"modelVersion": "gemini-2.5-flash","responseId": "r-1"}',
  'data: {"candidates": [{"content": {"parts": [{"text": " from the"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9},"modelVersion": "gemini-2.5-flash","responseId": "r-1"}',
  'data: {"candidates": [{"content": {"parts": [{"text": " burrow ☺"}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 9,"candidatesTokenCount": 5,"totalTokenCount": 26,"cachedContentTokenCount": 4,"thoughtsTokenCount": 12},"modelVersion": "gemini-2.5-flash","responseId": "r-1"}',
]
  .map((f) => `${f}\r\n\r\n`)
  .join('');

const TOOL_STREAM = [
  'data: {"candidates":[{"content":{"parts":[{"text":"Checking."}],"role":"model"},"index":0}],"responseId":"r-2"}',
  'data: {"candidates":[{"content":{"parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}},{"functionCall":{"name":"get_time","args":{}}}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":12,"totalTokenCount":42},"responseId":"r-2"}',
  'data: {"usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":14,"totalTokenCount":44},"responseId":"r-2"}',
]
  .map((f) => `${f}\n\n`)
  .join('');

const ingress = (stream = true): IngressRequest =>
  parse({ contents: [{ parts: [{ text: 'hi' }] }] }, route('m', stream));

function decodeAll(text: string, chunkSize: number) {
  const dec = geminiCodec.streamDecoder(ingress());
  return { events: decodeStream(dec, text, chunkSize), dec };
}

describe('gemini codec: streamDecoder', () => {
  it('reads a recorded stream the same in any chunking', () => {
    const whole = decodeAll(RECORDED_STREAM, 1 << 20);
    for (const size of [1, 3, 17]) expect(decodeAll(RECORDED_STREAM, size).events).toEqual(whole.events);
    const ev = whole.events.filter((e) => e.type !== 'usage');
    expect(ev).toEqual([
      { type: 'start', id: 'r-1', model: 'gemini-2.5-flash' },
      { type: 'text', text: 'Hello' },
      { type: 'text', text: ' from the' },
      { type: 'text', text: ' burrow ☺' },
      { type: 'stop', reason: 'stop' },
    ]);
    expect(whole.dec.done).toBe(true);
    expect(whole.dec.usage).toEqual({ input: 5, cacheRead: 4, cacheWrite: 0, output: 17, reasoning: 12 });
  });

  it('reads function calls whole, and usage frames after the finish', () => {
    const { events, dec } = decodeAll(TOOL_STREAM, 5);
    expect(events.filter((e) => e.type !== 'usage')).toEqual([
      { type: 'start', id: 'r-2', model: '' },
      { type: 'text', text: 'Checking.' },
      { type: 'tool_call', index: 0, id: expect.stringMatching(/^call_[0-9a-f]{24}$/), name: 'get_weather' },
      { type: 'tool_args', index: 0, delta: '{"city":"Paris"}' },
      { type: 'tool_call', index: 1, id: expect.stringMatching(/^call_[0-9a-f]{24}$/), name: 'get_time' },
      { type: 'tool_args', index: 1, delta: '{}' },
      { type: 'stop', reason: 'tool_calls' },
    ]);
    expect(dec.done).toBe(true);
    expect(dec.usage).toEqual({ input: 30, cacheRead: 0, cacheWrite: 0, output: 14, reasoning: 0 });
  });

  it('breaks on error frames and unreadable frames; is not done before a finishReason', () => {
    const dec = geminiCodec.streamDecoder(ingress());
    const frame = (data: string) => ({ event: null, data, raw: `data: ${data}\n\n` });
    dec.feed(frame('{"candidates":[{"content":{"parts":[{"text":"a"}],"role":"model"},"index":0}]}'));
    expect(dec.done).toBe(false);
    expect(dec.usage).toBeNull();
    expect(() =>
      dec.feed(
        frame('{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}'),
      ),
    ).toThrow(StreamBroken);
    expect(() => geminiCodec.streamDecoder(ingress()).feed(frame('{broken'))).toThrow(StreamBroken);
    expect(() => geminiCodec.streamDecoder(ingress()).feed(frame('[1,2]'))).toThrow(StreamBroken);
    const blocked = geminiCodec.streamDecoder(ingress());
    const ev = blocked.feed(frame('{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"}}')).events;
    expect(ev).toContainEqual({ type: 'stop', reason: 'content_filter' });
    expect(blocked.done).toBe(true);
  });
});

// ── encoder fidelity, proven with @google/genai ─────────────────────────────────────────────

let server: http.Server;
let serve: { status: number; type: string; body: string } = {
  status: 200,
  type: 'application/json',
  body: '{}',
};
let ai: GoogleGenAI;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(serve.status, { 'content-type': serve.type });
      res.end(serve.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  ai = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: `http://127.0.0.1:${port}` } });
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const usage = { input: 20, cacheRead: 100, cacheWrite: 0, output: 42, reasoning: 37 };
const answer = (over: Partial<CanonicalAnswer> = {}): CanonicalAnswer => ({
  id: 'chatcmpl-1',
  model: 'gpt-4o',
  text: 'Paris is sunny.',
  reasoning: 'hmm',
  toolCalls: [],
  stopReason: 'stop',
  usage,
  ...over,
});

describe('gemini codec: encoders, read back by @google/genai', () => {
  it('encodeAnswer: text, usage in Gemini terms, finish reason', async () => {
    serve = {
      status: 200,
      type: 'application/json',
      body: JSON.stringify(geminiCodec.encodeAnswer(answer(), ingress(false))),
    };
    const r = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hi' });
    expect(r.text).toBe('Paris is sunny.');
    expect(r.candidates?.[0]?.finishReason).toBe('STOP');
    expect(r.responseId).toBe('chatcmpl-1');
    expect(r.modelVersion).toBe('m');
    expect(r.usageMetadata).toEqual({
      promptTokenCount: 120,
      candidatesTokenCount: 5,
      totalTokenCount: 162,
      cachedContentTokenCount: 100,
      thoughtsTokenCount: 37,
    });
    // Thoughts only when the client asked for them.
    const asked = parse(
      {
        contents: [{ parts: [{ text: 'hi' }] }],
        generationConfig: { thinkingConfig: { includeThoughts: true } },
      },
      route('m'),
    );
    serve.body = JSON.stringify(geminiCodec.encodeAnswer(answer(), asked));
    const t = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hi' });
    expect(t.text).toBe('Paris is sunny.');
    expect(t.candidates?.[0]?.content?.parts?.[0]).toEqual({ text: 'hmm', thought: true });
  });

  it('encodeAnswer: function calls and length / content_filter reasons', async () => {
    const calls = answer({
      text: '',
      toolCalls: [
        canon.call('call_a', 'get_weather', '{"city":"Paris"}'),
        canon.call('call_b', 'get_time', ''),
      ],
      stopReason: 'tool_calls',
      usage: null,
    });
    serve = {
      status: 200,
      type: 'application/json',
      body: JSON.stringify(geminiCodec.encodeAnswer(calls, ingress(false))),
    };
    const r = await ai.models.generateContent({ model: 'x', contents: 'hi' });
    expect(r.functionCalls).toEqual([
      { name: 'get_weather', args: { city: 'Paris' } },
      { name: 'get_time', args: {} },
    ]);
    expect(r.candidates?.[0]?.finishReason).toBe('STOP');
    expect(r.usageMetadata).toBeUndefined();
    for (const [reason, finish] of [
      ['length', 'MAX_TOKENS'],
      ['content_filter', 'SAFETY'],
    ] as const) {
      serve.body = JSON.stringify(geminiCodec.encodeAnswer(answer({ stopReason: reason }), ingress(false)));
      expect(
        (await ai.models.generateContent({ model: 'x', contents: 'hi' })).candidates?.[0]?.finishReason,
      ).toBe(finish);
    }
  });

  it('streamEncoder: the SDK stream yields the text, then a last chunk with reason and usage', async () => {
    const enc = geminiCodec.streamEncoder(ingress(), 'req-1');
    const events: StreamEvent[] = [
      { type: 'start', id: 'up-1', model: 'gpt-4o' },
      { type: 'reasoning', text: 'hidden' },
      { type: 'text', text: 'Hello' },
      { type: 'text', text: ' world' },
      { type: 'usage', usage },
      { type: 'stop', reason: 'length' },
    ];
    serve = {
      status: 200,
      type: 'text/event-stream',
      body: events.map((e) => enc.event(e)).join('') + enc.finish(usage),
    };
    const chunks = [];
    for await (const c of await ai.models.generateContentStream({ model: 'x', contents: 'hi' }))
      chunks.push(c);
    expect(chunks.map((c) => c.text ?? '').join('')).toBe('Hello world');
    const last = chunks[chunks.length - 1]!;
    expect(last.candidates?.[0]?.finishReason).toBe('MAX_TOKENS');
    expect(last.usageMetadata).toMatchObject({
      promptTokenCount: 120,
      candidatesTokenCount: 5,
      thoughtsTokenCount: 37,
    });
    expect(chunks.every((c) => c.responseId === 'up-1')).toBe(true);
    // A chat session records the whole turn (every chunk is a valid response).
    const chat = ai.chats.create({ model: 'x' });
    for await (const _ of await chat.sendMessageStream({ message: 'hi' })) void _;
    expect(chat.getHistory(true)).toHaveLength(chunks.length + 1);
  });

  it('streamEncoder: function calls arrive whole in the last chunk', async () => {
    const enc = geminiCodec.streamEncoder(ingress(), 'req-2');
    const events: StreamEvent[] = [
      { type: 'start', id: 'up-2', model: 'gpt-4o' },
      { type: 'tool_call', index: 0, id: 'call_x', name: 'get_weather' },
      { type: 'tool_args', index: 0, delta: '{"ci' },
      { type: 'tool_args', index: 0, delta: 'ty":"Paris"}' },
      { type: 'stop', reason: 'tool_calls' },
    ];
    serve = {
      status: 200,
      type: 'text/event-stream',
      body: events.map((e) => enc.event(e)).join('') + enc.finish({ ...usage, reasoning: 0 }),
    };
    const chunks = [];
    for await (const c of await ai.models.generateContentStream({ model: 'x', contents: 'hi' }))
      chunks.push(c);
    expect(chunks).toHaveLength(1);
    expect(chunks[0]!.functionCalls).toEqual([{ name: 'get_weather', args: { city: 'Paris' } }]);
    expect(chunks[0]!.candidates?.[0]?.finishReason).toBe('STOP');
  });

  it('streamEncoder.error: the SDK throws an ApiError with the status', async () => {
    const enc = geminiCodec.streamEncoder(ingress(), 'req-3');
    serve = {
      status: 200,
      type: 'text/event-stream',
      body: enc.event({ type: 'text', text: 'Hel' }) + enc.error('upstream_error', 'upstream stream failed'),
    };
    const seen: string[] = [];
    const err = await (async () => {
      try {
        for await (const c of await ai.models.generateContentStream({ model: 'x', contents: 'hi' }))
          seen.push(c.text ?? '');
      } catch (e) {
        return e;
      }
    })();
    expect(seen).toEqual(['Hel']);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(502);
    expect((err as ApiError).message).toContain('UNAVAILABLE');
  });

  it("errorBody: Google's shape, read by the SDK", async () => {
    const cases: [number, string, string][] = [
      [400, 'invalid_request', 'INVALID_ARGUMENT'],
      [401, 'invalid_api_key', 'UNAUTHENTICATED'],
      [403, 'model_not_allowed', 'PERMISSION_DENIED'],
      [404, 'model_not_found', 'NOT_FOUND'],
      [413, 'request_too_large', 'INVALID_ARGUMENT'],
      [429, 'insufficient_quota', 'RESOURCE_EXHAUSTED'],
      [500, 'internal_error', 'INTERNAL'],
      [502, 'upstream_error', 'UNAVAILABLE'],
      [503, 'service_unavailable', 'UNAVAILABLE'],
      [504, 'upstream_timeout', 'DEADLINE_EXCEEDED'],
    ];
    for (const [status, code, name] of cases) {
      const body = geminiCodec.errorBody(
        status,
        code,
        `refused: ${code}`,
        'req-9',
        code === 'invalid_request' ? 'contents' : null,
      );
      expect(body).toMatchObject({ error: { code: status, status: name } });
      serve = { status, type: 'application/json', body: JSON.stringify(body) };
      const err = await ai.models.generateContent({ model: 'x', contents: 'hi' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).status).toBe(status);
      const parsed = JSON.parse((err as ApiError).message);
      expect(parsed.error).toMatchObject({ code: status, status: name });
      // Gemini CLI retries a 429 unless it reads like an exhausted quota.
      expect(parsed.error.message).toBe(
        code === 'insufficient_quota'
          ? `refused: ${code} Retrying will not help (limit: 0).`
          : `refused: ${code}`,
      );
      expect(parsed.error.details[0]).toMatchObject({ reason: code, metadata: { request_id: 'req-9' } });
    }
  });

  it('round-trips a tool turn from the SDK through toCanonical', async () => {
    // What the SDK sends on the second turn of a function-calling exchange.
    let captured: Record<string, unknown> = {};
    const cap = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => {
        raw += c;
      });
      req.on('end', () => {
        captured = JSON.parse(raw);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(geminiCodec.encodeAnswer(answer(), ingress(false))));
      });
    });
    await new Promise<void>((r) => cap.listen(0, '127.0.0.1', r));
    const client = new GoogleGenAI({
      apiKey: 'k',
      httpOptions: { baseUrl: `http://127.0.0.1:${(cap.address() as AddressInfo).port}` },
    });
    await client.models.generateContent({
      model: 'gemini-2.5-flash',
      contents: [
        { role: 'user', parts: [{ text: 'Weather?' }] },
        { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }] },
        {
          role: 'user',
          parts: [{ functionResponse: { name: 'get_weather', response: { output: 'sunny' } } }],
        },
      ],
      config: {
        tools: [
          { functionDeclarations: [{ name: 'get_weather', parametersJsonSchema: { type: 'object' } }] },
        ],
        toolConfig: { functionCallingConfig: { mode: FunctionCallingConfigMode.AUTO } },
      },
    });
    await new Promise<void>((r) => cap.close(() => r()));
    const c = geminiCodec.toCanonical(parse(captured));
    expect(c.toolChoice).toBe('auto');
    expect(c.messages.slice(1)).toEqual([
      {
        role: 'assistant',
        content: [],
        toolCalls: [{ id: 'call_0', name: 'get_weather', arguments: '{"city":"Paris"}' }],
      },
      { role: 'tool', toolCallId: 'call_0', name: 'get_weather', content: [{ type: 'text', text: 'sunny' }] },
    ]);
  });
});
