// The two-instance setup the cluster suites share: instance `a` on PostgreSQL + Redis and
// instance `b` sharing its database and Redis, optionally with a priced mock model that `b`
// has learnt about before the tests start.
import { expect, vi } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * Starts `a` (PostgreSQL + Redis) and `b` sharing both, each with `env`. With `model`, adds a
 * mock channel serving it and its price (USD per 1M tokens) on `a`, and waits until `b` has
 * both through the shared invalidation channel. The caller closes `b`, then `a`.
 */
export async function startPair(
  opts: { env?: Record<string, string>; model?: { name: string; input: number; output: number } } = {},
): Promise<{ a: TestServer; b: TestServer }> {
  const a = await startTestServer({ backend: 'postgres', redis: true, env: opts.env });
  const b = await startTestServer({ shareWith: a, redis: true, env: opts.env });
  const m = opts.model;
  if (m) {
    expect(
      (await a.api('POST', '/api/channels', { name: 'offline', type: 'mock', models: [m.name] })).status,
    ).toBe(201);
    expect((await a.api('PUT', `/api/prices/${m.name}`, { input: m.input, output: m.output })).status).toBe(
      200,
    );
    await vi.waitFor(
      () => {
        expect(b.services.channels.serves('default', m.name)).toBe(true);
        expect(b.services.catalog.price(m.name)).toBeTruthy();
      },
      { timeout: 2000, interval: 20 },
    );
  }
  return { a, b };
}
