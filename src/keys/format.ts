// The API key format (contract §2): "sk-" + 42 CSPRNG base62 characters + a 6-character
// base62 CRC32 checksum of "sk-" + those 42 characters. The checksum lets us (and secret
// scanners) reject a mistyped or made-up key before any storage lookup.
import { hash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { randomBase62, toBase62 } from '../shared/base62.js';

export const KEY_PREFIX = 'sk-';
const RANDOM_LEN = 42;
const CHECKSUM_LEN = 6;
export const KEY_REGEX = /^sk-[0-9A-Za-z]{48}$/;

export function keyChecksum(body: string): string {
  return toBase62(crc32(KEY_PREFIX + body), CHECKSUM_LEN);
}

export function generateKey(): string {
  const body = randomBase62(RANDOM_LEN);
  return KEY_PREFIX + body + keyChecksum(body);
}

/** True when the string has the key shape and its checksum holds. No I/O. */
export function isWellFormedKey(key: string): boolean {
  if (key.length !== KEY_PREFIX.length + RANDOM_LEN + CHECKSUM_LEN || !KEY_REGEX.test(key)) return false;
  const body = key.slice(KEY_PREFIX.length, KEY_PREFIX.length + RANDOM_LEN);
  return key.slice(-CHECKSUM_LEN) === keyChecksum(body);
}

export function hashKey(key: string): string {
  // One-shot hash: a fifth of the cost of a Hash object on the hot path.
  return hash('sha256', key, 'hex');
}

/** Masked form shown in lists: "sk-abcd…wxyz". */
export function displayKey(key: string): string {
  return `${key.slice(0, 7)}…${key.slice(-4)}`;
}
