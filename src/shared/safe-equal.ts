// Constant-time string comparison for secrets (CSRF tokens and the like).
import { timingSafeEqual } from 'node:crypto';

/** Whether `a` and `b` are equal, in time that does not depend on where they differ. */
export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}
