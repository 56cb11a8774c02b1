import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../test/helpers/codec.js';
import {
  JSON_ERROR,
  JSON_OBJECT,
  JSON_TYPE_ERROR,
  JSON_TYPE_TWICE,
  JSON_USAGE,
  JSON_VALID,
  scanJson,
} from './json-scan.js';

const scan = (text: string | Buffer) => {
  const b = Buffer.isBuffer(text) ? text : Buffer.from(text);
  return scanJson(b, 0, b.length);
};
/** The usage value parsed from the range scanJson gives for it. */
const usageText = (text: string) => {
  const b = Buffer.from(text);
  const at = new Int32Array(2);
  scanJson(b, 0, b.length, at);
  return JSON.parse(b.toString('utf8', at[0], at[1]));
};
const parses = (text: string) => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};
/** How many top-level `type` members the valid JSON object `text` has (JSON.parse keeps the last). */
const topLevelTypes = (text: string) => {
  let n = 0;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const after = text.slice(j + 1).trimStart();
      if (depth === 1 && after.startsWith(':') && JSON.parse(text.slice(i, j + 1)) === 'type') n++;
      i = j;
    }
  }
  return n;
};
/** What scanJson should answer for `text`, from JSON.parse. */
const expected = (text: string) => {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 0;
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return JSON_VALID;
  const o = v as Record<string, unknown>;
  return (
    JSON_VALID |
    JSON_OBJECT |
    (o.error !== undefined && o.error !== null ? JSON_ERROR : 0) |
    (o.usage !== undefined && o.usage !== null ? JSON_USAGE : 0) |
    (o.type === 'error' ? JSON_TYPE_ERROR : 0) |
    (topLevelTypes(text) > 1 ? JSON_TYPE_TWICE : 0)
  );
};

const VALID = [
  '0',
  '-0',
  '1e5',
  '1E+5',
  '1.5E-3',
  '-12.25e0',
  '123456789012345678901234567890',
  'true',
  'false',
  'null',
  '""',
  '"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t"',
  '"\\u0041\\u00e9\\uD83D\\uDC3E"',
  '"\\ud800"', // a lone surrogate escape: JSON.parse takes it
  '"mole 🐾 é 中文"',
  '[]',
  '{}',
  ' \t\r\n{ "a" : [ 1 , 2 , { } , [ ] ] , "b" : { "c" : null } } \n',
  '[[[[[[[[[[]]]]]]]]]]',
  '{"a":{"b":{"c":{"d":[{"e":[]}]}}}}',
  '[1,"two",true,false,null,{"x":-0.5e-10}]',
];

const INVALID = [
  '',
  ' ',
  '01',
  '-',
  '-01',
  '1.',
  '.5',
  '1e',
  '1e+',
  '+1',
  '0x10',
  'NaN',
  'Infinity',
  'tru',
  'nul',
  'True',
  'nulll',
  '"unterminated',
  '"bad \\x escape"',
  '"bad \\u12 escape"',
  '"bad \\u12G4 escape"',
  '"tab\tinside"',
  '"newline\ninside"',
  '"\u0000"',
  '"\u001f"',
  "'single'",
  '[1,]',
  '[,1]',
  '[1 2]',
  '{"a":1,}',
  '{,}',
  '{"a"}',
  '{"a" 1}',
  '{a:1}',
  '{"a":1',
  '{"a":1}}',
  '{"a":1}]',
  '[1}',
  '{"a":1]',
  '{"a":1} x',
  '{"a":1}{"b":2}',
  '[DONE]',
  '\u00a0{}', // JSON.parse takes only space, tab, CR and LF around a value
  '{}\u000b',
];

