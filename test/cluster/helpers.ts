// The two-instance setup the cluster suites share: instance `a` on PostgreSQL + Redis and
// instance `b` sharing its database and Redis, optionally with priced models served by a
// channel that `b` has learnt about before the tests start.
import { expect, vi } from 'vitest';
import { pgUrl, redisUrl, startTestServer, type TestServer } from '../helpers/server.js';
import { forSuite, standIn } from '../helpers/suite.js';
import { addPricedChannel, type PriceUsd } from '../relay/relay-helpers.js';

/** Whether a cluster suite can run here (PostgreSQL, and Redis too unless told otherwise); warns if not. */
export function clusterReady(
  suite: string,
  needs: 'PostgreSQL' | 'PostgreSQL and Redis' = 'PostgreSQL and Redis',
) {
  const ready = !!pgUrl() && (needs === 'PostgreSQL' || !!redisUrl());
  if (!ready) console.warn(`[moleapi tests] SKIPPING ${suite}: needs ${needs}`);
  return ready;
}

export interface PairOptions {
  env?: Record<string, string>;
  /** Models to serve, each with its price (USD per 1M tokens). */
  prices?: Record<string, PriceUsd>;
  /** The channel serving them: the built-in offline `mock` channel unless told otherwise. */
  channel?: Record<string, unknown>;
}

export interface Pair {
  a: TestServer;
  b: TestServer;
  /** Closes `b`, then `a`. */
  close(): Promise<void>;
}

/**
 * Starts `a` (PostgreSQL + Redis) and `b` sharing both, each with `env`. With `prices`, adds a
 * channel serving those models and their prices on `a`, and waits until `b` has both through
 * the shared invalidation channel.
 */
export async function startPair(opts: PairOptions = {}): Promise<Pair> {
  const a = await startTestServer({ backend: 'postgres', redis: true, env: opts.env });
  const b = await startTestServer({ shareWith: a, redis: true, env: opts.env });
  if (opts.prices) {
    await addPricedChannel(a, opts.channel ?? { type: 'mock' }, opts.prices);
    for (const model of Object.keys(opts.prices))
      await vi.waitFor(
        () => {
          expect(b.services.channels.serves('default', model)).toBe(true);
          expect(b.services.catalog.price(model)).toBeTruthy();
        },
        { timeout: 2000, interval: 20 },
      );
  }
  return {
    a,
    b,
    async close() {
      await b.close();
      await a.close();
    },
  };
}

/**
 * A describe block's pair (see startPair), as stand-ins for its tests and hooks: started before
 * its tests and closed after them. `opts` may be a function, called when the pair starts.
 */
export function pairForSuite(opts: PairOptions | (() => PairOptions)): { a: TestServer; b: TestServer } {
  const a = standIn<TestServer>('instance a');
  const b = standIn<TestServer>('instance b');
  forSuite(
    () => startPair(typeof opts === 'function' ? opts() : opts),
    (pair) => {
      a.bind(pair.a);
      b.bind(pair.b);
    },
  );
  return { a: a.ref, b: b.ref };
}

/**
 * Stops both instances' clocks at one time, for a test whose steps on either must share one
 * clock hour or budget period (each instance has a clock of its own): answers the thaw.
 */
export function freezePair(a: TestServer, b: TestServer): () => void {
  const thaws = [a.clock.freeze(), b.clock.freeze()];
  // They stopped a moment apart: the one behind catches up, so both read the same time.
  const gap = b.clock.now() - a.clock.now();
  (gap > 0 ? a : b).clock.advance(Math.abs(gap));
  return () => {
    for (const thaw of thaws) thaw();
  };
}
