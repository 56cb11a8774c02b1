// Suite fixtures for the relay suites: a gateway whose mock provider (or built-in offline mock
// channel) already serves the suite's priced models, and scripted upstreams that a suite's
// tests start and the suite closes.
import { afterAll, beforeAll } from 'vitest';
import type { MockProvider, MockProviderOptions } from '../mock-provider/server.js';
import { addPricedChannel, type PriceUsd, startScriptedUpstream } from '../relay/relay-helpers.js';
import type { StartOptions, TestServer } from './server.js';
import { suiteGateway, suiteServer } from './suite.js';

export interface RelaySuite {
  s: TestServer;
  mock: MockProvider;
  /** The openai channel at the mock. */
  channel: { id: number; [k: string]: unknown };
}

/**
 * A describe block's test server and mock provider (see gatewayForSuite), with one openai
 * channel at the mock (credential `apiKey`, or 'x' when the mock asks none) serving the models
 * of `prices`, each priced; `channel` adds or overrides channel fields. Handed to the block
 * through `use` once all that is done.
 */
export function relaySuite(
  opts: StartOptions,
  upstream: MockProviderOptions & { prices: Record<string, PriceUsd>; channel?: Record<string, unknown> },
  use: (suite: RelaySuite) => void,
): void {
  const { prices, channel, ...mockOpts } = upstream;
  const { s, mock } = suiteGateway(opts, mockOpts);
  beforeAll(async () => {
    const fields = { type: 'openai', base_url: mock.url, api_key: mockOpts.apiKey ?? 'x', ...channel };
    use({ s, mock, channel: await addPricedChannel(s, fields, prices) });
  });
}

/**
 * A describe block's test server (see suiteServer) with the built-in offline `mock` channel
 * serving the models of `prices`, each priced; handed to the block through `use` once done.
 */
export function offlineSuite(
  opts: StartOptions,
  prices: Record<string, PriceUsd>,
  use: (s: TestServer) => void,
): void {
  const s = suiteServer(opts);
  beforeAll(async () => {
    await addPricedChannel(s, { type: 'mock' }, prices);
    use(s);
  });
}

type ScriptedHandler = Parameters<typeof startScriptedUpstream>[0];

/** Starts scripted upstreams (see startScriptedUpstream) for a describe block's tests; closed after it. */
export function scriptedForSuite(): (handler: ScriptedHandler) => Promise<{ url: string }> {
  const started: { close(): Promise<void> }[] = [];
  afterAll(async () => {
    await Promise.all(started.map((u) => u.close()));
  });
  return async (handler) => {
    const upstream = await startScriptedUpstream(handler);
    started.push(upstream);
    return upstream;
  };
}
