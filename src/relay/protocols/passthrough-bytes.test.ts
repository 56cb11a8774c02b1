// The client's bytes go upstream as sent only when they say exactly what the rebuilt body would.
import { describe, expect, it } from 'vitest';
import { anthropicCodec } from './anthropic.js';
import { geminiCodec } from './gemini.js';
import { appendMember, asSent, memberObject, topLevelKeyCount } from './json.js';
import { openaiCodec, parseRelayBody } from './openai.js';
import { responsesCodec } from './responses.js';
import type { ProtocolCodec } from './types.js';

const route = { protocol: 'openai', operation: 'generate' } as const;
const ingress = (text: string) => {
  const raw = Buffer.from(text);
  const r = openaiCodec.parseRequest(parseRelayBody(raw), route, 4096);
  r.raw = raw;
  return r;
};
const bytes = (text: string, upstreamModel = 'm') => {
  const r = ingress(text);
  return { r, out: openaiCodec.passThroughBytes!(r, upstreamModel) };
};
const MSG = '"messages":[{"role":"user","content":"say \\"hi\\", {not a key}"}]';

describe('pass-through bytes (OpenAI)', () => {
  it('an unchanged body is the client’s own bytes', () => {
    const { r, out } = bytes(`{"model":"m",${MSG},"max_tokens":16}`);
    expect(out).toBe(r.raw);
    expect(JSON.parse(out!.toString())).toEqual(openaiCodec.passThroughBody(r, 'm'));
  });

  it('a stream without stream_options gets usage appended; one that asks for it goes as sent', () => {
    const a = bytes(`{"model":"m",${MSG},"max_tokens":16,"stream":true}  \n`);
    expect(JSON.parse(a.out!.toString())).toEqual(openaiCodec.passThroughBody(a.r, 'm'));
    expect(JSON.parse(a.out!.toString()).stream_options).toEqual({ include_usage: true });
    const b = bytes(
      `{"model":"m",${MSG},"max_tokens":16,"stream":true,"stream_options":{"include_usage":true}}`,
    );
    expect(b.out).toBe(b.r.raw);
  });

  it('an implied output cap is appended, after stream_options when a stream gets both', () => {
    const a = bytes(`{"model":"m",${MSG}}`);
    expect(a.out?.toString()).toBe(`{"model":"m",${MSG},"max_completion_tokens":4096}`);
    expect(JSON.parse(a.out!.toString())).toEqual(openaiCodec.passThroughBody(a.r, 'm'));
    const b = bytes(`{ "model":"m", ${MSG}, "stream":true }`);
    expect(b.out?.toString()).toBe(
      `{ "model":"m", ${MSG}, "stream":true ,"stream_options":{"include_usage":true},"max_completion_tokens":4096}`,
    );
    expect(JSON.parse(b.out!.toString())).toEqual(openaiCodec.passThroughBody(b.r, 'm'));
  });

  it('is built instead when anything changes or a top-level key repeats', () => {
    // Another upstream model name, a member to replace in place, a stream whose options need changing.
    expect(bytes(`{"model":"m",${MSG},"max_tokens":16}`, 'upstream-m').out).toBeNull();
    expect(bytes(`{"model":"m",${MSG},"max_completion_tokens":null}`).out).toBeNull();
    expect(bytes(`{"model":"m",${MSG},"max_tokens":16,"stream":true,"stream_options":{}}`).out).toBeNull();
    expect(bytes(`{"model":"m",${MSG},"max_tokens":16,"stream":true,"stream_options":null}`).out).toBeNull();
    // JSON.parse keeps the last "model"; an upstream keeping the first would serve "expensive".
    expect(bytes(`{"model":"expensive",${MSG},"max_tokens":16,"model":"m"}`).out).toBeNull();
    expect(bytes(`{"model":"m",${MSG},"max_tokens":100000,"max_tokens":16}`).out).toBeNull();
    expect(bytes(`{"mod\\u0065l":"expensive","model":"m",${MSG},"max_tokens":16}`).out).toBeNull();
  });

  it('topLevelKeyCount counts only the top object’s keys, through strings, escapes and nesting', () => {
    const count = (t: string) => topLevelKeyCount(Buffer.from(t));
    expect(count('{}')).toBe(0);
    expect(count('{"a":1}')).toBe(1);
    expect(count('{"a":{"b":1,"c":[{"d":2},"e,f"]},"g":"\\"h\\":1,","i":"\\\\"}')).toBe(3);
    expect(count('{"a":"é,ü\\"","a":2}')).toBe(2);
    expect(count(' { "a" : [ 1 , 2 ] , "b" : { } } ')).toBe(2);
  });

  it('appendMember adds a last member, with or without others before it', () => {
    expect(JSON.parse(appendMember(Buffer.from('{"a":1} \n'), '"b":2')!.toString())).toEqual({ a: 1, b: 2 });
    expect(JSON.parse(appendMember(Buffer.from('{ }'), '"b":2')!.toString())).toEqual({ b: 2 });
  });
});

