// Key format (contract §2): "sk-" + 42 base62 + 6-char base62 CRC32 of "sk-" + the 42.
// The checksum is recomputed here with an independent CRC32 and base62 encoder, so a bug
// shared by generateKey and isWellFormedKey cannot hide behind a round trip.
import { describe, expect, it } from 'vitest';
import { BASE62, toBase62 } from '../shared/base62.js';
import { displayKey, generateKey, hashKey, isWellFormedKey, KEY_REGEX, keyChecksum } from './format.js';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const CONTRACT_REGEX = /^sk-[0-9A-Za-z]{48}$/;

// Reference CRC32 (IEEE 802.3, reflected, poly 0xEDB88320), bit by bit.
function refCrc32(s: string): number {
  let crc = 0xffffffff;
  for (const byte of Buffer.from(s, 'ascii')) {
    crc ^= byte;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function refBase62(n: number, width: number): string {
  let out = '';
  let v = BigInt(n);
  while (v > 0n) {
    out = ALPHABET[Number(v % 62n)] + out;
    v /= 62n;
  }
  return out.padStart(width, '0');
}

/** Builds a key by the contract's rule from a 42-character body. */
const contractKey = (body: string) => 'sk-' + body + refBase62(refCrc32('sk-' + body), 6);

describe('key format', () => {
  it('uses the contract alphabet in the contract order', () => {
    expect(BASE62).toBe(ALPHABET);
    expect(KEY_REGEX.source).toBe(CONTRACT_REGEX.source);
  });

  it('reference CRC32 matches the standard check value', () => {
    expect(refCrc32('123456789')).toBe(0xcbf43926);
  });

  it('base62 is most significant digit first and zero-padded', () => {
    expect(toBase62(0, 6)).toBe('000000');
    expect(toBase62(61, 6)).toBe('00000z');
    expect(toBase62(62, 6)).toBe('000010');
    expect(toBase62(0xffffffff, 6)).toBe(refBase62(0xffffffff, 6));
    expect(toBase62(0xffffffff, 6)).toBe('4gfFC3');
  });

  it('checksum is the base62 CRC32 of "sk-" + body, for fixed and random bodies', () => {
    const bodies = ['0'.repeat(42), 'z'.repeat(42), ALPHABET.slice(0, 42), ALPHABET.slice(20, 62)];
    for (let i = 0; i < 200; i++) bodies.push(generateKey().slice(3, 45));
    for (const body of bodies) {
      expect(keyChecksum(body)).toBe(refBase62(refCrc32('sk-' + body), 6));
      expect(isWellFormedKey(contractKey(body))).toBe(true);
    }
  });

  it('generated keys match the regex, carry a valid checksum and are unique', () => {
    const seen = new Set<string>();
    const chars = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const k = generateKey();
      expect(k).toMatch(CONTRACT_REGEX);
      expect(k).toBe(contractKey(k.slice(3, 45)));
      expect(isWellFormedKey(k)).toBe(true);
      seen.add(k);
      for (const c of k.slice(3, 45)) chars.add(c);
    }
    expect(seen.size).toBe(2000);
    // 84,000 random characters: every one of the 62 must have turned up.
    expect(chars.size).toBe(62);
  });

  it('rejects every one-character substitution, at every position', () => {
    const key = generateKey();
    let tried = 0;
    for (let pos = 0; pos < key.length; pos++) {
      for (const c of ALPHABET + '-_') {
        if (c === key[pos]) continue;
        const bad = key.slice(0, pos) + c + key.slice(pos + 1);
        tried++;
        if (isWellFormedKey(bad))
          throw new Error(`corruption at ${pos} (${key[pos]} → ${c}) was accepted: ${bad}`);
      }
    }
    expect(tried).toBe(51 * 63);
  });

  it('rejects deletions, insertions, adjacent swaps and truncations', () => {
    const key = generateKey();
    for (let pos = 0; pos < key.length; pos++) {
      expect(isWellFormedKey(key.slice(0, pos) + key.slice(pos + 1))).toBe(false);
      expect(isWellFormedKey(key.slice(0, pos) + 'a' + key.slice(pos))).toBe(false);
      if (pos + 1 < key.length && key[pos] !== key[pos + 1]) {
        expect(isWellFormedKey(key.slice(0, pos) + key[pos + 1] + key[pos] + key.slice(pos + 2))).toBe(false);
      }
    }
    expect(isWellFormedKey(key + ' ')).toBe(false);
    expect(isWellFormedKey(' ' + key)).toBe(false);
    expect(isWellFormedKey(key.toUpperCase())).toBe(false);
    expect(isWellFormedKey('')).toBe(false);
    expect(isWellFormedKey('sk-')).toBe(false);
    expect(isWellFormedKey('Sk-' + key.slice(3))).toBe(false);
  });

  it('rejects a well-shaped string whose checksum was made up', () => {
    const body = generateKey().slice(3, 45);
    const right = refBase62(refCrc32('sk-' + body), 6);
    const wrong = right === '000000' ? '000001' : '000000';
    expect(isWellFormedKey('sk-' + body + right)).toBe(true);
    expect(isWellFormedKey('sk-' + body + wrong)).toBe(false);
  });

  it('hashes with SHA-256 hex and masks as sk-abcd…wxyz', () => {
    const key = generateKey();
    expect(hashKey(key)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashKey(key)).not.toContain(key.slice(3, 45));
    const d = displayKey(key);
    expect(d).toBe(`${key.slice(0, 7)}…${key.slice(-4)}`);
    expect(d.length).toBeLessThan(16);
  });
});
