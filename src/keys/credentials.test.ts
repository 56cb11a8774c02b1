// Where a relay request may carry its key (contract §2): the four headers, and ?key= only on
// Gemini-style paths.
import { describe, expect, it } from 'vitest';
import { presentedKey } from './credentials.js';

const K = 'sk-' + 'a'.repeat(48);

describe('presentedKey', () => {
  it('reads every header form', () => {
    expect(presentedKey({ authorization: `Bearer ${K}` }, '/v1/key')).toBe(K);
    expect(presentedKey({ authorization: `bearer   ${K}  ` }, '/v1/key')).toBe(K);
    expect(presentedKey({ 'x-api-key': K }, '/v1/key')).toBe(K);
    expect(presentedKey({ 'api-key': K }, '/v1/key')).toBe(K);
    expect(presentedKey({ 'x-goog-api-key': K }, '/v1/key')).toBe(K);
  });

  it('answers undefined when nothing is presented', () => {
    expect(presentedKey({}, '/v1/key')).toBeUndefined();
    expect(presentedKey({ authorization: '', 'x-api-key': '' }, '/v1/key')).toBeUndefined();
  });

  it('Authorization wins over the other headers', () => {
    expect(presentedKey({ authorization: `Bearer ${K}`, 'x-api-key': 'other' }, '/v1/key')).toBe(K);
  });

  it('takes ?key= on Gemini-style paths only', () => {
    expect(presentedKey({}, `/v1beta/models/gemini-pro:generateContent?key=${K}`)).toBe(K);
    expect(presentedKey({}, `/v1/models/gemini-pro:streamGenerateContent?alt=sse&key=${K}`)).toBe(K);
    expect(presentedKey({}, `/v1/models/gemini-pro:countTokens?key=${K}`)).toBe(K);
    expect(presentedKey({}, `/v1beta/models?key=${K}`)).toBe(K);
    expect(presentedKey({}, `/v1/models?key=${K}`)).toBeUndefined();
    expect(presentedKey({}, `/v1/models/gpt-4o?key=${K}`)).toBeUndefined();
    expect(presentedKey({}, `/v1/chat/completions?key=${K}`)).toBeUndefined();
    expect(presentedKey({}, `/v1/key?key=${K}`)).toBeUndefined();
    expect(presentedKey({ 'x-goog-api-key': 'header' }, `/v1beta/models/x:generateContent?key=${K}`)).toBe(
      'header',
    );
  });
});
