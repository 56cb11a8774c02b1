import { describe, expect, it } from 'vitest';
import { csvNumber, toCsv } from './queries.js';

describe('CSV numbers', () => {
  it('never writes a cost in exponent form', () => {
    expect(csvNumber(8e-7)).toBe('0.0000008');
    expect(csvNumber(1e-9)).toBe('0.000000001');
    expect(csvNumber(0.000123)).toBe('0.000123');
    expect(csvNumber(12.5)).toBe('12.5');
    expect(csvNumber(-0.0000015)).toBe('-0.0000015');
    expect(csvNumber(1e-12)).toBe('0');
    expect(csvNumber(3)).toBe('3');
    expect(csvNumber(1234567890123)).toBe('1234567890123');
  });

  it('writes them so in a whole file', () => {
    const csv = toCsv(['model', 'cost'], [['gpt-4o-mini', 8e-7]]);
    expect(csv).toBe('model,cost\r\ngpt-4o-mini,0.0000008\r\n');
    expect(csv).not.toMatch(/e-\d/);
  });
});
