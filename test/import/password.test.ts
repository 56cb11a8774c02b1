// Imported password hashes: new-api / one-api store bcrypt (`$2a$10$…`, Go's bcrypt); other
// bcrypt spellings verify too, and anything that is neither bcrypt nor our scrypt form never does.
import bcrypt from 'bcryptjs';
import { describe, expect, it, vi } from 'vitest';
import { hashPassword, needsRehash, verifyPassword } from '../../src/accounts/password.js';

describe('imported bcrypt password hashes', () => {
  const hash = bcrypt.hashSync('new-api-password', 4);
  it.each(['$2a$', '$2b$', '$2y$'])('verifies %s hashes and asks for a re-hash', async (prefix) => {
    const stored = prefix + hash.slice(4);
    expect(await verifyPassword('new-api-password', stored)).toBe(true);
    expect(await verifyPassword('wrong-password', stored)).toBe(false);
    expect(needsRehash(stored)).toBe(true);
  });
  it('our scrypt hashes need no re-hash; unusable hashes never verify', async () => {
    expect(needsRehash(await hashPassword('x-password-1'))).toBe(false);
    expect(await verifyPassword('', '!imported-without-password')).toBe(false);
    expect(await verifyPassword('x', '$2a$10$short')).toBe(false);
  });
  it('the real module hashes at scrypt N=16384 (test/setup/cheap-passwords.ts lowers it in tests)', async () => {
    const real = await vi.importActual<typeof import('../../src/accounts/password.js')>(
      '../../src/accounts/password.js',
    );
    const stored = await real.hashPassword('x-password-1');
    expect(stored).toMatch(/^scrypt\$16384\$8\$1\$/);
    expect(real.DUMMY_HASH).toMatch(/^scrypt\$16384\$8\$1\$/);
    expect(await real.verifyPassword('x-password-1', stored)).toBe(true);
    expect(await real.verifyPassword('x-password-2', stored)).toBe(false);
    // and the hashes tests make are cheaper but of the same form
    expect(await hashPassword('x-password-1')).toMatch(/^scrypt\$1024\$8\$1\$/);
  });
});
