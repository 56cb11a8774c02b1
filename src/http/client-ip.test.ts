import { describe, expect, it } from 'vitest';
import { makeClientIpResolver } from './client-ip.js';

describe('the client address behind trusted proxies', () => {
  const clientIp = makeClientIpResolver(['127.0.0.1/32', '10.9.0.0/16']);

  it('walks X-Forwarded-For from the right past trusted hops', () => {
    expect(clientIp('127.0.0.1', '203.0.113.7, 10.9.0.4')).toBe('203.0.113.7');
    expect(clientIp('::ffff:127.0.0.1', '::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(clientIp('127.0.0.1', ['198.51.100.1', '203.0.113.7'])).toBe('203.0.113.7');
    // Every hop trusted: the farthest.
    expect(clientIp('127.0.0.1', '10.9.0.1, 10.9.0.4')).toBe('10.9.0.1');
    // An untrusted peer's header is ignored.
    expect(clientIp('198.51.100.9', '10.0.0.1')).toBe('198.51.100.9');
  });

  it('reads a hop written with its port, or bracketed', () => {
    expect(clientIp('127.0.0.1', '10.0.0.1:5555')).toBe('10.0.0.1');
    expect(clientIp('127.0.0.1', '[2001:db8::5]:1234')).toBe('2001:db8::5');
    expect(clientIp('127.0.0.1', '[2001:db8::5]')).toBe('2001:db8::5');
    expect(clientIp('127.0.0.1', '2001:db8::5')).toBe('2001:db8::5');
    expect(clientIp('127.0.0.1', '203.0.113.7, 10.9.0.4:80')).toBe('203.0.113.7');
  });

  it('a hop that is no address ends the walk at the peer', () => {
    for (const xff of ['garbage', 'unknown, 10.9.0.4', '203.0.113.7, nonsense', '1.2.3.4:99999', '[::1', ''])
      expect(clientIp('127.0.0.1', xff), xff).toBe('127.0.0.1');
  });
});
