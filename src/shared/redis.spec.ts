// The Redis side of the shared specs (ledger, limits, admission): they run on the Redis server of
// MOLE_TEST_REDIS_URL (found by test/global-setup.ts), and are skipped, visibly, without one.
import { describe, it } from 'vitest';

/**
 * Runs `spec` with the test Redis server's URL; without one, warns as `[file] SKIPPING the Redis
 * <what> spec` and shows a skipped test under "Redis <what>".
 */
export function onRedis(file: string, what: string, spec: (url: string) => void): void {
  const url = process.env.MOLE_TEST_REDIS_URL;
  if (url) {
    spec(url);
    return;
  }
  console.warn(`[${file}] SKIPPING the Redis ${what} spec: MOLE_TEST_REDIS_URL is not set`);
  describe(`Redis ${what}`, () => {
    it.skip('needs a Redis server (MOLE_TEST_REDIS_URL; test/global-setup.ts looks at TEST_REDIS_URL)', () => {});
  });
}
