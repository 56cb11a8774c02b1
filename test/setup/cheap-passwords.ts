// Test-only: passwords are hashed at scrypt N=1024 instead of 16384 (the production cost, which
// takes ~50 ms of CPU per hash). Hundreds of users are created across the suites and none of
// them measures hashing. verifyPassword stays the real one and reads the cost from the stored
// hash, so every sign-in still runs scrypt against a real hash; test/import/password.test.ts
// checks the real module's cost.
import { randomBytes, scrypt } from 'node:crypto';
import { vi } from 'vitest';

export const TEST_SCRYPT_N = 1024;

vi.mock('../../src/accounts/password.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/accounts/password.js')>();
  const cheapHash = async (password: string) => {
    const salt = randomBytes(16);
    const hash = await new Promise<Buffer>((resolve, reject) =>
      scrypt(password, salt, 32, { N: TEST_SCRYPT_N, r: 8, p: 1 }, (err, key) =>
        err ? reject(err) : resolve(key),
      ),
    );
    return `scrypt$${TEST_SCRYPT_N}$8$1$${salt.toString('base64')}$${hash.toString('base64')}`;
  };
  return { ...real, hashPassword: cheapHash, DUMMY_HASH: await cheapHash('not-a-real-password') };
});
