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

/**
 * A stand-in for a fixture a describe block's beforeAll hook starts: it reads (and writes)
 * through to the fixture once `bind` hands it over; reading it before then throws.
 */
export function standIn<T extends object>(what: string): { ref: T; bind(started: T): void } {
  let target: T | undefined;
  const started = (key: PropertyKey): T => {
    if (!target) throw new Error(`${what} read before it started (.${String(key)})`);
    return target;
  };
  const ref = new Proxy({} as T, {
    get(_, key) {
      const t = started(key);
      const v = Reflect.get(t, key);
      return typeof v === 'function' ? v.bind(t) : v;
    },
    set: (_, key, value) => Reflect.set(started(key), key, value),
  });
  return {
    ref,
    bind: (t) => {
      target = t;
    },
  };
}

/** The describe block's test server (see serverForSuite), as a stand-in for its tests and hooks. */
export function suiteServer(opts: StartOptions): TestServer {
  const s = standIn<TestServer>('test server');
  serverForSuite(opts, s.bind);
  return s.ref;
}

export const mockForSuite = (opts: MockProviderOptions, use: (m: MockProvider) => void): void =>
  forSuite(() => startMockProvider(opts), use);

/** The describe block's mock provider (see mockForSuite), as a stand-in for its tests and hooks. */
export function suiteMock(opts: MockProviderOptions): MockProvider {
  const mock = standIn<MockProvider>('mock provider');
  mockForSuite(opts, mock.bind);
  return mock.ref;
}

/** A describe block's test server and mock provider (its upstream), started and closed together. */
export function suiteGateway(
  opts: StartOptions,
  mockOpts: MockProviderOptions,
): { s: TestServer; mock: MockProvider } {
  return { s: suiteServer(opts), mock: suiteMock(mockOpts) };
}
