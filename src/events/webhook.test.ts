import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { BACKOFF_BASE_MS, BACKOFF_CAP_MS, backoffMs, signature } from './webhook.js';

describe('webhook backoff', () => {
  it('doubles from the base, keeps between half and all of it, and stops at the cap', () => {
    expect(backoffMs(1, () => 1)).toBe(BACKOFF_BASE_MS);
    expect(backoffMs(1, () => 0)).toBe(BACKOFF_BASE_MS / 2);
    expect(backoffMs(2, () => 1)).toBe(2 * BACKOFF_BASE_MS);
    expect(backoffMs(4, () => 1)).toBe(8 * BACKOFF_BASE_MS);
    expect(backoffMs(30, () => 1)).toBe(BACKOFF_CAP_MS);
    expect(backoffMs(10_000, () => 1)).toBe(BACKOFF_CAP_MS);
    expect(backoffMs(10_000, () => 0)).toBe(BACKOFF_CAP_MS / 2);
    for (let i = 0; i < 100; i++) {
      const w = backoffMs(3);
      expect(w).toBeGreaterThanOrEqual(2 * BACKOFF_BASE_MS);
      expect(w).toBeLessThanOrEqual(4 * BACKOFF_BASE_MS);
    }
  });
});

describe('webhook signature', () => {
  it('is t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>">', () => {
    const body = '{"id":"evt_1"}';
    const hex = createHmac('sha256', 'secret-0123456789').update(`1700000000.${body}`).digest('hex');
    expect(signature('secret-0123456789', 1700000000, body)).toBe(`t=1700000000,v1=${hex}`);
  });
});
