// A describe block's gateway and mock upstream (gatewayForSuite) with channels to the mock and
// prices already set, before the block's own hooks run. Each channel reaches the mock the way
// its type expects: OpenAI's base URL ends in /v1, Anthropic's and Gemini's are the origin.
// The built-in `mock` type needs neither.
import { beforeAll } from 'vitest';
import type { MockProvider } from '../mock-provider/server.js';
import { addChannel, type PriceUsd, setPrice } from '../relay/relay-helpers.js';
import type { StartOptions, TestServer } from './server.js';
import { suiteGateway } from './suite.js';

export interface MockChannel {
  type: 'openai' | 'anthropic' | 'gemini' | 'mock';
  models: string[];
  model_map?: Record<string, string>;
  responses?: boolean;
  priority?: number;
}

export interface GatewayWithChannels {
  s: TestServer;
  mock: MockProvider;
  /** The mock's origin, without the /v1 its URL carries. */
  origin: string;
  /** The ids of the channels, in the order given. */
  channelIds: number[];
}

const originOf = (mock: MockProvider) => mock.url.replace(/\/v1$/, '');

/** The body of a channel to `mock` that authenticates with `apiKey`. */
export function channelTo(mock: MockProvider, apiKey: string, ch: MockChannel): Record<string, unknown> {
  if (ch.type === 'mock') return { ...ch };
  return { ...ch, base_url: ch.type === 'openai' ? mock.url : originOf(mock), api_key: apiKey };
}

/** The same price for each of `models`. */
export const priceEach = <P extends PriceUsd>(models: string[], price: P): Record<string, P> =>
  Object.fromEntries(models.map((m) => [m, price]));

export function gatewayWithChannels(
  opts: StartOptions,
  upstream: { apiKey: string; channels: MockChannel[]; prices: Record<string, PriceUsd> },
  use: (suite: GatewayWithChannels) => void,
): void {
  const { s, mock } = suiteGateway(opts, { apiKey: upstream.apiKey });
  beforeAll(async () => {
    const channelIds: number[] = [];
    for (const ch of upstream.channels)
      channelIds.push((await addChannel(s, channelTo(mock, upstream.apiKey, ch))).id);
    for (const [m, p] of Object.entries(upstream.prices)) await setPrice(s, m, p);
    use({ s, mock, origin: originOf(mock), channelIds });
  });
}
