import { describe, expect, it } from 'vitest';
import { compileOrigins, normaliseOrigin, normaliseOrigins } from './origins.js';

describe('allowed origins', () => {
  it('normalises entries: case, trailing slash, default ports', () => {
    const n = (s: string) => normaliseOrigin(s);
    expect(n('HTTPS://App.Example.com/')).toBe('https://app.example.com');
    expect(n('https://app.example.com:443')).toBe('https://app.example.com');
    expect(n('http://localhost:80')).toBe('http://localhost');
    expect(n('http://localhost:5173')).toBe('http://localhost:5173');
    expect(n('https://*.example.com')).toBe('https://*.example.com');
    expect(n('http://[::1]:8080')).toBe('http://[::1]:8080');
  });

  it('refuses what is not an origin', () => {
    for (const bad of [
      '',
      'example.com',
      'https://',
      'https://example.com/path',
      'https://example.com?x=1',
      'https://user@example.com',
      'https://ex ample.com',
      'https://*example.com',
      'https://a.*.example.com',
      '*',
      'https://example.com:0',
      'https://example.com:70000',
      'null',
    ])
      expect(normaliseOrigin(bad), bad).toBeNull();
    expect(normaliseOrigins(['https://a.com', 'HTTPS://A.COM'])).toEqual({
      ok: true,
      value: ['https://a.com'],
    });
  });

  it('matches exact origins, wildcards, ports and schemes', () => {
    const l = compileOrigins(['https://app.example.com', 'https://*.corp.test', 'http://localhost:5173']);
    expect(l.allows('https://app.example.com')).toBe(true);
    expect(l.allows('https://APP.example.com:443')).toBe(true);
    expect(l.allows('http://app.example.com')).toBe(false); // scheme
    expect(l.allows('https://app.example.com:8443')).toBe(false); // port
    expect(l.allows('https://evil.app.example.com')).toBe(false);
    expect(l.allows('https://x.corp.test')).toBe(true);
    expect(l.allows('https://a.b.corp.test')).toBe(true);
    expect(l.allows('https://corp.test')).toBe(false); // the bare domain
    expect(l.allows('https://xcorp.test')).toBe(false);
    expect(l.allows('https://x.corp.test:444')).toBe(false);
    expect(l.allows('http://localhost:5173')).toBe(true);
    expect(l.allows('http://localhost:5174')).toBe(false);
    expect(l.allows('http://localhost')).toBe(false);
    expect(l.allows('null')).toBe(false);
    expect(l.allows('https://*.corp.test')).toBe(false); // a browser never sends a pattern
    expect(compileOrigins([]).allows('https://app.example.com')).toBe(false);
  });

  it('knows when one list asks for nothing beyond another', () => {
    const l = compileOrigins(['https://*.example.com', 'http://localhost:3000']);
    expect(l.covers('https://a.example.com')).toBe(true);
    expect(l.covers('https://*.a.example.com')).toBe(true);
    expect(l.covers('https://*.example.com')).toBe(true);
    expect(l.covers('https://example.com')).toBe(false);
    expect(l.covers('http://localhost:3000')).toBe(true);
    expect(l.covers('http://localhost:3001')).toBe(false);
    expect(compileOrigins(['https://a.example.com']).covers('https://*.example.com')).toBe(false);
  });
});
