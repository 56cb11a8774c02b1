// Base62 (0-9, A-Z, a-z): API keys, their checksums and the master key are spelt in it.
import { randomInt } from 'node:crypto';

export const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `n` in base62, left-padded with '0' to `width` characters. */
export function toBase62(n: number, width: number): string {
  let out = '';
  let v = n;
  do {
    out = BASE62[v % 62] + out;
    v = Math.floor(v / 62);
  } while (v > 0);
  return out.padStart(width, '0');
}

/** `len` uniformly random base62 characters from the CSPRNG. */
export function randomBase62(len: number): string {
  let s = '';
  // randomInt draws uniformly (rejection sampling inside), so no modulo bias.
  for (let i = 0; i < len; i++) s += BASE62[randomInt(62)];
  return s;
}
