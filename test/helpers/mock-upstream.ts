// One mock provider per test file for a channel transport's tests: started before them,
// reset between them, closed after them together with the transport.
import { afterAll, beforeAll, beforeEach } from 'vitest';
import type { UpstreamTimeouts } from '../../src/relay/providers/openai.js';
import { type MockProvider, startMockProvider } from '../mock-provider/server.js';

/** A transport's timeouts against the local mock: seconds to spare, no connection cap. */
export const testTimeouts = (over: Partial<UpstreamTimeouts> = {}): UpstreamTimeouts => ({
  connectMs: 2000,
  firstByteMs: 5000,
  idleMs: 5000,
  maxConnections: 0,
  ...over,
});

export interface MockUpstream {
  readonly mock: MockProvider;
  /** The mock's origin, without the /v1 its URL carries. */
  readonly origin: string;
}

export function mockUpstreamFor(apiKey: string, transport: { close(): Promise<void> }): MockUpstream {
  let mock: MockProvider | undefined;
  beforeAll(async () => {
    mock = await startMockProvider({ apiKey });
  });
  afterAll(async () => {
    await transport.close();
    await mock?.close();
  });
  beforeEach(() => mock?.reset());
  return {
    get mock() {
      if (!mock) throw new Error('the mock provider starts in beforeAll');
      return mock;
    },
    get origin() {
      return this.mock.url.replace(/\/v1$/, '');
    },
  };
}
