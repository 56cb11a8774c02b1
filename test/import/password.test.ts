// Imported password hashes: new-api / one-api store bcrypt (`$2a$10$…`, Go's bcrypt); other
// bcrypt spellings verify too, and anything that is neither bcrypt nor our scrypt form never does.
import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
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
});
