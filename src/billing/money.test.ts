// Cost arithmetic: integer nano-USD in BigInt, rounded up once; cache reads and writes are
// parts of the prompt, each at its own price (the input price when unset).
import { describe, expect, it } from 'vitest';
import { costNano, MAX_NANO, type Price, scaleDecimal, worstCostNano } from './money.js';

const price = (p: Partial<Price> = {}): Price => ({
  inputNanoPerM: 3_000_000_000, // 3 USD / 1M
  outputNanoPerM: 15_000_000_000,
  cachedInputNanoPerM: 300_000_000,
  cacheWriteNanoPerM: 3_750_000_000,
  cacheWrite1hNanoPerM: 6_000_000_000,
  webSearchNanoPerK: null,
  priorityPpm: null,
  ...p,
});
const usage = (
  promptTokens: number,
  cachedTokens: number,
  cacheWriteTokens: number,
  completionTokens: number,
) => ({
  promptTokens,
  cachedTokens,
  cacheWriteTokens,
  completionTokens,
});

describe('costNano', () => {
  it('bills uncached input, cache reads, cache writes and output each at its price', () => {
    // 1000 prompt = 200 uncached + 500 read + 300 written; 100 out.
    const expected = 200 * 3_000 + 500 * 300 + 300 * 3_750 + 100 * 15_000;
    expect(costNano(usage(1000, 500, 300, 100), price(), 1_000_000)).toBe(expected);
  });

  it('bills cache writes at the input price when no cache-write price is set', () => {
    expect(costNano(usage(1000, 0, 400, 0), price({ cacheWriteNanoPerM: null }), 1_000_000)).toBe(
      1000 * 3_000,
    );
    expect(costNano(usage(1000, 0, 400, 0), price(), 1_000_000)).toBe(600 * 3_000 + 400 * 3_750);
  });

  it('bills cache writes kept for an hour at their own price, twice the input when unset', () => {
    // 1000 prompt = 100 uncached + 300 read + 600 written, 400 of them for an hour.
    const hour = { ...usage(1000, 300, 600, 0), cacheWrite1hTokens: 400 };
    expect(costNano(hour, price(), 1_000_000)).toBe(100 * 3_000 + 300 * 300 + 200 * 3_750 + 400 * 6_000);
    expect(costNano(hour, price({ cacheWrite1hNanoPerM: null }), 1_000_000)).toBe(
      100 * 3_000 + 300 * 300 + 200 * 3_750 + 400 * 6_000,
    );
    expect(costNano(hour, price({ cacheWrite1hNanoPerM: 5_000_000_000 }), 1_000_000)).toBe(
      100 * 3_000 + 300 * 300 + 200 * 3_750 + 400 * 5_000,
    );
    // Never more hour-long writes than writes.
    expect(costNano({ ...usage(1000, 0, 100, 0), cacheWrite1hTokens: 900 }, price(), 1_000_000)).toBe(
      900 * 3_000 + 100 * 6_000,
    );
  });

  it('bills each web search at the price per 1,000, 10 USD when unset, times the multiplier', () => {
    const searched = { ...usage(1000, 0, 0, 100), webSearches: 3 };
    const tokens = 1000 * 3_000 + 100 * 15_000;
    expect(costNano(searched, price(), 1_000_000)).toBe(tokens + 3 * 10_000_000);
    expect(costNano(searched, price({ webSearchNanoPerK: 25_000_000_000 }), 1_000_000)).toBe(
      tokens + 3 * 25_000_000,
    );
    // A price per 1,000 that is not a whole nano-USD per search rounds the total up once.
    expect(
      costNano({ ...usage(0, 0, 0, 0), webSearches: 3 }, price({ webSearchNanoPerK: 1 }), 1_000_000),
    ).toBe(1);
    expect(costNano(searched, price(), 1_500_000)).toBe(1.5 * (tokens + 3 * 10_000_000));
    expect(
      worstCostNano({ promptTokens: 1000, completionTokens: 100, webSearches: 2 }, price(), 1_000_000),
    ).toBe(worstCostNano({ promptTokens: 1000, completionTokens: 100 }, price(), 1_000_000) + 2 * 10_000_000);
  });

  it('bills an answer at priority at its multiplier of the token cost, searches aside', () => {
    const u = { ...usage(1000, 300, 0, 100), webSearches: 1 };
    const tokens = 700 * 3_000 + 300 * 300 + 100 * 15_000;
    const priced = price({ priorityPpm: 1_750_000 });
    expect(costNano(u, priced, 1_000_000)).toBe(tokens + 10_000_000);
    expect(costNano({ ...u, priority: true }, priced, 1_000_000)).toBe(tokens * 1.75 + 10_000_000);
    // With the group's multiplier on top, rounded up once.
    expect(costNano({ ...usage(1, 0, 0, 0), priority: true }, priced, 1_000_001)).toBe(
      Math.ceil((3_000 * 1.75 * 1_000_001) / 1_000_000),
    );
    expect(
      worstCostNano({ promptTokens: 1000, completionTokens: 100, priority: true }, priced, 1_000_000),
    ).toBe((1000 * 3_750 + 100 * 15_000) * 1.75);
  });

  it('never counts more cached tokens than were sent (reads first, then writes)', () => {
    // Reads 800 + writes 800 of a 1000-token prompt: 800 read, 200 written, 0 uncached.
    expect(costNano(usage(1000, 800, 800, 0), price(), 1_000_000)).toBe(800 * 300 + 200 * 3_750);
    expect(costNano(usage(100, 500, 0, 0), price(), 1_000_000)).toBe(100 * 300);
  });

  it('rounds up once, after the multiplier, and treats a usage without cache writes as none', () => {
    const p = price({
      inputNanoPerM: 1,
      outputNanoPerM: 1,
      cachedInputNanoPerM: null,
      cacheWriteNanoPerM: 7,
    });
    // (3·1 + 2·7) · 1.5 / 1e6 → a fraction of a nano: one nano.
    expect(costNano(usage(5, 0, 2, 0), p, 1_500_000)).toBe(1);
    expect(costNano({ promptTokens: 5, cachedTokens: 0, completionTokens: 0 }, p, 1_000_000)).toBe(1);
    expect(costNano(usage(0, 0, 0, 0), p, 1_000_000)).toBe(0);
    // Exact to the nano for large integers: 10M written tokens at 3.75 USD/1M × 2.5.
    expect(costNano(usage(10_000_000, 0, 10_000_000, 0), price(), 2_500_000)).toBe(93_750_000_000);
  });

  it('holds the worst case: every input token at its dearest price', () => {
    const out = 100 * 15_000;
    // Cache writes (3.75) cost more than input (3): held at the write price.
    expect(worstCostNano({ promptTokens: 1000, completionTokens: 100 }, price(), 1_000_000)).toBe(
      1000 * 3_750 + out,
    );
    // An hour-long write (6) only when the request asked for one.
    expect(
      worstCostNano({ promptTokens: 1000, completionTokens: 100, cachesForHour: true }, price(), 1_000_000),
    ).toBe(1000 * 6_000 + out);
    expect(
      worstCostNano(
        { promptTokens: 1000, completionTokens: 100, cachesForHour: true },
        price({ cacheWrite1hNanoPerM: null }),
        1_000_000,
      ),
    ).toBe(1000 * 6_000 + out);
    // Unset write prices are the input price: the plain worst case.
    const plain = price({ cacheWriteNanoPerM: null, cachedInputNanoPerM: null });
    expect(worstCostNano({ promptTokens: 1000, completionTokens: 100 }, plain, 1_000_000)).toBe(
      1000 * 3_000 + out,
    );
    // Never below what the dearest actual usage costs.
    for (const u of [usage(1000, 0, 1000, 100), { ...usage(1000, 0, 1000, 100), cacheWrite1hTokens: 1000 }])
      expect(
        worstCostNano({ promptTokens: 1000, completionTokens: 100, cachesForHour: true }, price(), 1_500_000),
      ).toBeGreaterThanOrEqual(costNano(u, price(), 1_500_000));
  });

  it('caps at the largest amount the ledger holds', () => {
    expect(costNano(usage(1e9, 0, 1e9, 1e9), price({ outputNanoPerM: MAX_NANO }), 1_000_000)).toBe(MAX_NANO);
  });
});

describe('scaleDecimal', () => {
  it('scales exactly what a JSON number carries exactly, and refuses the rest', () => {
    expect(scaleDecimal(0.1, 9)).toBe(100_000_000);
    expect(scaleDecimal(1e-9, 9)).toBe(1);
    expect(scaleDecimal(8_999_999.99999999, 9)).toBe(8_999_999_999_999_990);
    expect(scaleDecimal(9_000_000, 9)).toBe(9_000_000_000_000_000);
    // Too many places, or 16 significant digits: "8999999.999999999" parses as …998.
    expect(scaleDecimal(1.0000000001, 9)).toBeNull();
    expect(scaleDecimal(JSON.parse('8999999.999999999'), 9)).toBeNull();
    expect(scaleDecimal(1_234_567.123456789, 9)).toBeNull();
    expect(scaleDecimal(-1, 9)).toBeNull();
  });
});