describe('pass-through bytes (Anthropic Messages, Responses)', () => {
  const parsed = (codec: ProtocolCodec, text: string) => {
    const raw = Buffer.from(text);
    const r = codec.parseRequest(
      parseRelayBody(raw),
      { protocol: codec.protocol, operation: 'generate' },
      4096,
    );
    r.raw = raw;
    return r;
  };
  const MESSAGES = '"messages":[{"role":"user","content":"say \\"hi\\""}]';

  it('are the client’s own when the rebuilt body would say the same', () => {
    for (const [codec, text] of [
      [anthropicCodec, `{ "model":"m", ${MESSAGES}, "max_tokens":16, "stream":true }`],
      [responsesCodec, '{"model":"m","input":"hi","max_output_tokens":16}'],
    ] as const) {
      const r = parsed(codec, text);
      const out = codec.passThroughBytes!(r, 'm');
      expect(out, text).toBe(r.raw);
      expect(JSON.parse(out!.toString())).toEqual(codec.passThroughBody(r, 'm'));
    }
  });

  it('Responses: an implied cap is appended', () => {
    const r = parsed(responsesCodec, '{"model":"m","input":"hi"}');
    const out = responsesCodec.passThroughBytes!(r, 'm');
    expect(out?.toString()).toBe('{"model":"m","input":"hi","max_output_tokens":4096}');
    expect(JSON.parse(out!.toString())).toEqual(responsesCodec.passThroughBody(r, 'm'));
  });

  it('are null when the model is mapped, a cap member is replaced in place or a top-level key repeats', () => {
    const none = (codec: ProtocolCodec, text: string, upstream = 'm') =>
      expect(codec.passThroughBytes!(parsed(codec, text), upstream), text).toBeNull();
    none(anthropicCodec, `{"model":"m",${MESSAGES},"max_tokens":16}`, 'upstream-m');
    none(anthropicCodec, `{"model":"x",${MESSAGES},"max_tokens":16,"model":"m"}`);
    none(responsesCodec, '{"model":"m","input":"hi","max_output_tokens":16}', 'upstream-m');
    none(responsesCodec, '{"model":"m","input":"hi","max_output_tokens":null}');
    none(responsesCodec, '{"model":"m","input":"hi","max_output_tokens":9999,"max_output_tokens":16}');
  });

  it('asSent: the bytes only when every top-level key is spelled once', () => {
    const raw = Buffer.from('{"a":1,"b":{"a":2,"a":3}}');
    expect(asSent(raw, JSON.parse(raw.toString()))).toBe(raw);
    expect(asSent(Buffer.from('{"a":1,"a":2}'), { a: 2 })).toBeNull();
    expect(asSent(undefined, {})).toBeNull();
  });
});

