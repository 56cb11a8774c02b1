import { describe, expect, it } from 'vitest';
import { parseUsd, usdText } from './validate';

describe('parseUsd', () => {
  it('takes what the API takes: up to 9 decimals and 15 significant digits, up to 9,000,000', () => {
    expect(parseUsd('')).toEqual({ value: null, error: null });
    expect(parseUsd(' $12.50 ')).toEqual({ value: 12.5, error: null });
    expect(parseUsd('1.23456789').value).toBe(1.23456789);
    expect(parseUsd('0.123456789').value).toBe(0.123456789);
    expect(parseUsd('9000000').value).toBe(9_000_000);
    expect(parseUsd('1.5000000000').value).toBe(1.5);
  });

  it('says what is wrong with the rest', () => {
    expect(parseUsd('abc').error).toMatch(/US dollars/);
    expect(parseUsd('-5').error).toMatch(/US dollars/);
    // A decimal comma is not read as a thousands separator: "1,5" is not 15.
    expect(parseUsd('1,5').error).toMatch(/US dollars/);
    expect(parseUsd('0.0000000001').error).toMatch(/9 decimal places/);
    expect(parseUsd('1234567.123456789').error).toMatch(/15 significant digits/);
    expect(parseUsd('99999999999').error).toMatch(/At most 9,000,000/);
  });
});

describe('usdText', () => {
  it('writes amounts in plain decimals that parseUsd reads back as the same amount', () => {
    expect(usdText(1e-9)).toBe('0.000000001');
    expect(usdText(25)).toBe('25');
    expect(usdText(100)).toBe('100');
    expect(usdText(2.5)).toBe('2.5');
    expect(usdText(null)).toBe('');
    for (const v of [1e-9, 3e-7, 0.123456789, 6.246913579, 15.000000007, 9_000_000, 0])
      expect(parseUsd(usdText(v))).toEqual({ value: v, error: null });
  });
});
