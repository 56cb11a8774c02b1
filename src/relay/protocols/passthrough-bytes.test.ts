// The client's bytes go upstream as sent only when they say exactly what the rebuilt body would.
import { describe, expect, it } from 'vitest';
import { appendMember, topLevelKeyCount } from './json.js';
import { openaiCodec, parseRelayBody } from './openai.js';

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

  it('is built instead when anything changes or a top-level key repeats', () => {
    // Another upstream model name, an implied output cap, a stream whose options need changing.
    expect(bytes(`{"model":"m",${MSG},"max_tokens":16}`, 'upstream-m').out).toBeNull();
    expect(bytes(`{"model":"m",${MSG}}`).out).toBeNull();
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