describe('pass-through bytes (Gemini: the model in the path, the cap in generationConfig)', () => {
  const route = {
    protocol: 'gemini',
    operation: 'generate',
    pathModel: 'gemini-x',
    pathStream: true,
  } as const;
  const parsed = (text: string) => {
    const raw = Buffer.from(text);
    const r = geminiCodec.parseRequest(parseRelayBody(raw), route as never, 4096);
    r.raw = raw;
    return r;
  };
  const CONTENTS = '"contents":[{"role":"user","parts":[{"text":"a \\"generationConfig\\": {}"}]}]';
  /** The bytes, which must say what the rebuilt body says. */
  const bytes = (text: string) => {
    const r = parsed(text);
    const out = geminiCodec.passThroughBytes!(r, 'gemini-x');
    if (out) expect(JSON.parse(out.toString()), text).toEqual(geminiCodec.passThroughBody(r, 'gemini-x'));
    return { r, out };
  };

  it('a body with its own cap goes as sent', () => {
    for (const text of [
      `{${CONTENTS},"generationConfig":{"maxOutputTokens":64,"temperature":0}}`,
      `{ ${CONTENTS} , "generation_config" : { "max_output_tokens" : 64 } }`,
    ]) {
      const { r, out } = bytes(text);
      expect(out, text).toBe(r.raw);
    }
  });

  it('the implied cap is added to the config as written, or as a config of its own', () => {
    const cases: Array<[string, string]> = [
      [
        `{${CONTENTS},"generationConfig":{"temperature":0,"thinkingConfig":{"thinkingBudget":8}} }`,
        `{${CONTENTS},"generationConfig":{"temperature":0,"thinkingConfig":{"thinkingBudget":8},"maxOutputTokens":4104} }`,
      ],
      [
        `{${CONTENTS},"generation_config":{ }}`,
        `{${CONTENTS},"generation_config":{ "maxOutputTokens":4096}}`,
      ],
      [`{${CONTENTS}}`, `{${CONTENTS},"generationConfig":{"maxOutputTokens":4096}}`],
      [
        `{"generationConfig":{"candidateCount":1},${CONTENTS}}`,
        `{"generationConfig":{"candidateCount":1,"maxOutputTokens":4096},${CONTENTS}}`,
      ],
    ];
    for (const [text, want] of cases) expect(bytes(text).out?.toString(), text).toBe(want);
  });

  it('is rebuilt when a key repeats, a config is not plain bytes or its cap key is there already', () => {
    for (const text of [
      `{${CONTENTS},"generationConfig":{"candidateCount":8,"candidateCount":1,"maxOutputTokens":9}}`,
      `{${CONTENTS},"generationConfig":{"maxOutputTokens":99999,"maxOutputTokens":9}}`,
      `{${CONTENTS},"generationConfig":{},"generationConfig":{"maxOutputTokens":9}}`,
      `{${CONTENTS},"generation\\u0043onfig":{"temperature":0}}`,
      `{${CONTENTS},"generationConfig":null}`,
      `{${CONTENTS},"generationConfig":{"maxOutputTokens":null}}`,
    ])
      expect(bytes(text).out, text).toBeNull();
  });

  it('memberObject finds a top-level member’s object, never a nested or quoted one', () => {
    const raw = Buffer.from('{"a":{"g":{"x":1}},"s":"\\"g\\":{}","g" : { "y" : [ "}" , { } ] } ,"z":1}');
    const at = memberObject(raw, 'g')!;
    expect(JSON.parse(raw.subarray(at[0], at[1]).toString())).toEqual({ y: ['}', {}] });
    expect(memberObject(raw, 'z')).toBeNull(); // not an object
    expect(memberObject(raw, 'x')).toBeNull(); // not top-level
  });
});

