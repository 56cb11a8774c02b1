// How a usage range is split between the daily rollup, the hourly rollup and the logs.
import { describe, expect, it } from 'vitest';
import { splitRange } from './queries.js';

const H = 3_600_000;
const D = 86_400_000;
const T = Date.UTC(2026, 11, 1);

describe('splitRange', () => {
  it('whole days, whole hours, then the logs only for the sub-hour ends', () => {
    expect(splitRange(T + 90 * 60_000, T + 2 * D + 30 * 60_000 + 7)).toEqual([
      { source: 'logs', from: T + 90 * 60_000, to: T + 2 * H },
      { source: 'usage_hourly', from: T + 2 * H, to: T + D },
      { source: 'usage_daily', from: T + D, to: T + 2 * D },
      { source: 'logs', from: T + 2 * D, to: T + 2 * D + 30 * 60_000 + 7 },
    ]);
    expect(splitRange(T, T + D)).toEqual([{ source: 'usage_daily', from: T, to: T + D }]);
    expect(splitRange(undefined, undefined)).toEqual([{ source: 'usage_daily' }]);
    expect(splitRange(T + 1, undefined)).toEqual([
      { source: 'logs', from: T + 1, to: T + H },
      { source: 'usage_hourly', from: T + H, to: T + D },
      { source: 'usage_daily', from: T + D, to: undefined },
    ]);
    expect(splitRange(T + H, T + 3 * H)).toEqual([{ source: 'usage_hourly', from: T + H, to: T + 3 * H }]);
    // No whole hour inside: the logs alone (an empty range stays empty).
    expect(splitRange(T + 10, T + H + 10)).toEqual([{ source: 'logs', from: T + 10, to: T + H + 10 }]);
    expect(splitRange(T + 5, T + 5)).toEqual([{ source: 'logs', from: T + 5, to: T + 5 }]);
  });

  it('parts are disjoint, aligned and cover the range; the logs part is under an hour at each end', () => {
    let seed = 1;
    const rnd = () => {
      seed = (seed * 16807) % 2147483647;
      return (seed / 2147483647) * 5 * D;
    };
    for (let i = 0; i < 2000; i++) {
      const a = T + Math.floor(rnd());
      const b = T + Math.floor(rnd());
      const [from, to] = a <= b ? [a, b] : [b, a];
      const parts = splitRange(from, to);
      expect(parts[0]!.from).toBe(from);
      expect(parts.at(-1)!.to).toBe(to);
      for (let j = 1; j < parts.length; j++) expect(parts[j]!.from).toBe(parts[j - 1]!.to);
      for (const p of parts) {
        if (p.source === 'usage_daily') expect([p.from! % D, p.to! % D]).toEqual([0, 0]);
        if (p.source === 'usage_hourly') expect([p.from! % H, p.to! % H]).toEqual([0, 0]);
        if (p.source === 'logs' && parts.length > 1) expect(p.to! - p.from!).toBeLessThan(H);
        if (p.source === 'logs') expect(p.to! - p.from!).toBeLessThan(2 * H);
      }
    }
  });
});
