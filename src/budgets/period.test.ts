// Budget periods start at 00:00 UTC: days, weeks on Monday, months on the 1st (any length).
import { describe, expect, it } from 'vitest';
import { periodEnd, periodStart } from './period.js';
import { markOf } from './service.js';

const t = (s: string) => Date.parse(s);
const iso = (ms: number) => new Date(ms).toISOString();

describe('budget periods', () => {
  it('a day runs from 00:00 UTC to the next 00:00 UTC', () => {
    expect(iso(periodStart('daily', t('2026-12-05T23:59:59.999Z')))).toBe('2026-12-05T00:00:00.000Z');
    expect(iso(periodEnd('daily', t('2026-12-05T23:59:59.999Z')))).toBe('2026-12-06T00:00:00.000Z');
    expect(iso(periodStart('daily', t('2026-12-06T00:00:00.000Z')))).toBe('2026-12-06T00:00:00.000Z');
  });

  it('a week starts on Monday, whatever the day', () => {
    // 2026-12-07 is a Monday.
    for (const d of ['07', '08', '09', '10', '11', '12', '13'])
      expect(iso(periodStart('weekly', t(`2026-12-${d}T12:00:00Z`)))).toBe('2026-12-07T00:00:00.000Z');
    expect(iso(periodStart('weekly', t('2026-12-06T23:59:59.999Z')))).toBe('2026-11-30T00:00:00.000Z');
    expect(iso(periodEnd('weekly', t('2026-12-13T23:59:59Z')))).toBe('2026-12-14T00:00:00.000Z');
    // Across a year end.
    expect(iso(periodStart('weekly', t('2027-01-01T08:00:00Z')))).toBe('2026-12-28T00:00:00.000Z');
  });

  it('a month starts on the 1st and lasts its own length (28, 29, 30 or 31 days)', () => {
    const cases: [string, string, string][] = [
      ['2027-02-28T23:59:59Z', '2027-02-01T00:00:00.000Z', '2027-03-01T00:00:00.000Z'],
      ['2028-02-29T12:00:00Z', '2028-02-01T00:00:00.000Z', '2028-03-01T00:00:00.000Z'],
      ['2026-04-30T23:59:59Z', '2026-04-01T00:00:00.000Z', '2026-05-01T00:00:00.000Z'],
      ['2026-12-31T23:59:59Z', '2026-12-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
      ['2027-01-01T00:00:00Z', '2027-01-01T00:00:00.000Z', '2027-02-01T00:00:00.000Z'],
    ];
    for (const [at, start, end] of cases) {
      expect(iso(periodStart('monthly', t(at)))).toBe(start);
      expect(iso(periodEnd('monthly', t(at)))).toBe(end);
    }
  });

  it('a threshold mark is the exact share of the limit, rounded up to the nano-USD', () => {
    expect(markOf(1_000_000_000, 0.8)).toBe(800_000_000);
    expect(markOf(1_000_000_000, 1)).toBe(1_000_000_000);
    expect(markOf(3, 0.5)).toBe(2);
    expect(markOf(9_000_000_000_000_000, 0.8)).toBe(7_200_000_000_000_000);
  });
});
