import { describe, expect, it } from 'vitest';
import { compileOrigins, normaliseOrigin, normaliseOrigins } from './origins.js';

/** Asserts that `check` passes every origin of `yes` and none of `no`. */
function expectSplit(check: (origin: string) => boolean, yes: string[], no: string[]) {
  for (const o of yes) expect(check(o), o).toBe(true);
  for (const o of no) expect(check(o), o).toBe(false);
}

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
      'https://*.com',
      'http://*.internal',
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
    expectSplit(
      (o) => l.allows(o),
      [
        'https://app.example.com',
        'https://APP.example.com:443',
        'https://x.corp.test',
        'https://a.b.corp.test',
        'http://localhost:5173',
      ],
      [
        'http://app.example.com', // scheme
        'https://app.example.com:8443', // port
        'https://evil.app.example.com',
        'https://corp.test', // the bare domain
        'https://xcorp.test',
        'https://x.corp.test:444',
        'http://localhost:5174',
        'http://localhost',
        'null',
        'https://*.corp.test', // a browser never sends a pattern
      ],
    );
    expect(compileOrigins([]).allows('https://app.example.com')).toBe(false);
  });

  it('knows when one list asks for nothing beyond another', () => {
    const l = compileOrigins(['https://*.example.com', 'http://localhost:3000']);
    expectSplit(
      (o) => l.covers(o),
      ['https://a.example.com', 'https://*.a.example.com', 'https://*.example.com', 'http://localhost:3000'],
      ['https://example.com', 'http://localhost:3001'],
    );
    expect(compileOrigins(['https://a.example.com']).covers('https://*.example.com')).toBe(false);
  });
});
