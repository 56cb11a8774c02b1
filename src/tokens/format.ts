// The management token format: "mg-" + 42 CSPRNG base62 characters + a 6-character base62
// CRC32 checksum of "mg-" + those 42 characters, the same scheme as API keys (keys/format.ts)
// under its own prefix, so secret scanners tell them apart and a mistyped token is refused
// before any storage lookup.
import { hash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { randomBase62, toBase62 } from '../shared/base62.js';

export const TOKEN_PREFIX = 'mg-';
const RANDOM_LEN = 42;
const CHECKSUM_LEN = 6;
export const TOKEN_REGEX = /^mg-[0-9A-Za-z]{48}$/;

const checksum = (body: string) => toBase62(crc32(TOKEN_PREFIX + body), CHECKSUM_LEN);

export function generateToken(): string {
  const body = randomBase62(RANDOM_LEN);
  return TOKEN_PREFIX + body + checksum(body);
}

/** True when the string has the token shape and its checksum holds. No I/O. */
export function isWellFormedToken(token: string): boolean {
  if (!TOKEN_REGEX.test(token)) return false;
  return token.slice(-CHECKSUM_LEN) === checksum(token.slice(TOKEN_PREFIX.length, -CHECKSUM_LEN));
}

export const hashToken = (token: string): string => hash('sha256', token, 'hex');

/** Masked form shown in lists: "mg-abcd…wxyz". */
export const displayToken = (token: string): string => `${token.slice(0, 7)}…${token.slice(-4)}`;
