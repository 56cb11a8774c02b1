// The setup of suites that relay chats to the built-in offline mock: a mock channel serving one
// model, and a price for it.
import { beforeAll } from 'vitest';
import { addChannel, type PriceUsd, setPrice } from '../relay/relay-helpers.js';
import type { StartOptions, TestServer } from './server.js';
import { serverForSuite } from './suite.js';

/** Adds a mock channel named `offline` serving `model`, priced at `price` (USD per 1M tokens). */
export async function offerMockModel(s: TestServer, price: PriceUsd, model = 'mole-mini'): Promise<void> {
  await addChannel(s, { name: 'offline', type: 'mock', models: [model] });
  await setPrice(s, model, price);
}

/** A describe block's test server (see serverForSuite) offering `mole-mini` at `price`. */
export function pricedServerForSuite(
  opts: StartOptions,
  price: PriceUsd,
  use: (s: TestServer) => void,
): void {
  let server: TestServer;
  serverForSuite(opts, (started) => {
    server = started;
    use(started);
  });
  beforeAll(() => offerMockModel(server, price));
}