describe('scanJson', () => {
  it('takes exactly what JSON.parse takes in a corpus of valid and broken texts', () => {
    for (const text of VALID) {
      expect(parses(text), text).toBe(true);
      expect(scan(text) & JSON_VALID, text).toBe(JSON_VALID);
    }
    for (const text of INVALID) {
      expect(parses(text), text).toBe(false);
      expect(scan(text), text).toBe(0);
    }
  });

  it('tells an object from other values', () => {
    expect(scan('{}')).toBe(JSON_VALID | JSON_OBJECT);
    expect(scan('[{}]')).toBe(JSON_VALID);
    expect(scan('"{}"')).toBe(JSON_VALID);
    expect(scan('null')).toBe(JSON_VALID);
  });

  it('reports a top-level error or usage that is not null, the last of duplicates winning', () => {
    const cases: [string, number][] = [
      ['{"error":{"message":"x"}}', JSON_ERROR],
      ['{"error":"x"}', JSON_ERROR],
      ['{"error":false}', JSON_ERROR],
      ['{"error":0}', JSON_ERROR],
      ['{"error":[]}', JSON_ERROR],
      ['{"error":null}', 0],
      ['{"error" : null , "id":1}', 0],
      ['{"error":{"a":1},"error":null}', 0],
      ['{"error":null,"error":{"a":1}}', JSON_ERROR],
      ['{"\\u0065rror":{"a":1}}', JSON_ERROR],
      ['{"\\u0065\\u0072\\u0072\\u006f\\u0072":1}', JSON_ERROR],
      ['{"err\\u006fr":1,"\\u0075sage":{}}', JSON_ERROR | JSON_USAGE],
      ['{"errors":1,"Error":1,"erro":1,"error ":1}', 0],
      ['{"err\\nr":1}', 0],
      // nested `error` / `usage` members are not the top level's
      ['{"choices":[{"error":{"a":1}}],"data":{"error":1,"usage":2}}', 0],
      ['{"usage":{"prompt_tokens":1}}', JSON_USAGE],
      ['{"usage":5}', JSON_USAGE],
      ['{"usage":null}', 0],
      ['{"usage":{},"usage":null}', 0],
      ['{"usage":null,"usage":{}}', JSON_USAGE],
      ['{"x":{"usage":{}},"usage":null}', 0],
      // Anthropic's error event: a top-level type that reads "error", however spelled.
      ['{"type":"error","error":{"type":"overloaded_error"}}', JSON_TYPE_ERROR | JSON_ERROR],
      ['{"type":"error"}', JSON_TYPE_ERROR],
      ['{"t\\u0079pe":"\\u0065rror"}', JSON_TYPE_ERROR],
      ['{"type":"content_block_delta","type":"error"}', JSON_TYPE_ERROR | JSON_TYPE_TWICE],
      ['{"type":"error","type":"ping"}', JSON_TYPE_TWICE],
      ['{"type":"a","x":{"type":"b"},"typ\\u0065":1}', JSON_TYPE_TWICE],
      ['{"type":"a","x":{"type":"b"}}', 0],
      ['{"type":"errors"}', 0],
      ['{"type":"erro"}', 0],
      ['{"type":["error"]}', 0],
      ['{"x":{"type":"error"}}', 0],
      ['{"typ":"error","types":"error"}', 0],
    ];
    for (const [text, bits] of cases) {
      expect(scan(text), text).toBe(JSON_VALID | JSON_OBJECT | bits);
      expect(scan(text), text).toBe(expected(text));
    }
  });

  it('tells where the last top-level usage value lies, to parse it alone', () => {
    const cases: [string, unknown][] = [
      ['{"usage":{"prompt_tokens":1}}', { prompt_tokens: 1 }],
      ['{"id":"x","choices":[{"usage":1}],"usage" : { "a" : [1, {"b":2}] } , "z":3}', { a: [1, { b: 2 }] }],
      ['{"usage":5}', 5],
      ['{"usage":"u"}', 'u'],
      ['{"usage":{}}', {}],
      ['{"usage":[ ]}', []],
      ['{"usage":{"a":1},"usage":{"b":2}}', { b: 2 }],
      ['{"usage":null,"usage":true}', true],
      ['{"x":{"usage":{"a":1}},"usage":-1.5e3}', -1500],
      ['{"usag\u0065":{"a":1}}', { a: 1 }],
    ];
    for (const [text, usage] of cases) {
      expect(scan(text) & JSON_USAGE, text).toBe(JSON_USAGE);
      expect(usageText(text), text).toEqual(usage);
    }
  });

  it('reports nothing for an array, even of objects with an error', () => {
    expect(scan('[{"error":1}]')).toBe(JSON_VALID);
  });

  it('reads only b[start, end)', () => {
    const b = Buffer.from('xx{"error":1}yy');
    expect(scanJson(b, 2, 13)).toBe(JSON_VALID | JSON_OBJECT | JSON_ERROR);
    expect(scanJson(b, 2, 12)).toBe(0);
    expect(scanJson(b, 0, 13)).toBe(0);
    expect(scanJson(b, 3, 3)).toBe(0);
  });

  it('takes any bytes from 0x80 up inside strings, none outside', () => {
    const inString = Buffer.concat([
      Buffer.from('{"t":"'),
      Buffer.from([0xff, 0xe2, 0x82, 0xc3]),
      Buffer.from('"}'),
    ]);
    expect(scan(inString)).toBe(JSON_VALID | JSON_OBJECT);
    expect(parses(inString.toString())).toBe(true); // decoded, the broken bytes are U+FFFD
    expect(scan(Buffer.concat([Buffer.from('{"t":1'), Buffer.from([0xc2, 0xa0]), Buffer.from('}')]))).toBe(0);
  });

  it('has no depth limit (no recursion)', () => {
    const deep = (n: number) => `${'[{"a":'.repeat(n)}1${'}]'.repeat(n)}`;
    expect(scan(deep(100_000))).toBe(JSON_VALID);
    expect(scan(`{"error":${deep(50_000)}}`)).toBe(JSON_VALID | JSON_OBJECT | JSON_ERROR);
    expect(scan(deep(100_000).slice(0, -1))).toBe(0);
    expect(scan('{"a":1}')).toBe(JSON_VALID | JSON_OBJECT); // still right after a deep one
  });

  it('agrees with JSON.parse on random JSON and on random damage to it', () => {
    const r = seededRandom(7);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
    const STRINGS = [
      '',
      'a',
      'error',
      'usage',
      'é🐾',
      '\\n',
      '\\u00e9',
      '\\"',
      'x y',
      '\\uD83D\\uDC3E',
      'err\\u006fr',
    ];
    const KEYS = ['error', 'usage', 'id', 'choices', '\\u0065rror', 'usag\\u0065', 'e', 'type', 'typ\\u0065'];
    const SPACE = ['', '', '', ' ', '\n', '\t', '\r\n '];
    const value = (depth: number): string => {
      const k = Math.floor(r() * (depth > 4 ? 5 : 7));
      const sp = () => pick(SPACE);
      if (k === 0) return pick(['0', '-0', '12', '-3.5', '1e5', '2.5E-3', '10']);
      if (k === 1) return pick(['true', 'false', 'null', 'null']);
      if (k <= 4) return `"${pick(STRINGS)}"`;
      if (k === 5)
        return `[${sp()}${Array.from({ length: Math.floor(r() * 4) }, () => value(depth + 1)).join(`${sp()},${sp()}`)}${sp()}]`;
      return `{${sp()}${Array.from(
        { length: Math.floor(r() * 4) },
        () => `"${pick(KEYS)}"${sp()}:${sp()}${value(depth + 1)}`,
      ).join(`${sp()},${sp()}`)}${sp()}}`;
    };
    const DAMAGE = ['"', '\\', ',', ':', '{', '}', '[', ']', '0', '-', '.', 'e', ' ', '\u0001', 'n', 'x'];
    let valid = 0;
    for (let n = 0; n < 20_000; n++) {
      let text = r() < 0.8 ? value(0) : `${pick(SPACE)}{"error":null,"usage":${value(1)}}${pick(SPACE)}`;
      const damage = r() < 0.5 ? Math.floor(r() * 3) : 0;
      for (let d = 0; d < damage && text.length > 0; d++) {
        const at = Math.floor(r() * text.length);
        const how = r();
        if (how < 0.33) text = text.slice(0, at) + text.slice(at + 1);
        else if (how < 0.66) text = text.slice(0, at) + pick(DAMAGE) + text.slice(at);
        else text = text.slice(0, at) + pick(DAMAGE) + text.slice(at + 1);
      }
      if (parses(text)) valid++;
      expect(scan(text), text).toBe(expected(text));
      if (expected(text) & JSON_USAGE) expect(usageText(text), text).toEqual(JSON.parse(text).usage);
    }
    expect(valid).toBeGreaterThan(10_000); // the corpus has both kinds in number
    expect(valid).toBeLessThan(19_000);
  });
});
