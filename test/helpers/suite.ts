// One test server for a whole describe block (tests that do not interfere share it).
import { afterAll, beforeAll } from 'vitest';
import { type MockProvider, type MockProviderOptions, startMockProvider } from '../mock-provider/server.js';
import { type StartOptions, startTestServer, type TestServer } from './server.js';

/** Starts a server before the enclosing block's tests (handing it to `use`) and closes it after them. */
export function serverForSuite(opts: StartOptions, use: (s: TestServer) => void): void {
  let s: TestServer | undefined;
  beforeAll(async () => {
    s = await startTestServer(opts);
    use(s);
  });
  afterAll(async () => {
    await s?.close();
  });
}

/** Starts a mock provider before the enclosing block's tests (handing it to `use`) and closes it after them. */
export function mockForSuite(opts: MockProviderOptions, use: (m: MockProvider) => void): void {
  let m: MockProvider | undefined;
  beforeAll(async () => {
    m = await startMockProvider(opts);
    use(m);
  });
  afterAll(async () => {
    await m?.close();
  });
}