describe('pass-through bytes, fuzzed: what goes as bytes is what would have been rebuilt', () => {
  /** Deterministic pseudo-random numbers (a fixed seed: the same bodies every run). */
  function rng(seed: number) {
    let x = seed;
    return (n: number) => {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      return (x >>> 16) % n; // the high bits: an LCG's low bits repeat with a short period
    };
  }
  const SPACES = ['', ' ', '\n  ', '\t', ' \r\n'];
  const TEXTS = ['hi', 'say "hi"', 'a \\ b', '{"model":"x"}', '}],{', 'é 語 😀', '"generationConfig":{}'];

  /** A JSON object's text with random spacing and member order; `dup` repeats a member's key. */
  function objectText(next: (n: number) => number, members: Array<[string, string]>, dup = -1): string {
    const order = [...members];
    for (let i = order.length - 1; i > 0; i--) {
      const j = next(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const ws = () => SPACES[next(SPACES.length)]!;
    const parts = order.map(([k, v]) => `${ws()}${JSON.stringify(k)}${ws()}:${ws()}${v}${ws()}`);
    // A repeated key, before the one that counts (JSON.parse keeps the last).
    if (dup >= 0 && order.length > 0) parts.unshift(`${JSON.stringify(order[dup % order.length]![0])}:0`);
    return `{${parts.join(',')}}`;
  }

  const text = (next: (n: number) => number) => JSON.stringify(TEXTS[next(TEXTS.length)]);

  it('Gemini: 400 bodies, with and without a cap, config spelled either way, keys repeated in some', () => {
    const next = rng(7);
    const route = { protocol: 'gemini', operation: 'generate', pathModel: 'g', pathStream: true } as const;
    let asBytes = 0;
    let repeated = 0;
    for (let n = 0; n < 400; n++) {
      const config: Array<[string, string]> = [];
      if (next(2)) config.push(['temperature', String(next(2))]);
      if (next(2)) config.push(['candidateCount', String(1 + next(3))]);
      if (next(2)) config.push(['maxOutputTokens', String(1 + next(100))]);
      if (next(2)) config.push(['thinkingConfig', `{"thinkingBudget":${next(50)}}`]);
      const withConfig = next(3) > 0;
      const dupConfig = withConfig && config.length > 0 && next(6) === 0;
      const members: Array<[string, string]> = [
        ['contents', `[{"role":"user","parts":[{"text":${text(next)}}]}]`],
      ];
      if (withConfig)
        members.push([
          next(2) ? 'generationConfig' : 'generation_config',
          objectText(next, config, dupConfig ? next(9) : -1),
        ]);
      if (next(2)) members.push(['systemInstruction', `{"parts":[{"text":${text(next)}}]}`]);
      const dupTop = next(6) === 0;
      const body = objectText(next, members, dupTop ? next(9) : -1);
      const raw = Buffer.from(body);
      let r: ReturnType<typeof geminiCodec.parseRequest>;
      try {
        r = geminiCodec.parseRequest(parseRelayBody(raw), route as never, 4096);
      } catch {
        continue; // a repeated key of another type: refused, as a client mistake
      }
      r.raw = raw;
      const out = geminiCodec.passThroughBytes!(r, 'g');
      if (dupTop || dupConfig) {
        expect(out, body).toBeNull();
        repeated++;
      } else {
        expect(out, body).not.toBeNull();
        asBytes++;
      }
      if (out) expect(JSON.parse(out.toString()), body).toEqual(geminiCodec.passThroughBody(r, 'g'));
    }
    expect(asBytes).toBeGreaterThan(150);
    expect(repeated).toBeGreaterThan(40);
  });

  it('Anthropic Messages, Responses and OpenAI chat: 400 bodies each, keys repeated in some', () => {
    const next = rng(11);
    for (const codec of [anthropicCodec, responsesCodec, openaiCodec]) {
      let asBytes = 0;
      for (let n = 0; n < 400; n++) {
        const members: Array<[string, string]> =
          codec === anthropicCodec
            ? [
                ['model', '"m"'],
                ['max_tokens', String(1 + next(100))],
                ['messages', `[{"role":"user","content":${text(next)}}]`],
              ]
            : codec === responsesCodec
              ? [
                  ['model', '"m"'],
                  ['input', text(next)],
                ]
              : [
                  ['model', '"m"'],
                  ['messages', `[{"role":"user","content":${text(next)}}]`],
                ];
        if (codec === openaiCodec) {
          if (next(2)) members.push(['stream', 'true']);
          if (next(3) === 0) members.push(['stream_options', '{"include_usage":true}']);
          if (next(3) === 0)
            members.push([next(2) ? 'max_tokens' : 'max_completion_tokens', String(1 + next(100))]);
        }
        if (next(2)) members.push(['metadata', `{"user_id":${text(next)}}`]);
        if (codec === responsesCodec && next(3) > 0)
          members.push(['max_output_tokens', String(1 + next(100))]);
        if (codec === anthropicCodec && next(2)) members.push(['system', text(next)]);
        const dup = next(6) === 0;
        const body = objectText(next, members, dup ? next(9) : -1);
        const raw = Buffer.from(body);
        let r: ReturnType<ProtocolCodec['parseRequest']>;
        try {
          r = codec.parseRequest(
            parseRelayBody(raw),
            { protocol: codec.protocol, operation: 'generate' },
            4096,
          );
        } catch {
          continue;
        }
        r.raw = raw;
        const out = codec.passThroughBytes!(r, 'm');
        if (dup) expect(out, body).toBeNull();
        else {
          expect(out, body).not.toBeNull();
          // The client's bytes, or they with members added before the closing brace.
          const end = raw.lastIndexOf(0x7d);
          expect(out!.subarray(0, end).equals(raw.subarray(0, end)), body).toBe(true);
          if (codec === anthropicCodec) expect(out).toBe(raw);
          asBytes++;
        }
        if (out) expect(JSON.parse(out.toString()), body).toEqual(codec.passThroughBody(r, 'm'));
      }
      expect(asBytes, codec.protocol).toBeGreaterThan(150);
    }
  });
});

describe('pass-through answers (OpenAI): the usage read alone', () => {
  const answer = (extra: string) =>
    `{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"usage: {\\"x\\":1}"},"finish_reason":"stop"}]${extra}}`;
  const usageOf = (text: string) => openaiCodec.passThroughUsage!(Buffer.from(text));

  it('reads what decoding the whole answer reads', () => {
    for (const usage of [
      '"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}',
      '"usage" : {"prompt_tokens":12,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}',
      '"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":3,"completion_tokens":1}',
      // The tier it was served at, written as OpenAI writes it (spaced, pretty-printed) or not.
      '"usage":{"prompt_tokens":12,"completion_tokens":5},"service_tier":"priority"',
      '"service_tier": "priority",\n  "usage": {"prompt_tokens": 12, "completion_tokens": 5}',
      '"service_tier" :\n "default","usage":{"prompt_tokens":12,"completion_tokens":5}',
      '"service_tier":null,"usage":{"prompt_tokens":12,"completion_tokens":5}',
      '"service_tier":"\\u0070riority","usage":{"prompt_tokens":12,"completion_tokens":5}',
      '"service_tier":"PRIORITY","usage":{"prompt_tokens":12,"completion_tokens":5}',
      '"service_tier":"a\\"b","usage":{"prompt_tokens":12,"completion_tokens":5}',
      '"service_tier":"p\\ud800","usage":{"prompt_tokens":12,"completion_tokens":5}',
    ]) {
      const text = answer(`,${usage}`);
      const got = usageOf(text);
      expect(got, text).not.toBeNull();
      expect(got).toEqual(openaiCodec.decodeAnswer(JSON.parse(text)).usage);
    }
    for (const tier of ['"priority"', '"\\u0070riority"', '" PRIORITY"'])
      expect(usageOf(answer(`,"usage":{"prompt_tokens":1},"service_tier":${tier}`))).toMatchObject({
        serviceTier: 'priority',
      });
    // A key inside a string value has its quotes escaped: it is not the answer's tier.
    const quoted = answer(',"usage":{"prompt_tokens":1}').replace(
      'usage: ',
      '\\"service_tier\\":\\"priority\\" ',
    );
    expect(JSON.parse(quoted)).toBeTruthy();
    expect(usageOf(quoted)).not.toHaveProperty('serviceTier');
  });

  it('leaves every other answer to be decoded whole', () => {
    for (const text of [
      answer(''),
      answer(',"usage":null'),
      answer(',"usage":{"prompt_tokens":"many"}'),
      answer(',"usage":{"prompt_tokens":1},"error":{"message":"x"}'),
      '{"error":{"message":"overloaded"},"usage":{"prompt_tokens":1}}',
      '[{"usage":{"prompt_tokens":1}}]',
      answer(',"usage":{"prompt_tokens":1}').slice(0, -1),
      'not json',
    ])
      expect(usageOf(text), text).toBeNull();
  });
});

describe('pass-through stream check (OpenAI): the text a local count reads', () => {
  it('is every content delta in order, however long the stream (kept frames are decoded as they pile up)', () => {
    const r = ingress(`{"model":"m",${MSG},"max_tokens":4096,"stream":true}`);
    const check = openaiCodec.passThroughCheck!(r);
    let want = '';
    // ~300 KB of frames: past the kept-frames bound several times over, whatever it is.
    for (let i = 0; i < 2_000; i++) {
      const content = `tok${i} «é» \\ "q" `;
      want += content;
      const data = JSON.stringify({
        id: 'c1',
        object: 'chat.completion.chunk',
        choices: [{ index: 0, delta: { content }, finish_reason: null }],
      });
      const frame = Buffer.from(`data: ${data}\n\n`);
      expect(check.checkBytes(frame, 6, 6 + Buffer.byteLength(data))).toBe(false);
    }
    expect(check.done).toBe(false);
    expect(check.produced).toBe(want);
  });
});
