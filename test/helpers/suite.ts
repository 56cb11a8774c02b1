// One test server (and mock provider, or any fixture with a close()) for a whole describe
// block: started before its tests, handed to the block through `use`, closed after them (tests
// that do not interfere share it).
import { afterAll, beforeAll } from 'vitest';
import { type MockProvider, type MockProviderOptions, startMockProvider } from '../mock-provider/server.js';
import { type StartOptions, startTestServer, type TestServer } from './server.js';

export function forSuite<T extends { close(): Promise<void> }>(
  start: () => Promise<T>,
  use: (t: T) => void,
): void {
  let started: T | undefined;
  beforeAll(async () => {
    started = await start();
    use(started);
  });
  afterAll(async () => {
    await started?.close();
  });
}

export const serverForSuite = (opts: StartOptions, use: (s: TestServer) => void): void =>
  forSuite(() => startTestServer(opts), use);

/** The describe block's test server, started before its tests and closed after them; it stands
 * for the server from then on (reading it before the block's beforeAll hooks run throws). */
export function suiteServer(opts: StartOptions): TestServer {
  let server: TestServer | undefined;
  serverForSuite(opts, (started) => {
    server = started;
  });
  return new Proxy({} as TestServer, {
    get(_, key) {
      if (!server) throw new Error(`test server read before it started (.${String(key)})`);
      return Reflect.get(server, key);
    },
  });
}

export const mockForSuite = (opts: MockProviderOptions, use: (m: MockProvider) => void): void =>
  forSuite(() => startMockProvider(opts), use);

/** A describe block's test server and mock provider (its upstream), started and closed together. */
export function gatewayForSuite(
  opts: StartOptions,
  mockOpts: MockProviderOptions,
  use: (s: TestServer, m: MockProvider) => void,
): void {
  let server: TestServer;
  serverForSuite(opts, (started) => {
    server = started;
  });
  mockForSuite(mockOpts, (started) => use(server, started));
}
