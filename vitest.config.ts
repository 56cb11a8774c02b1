import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'web/src/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/setup/cheap-passwords.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One module graph per worker instead of one per file: importing the app, the SDKs and
    // Playwright anew for each of ~120 files cost ~2 minutes of the run. Suites start their own
    // servers and restore any process.env they set, so nothing they share carries state.
    isolate: false,
    // Two cores: a couple of workers keeps servers, PostgreSQL and Chromium responsive.
    maxWorkers: 3,
  },
});
