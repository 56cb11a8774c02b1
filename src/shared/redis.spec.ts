// The Redis side of the shared specs (ledger, limits, admission): they run on the Redis server of
// MOLE_TEST_REDIS_URL (found by test/global-setup.ts), and are skipped, visibly, without one.
import { tracingChannel } from 'node:diagnostics_channel';
import { createClient } from '@redis/client';
import { describe, it } from 'vitest';
import type { RedisClient } from './redis.js';

/**
 * Runs `spec` with the test Redis server's URL; without one, warns as `[file] SKIPPING the Redis
 * <what> spec` and shows a skipped test under "Redis <what>".
 */
export function onRedis(file: string, what: string, spec: (url: string) => void): void {
  const url = process.env.MOLE_TEST_REDIS_URL;
  if (url) {
    spec(url);
    return;
  }
  console.warn(`[${file}] SKIPPING the Redis ${what} spec: MOLE_TEST_REDIS_URL is not set`);
  describe(`Redis ${what}`, () => {
    it.skip('needs a Redis server (MOLE_TEST_REDIS_URL; test/global-setup.ts looks at TEST_REDIS_URL)', () => {});
  });
}

/**
 * A client of the test server, already connecting (RESP2, as createRedis): commands issued
 * before it is ready wait for it. `destroy()` it when done.
 */
export function testRedis(url: string): RedisClient {
  const client: RedisClient = createClient({ url, RESP: 2 });
  client.on('error', () => {});
  void client.connect().catch(() => {});
  return client;
}

/**
 * Names every Redis command this process's clients send while `on` (node-redis's tracing
 * channels): `EVALSHA:<first 8 of the SHA>` for a script by SHA, `MULTI ×n` for a
 * transaction of n commands, else the command's name. `off()` stops listening.
 */
export function watchRedisCommands(on: () => boolean, seen: (name: string) => void): { off(): void } {
  const ignore = () => {};
  const naming = <C extends object>(name: (c: C) => string) => ({
    start: (c: C) => {
      if (on()) seen(name(c));
    },
    end: ignore,
    asyncStart: ignore,
    asyncEnd: ignore,
    error: ignore,
  });
  const commands = tracingChannel<CommandContext>('node-redis:command');
  const batches = tracingChannel<BatchContext>('node-redis:batch');
  const command = naming<CommandContext>((c) =>
    c.command === 'EVALSHA' ? `EVALSHA:${c.args[1]?.slice(0, 8)}` : c.command,
  );
  const batch = naming<BatchContext>((c) => `${c.batchMode} ×${c.batchSize}`);
  commands.subscribe(command);
  batches.subscribe(batch);
  return {
    off() {
      commands.unsubscribe(command);
      batches.unsubscribe(batch);
    },
  };
}
type CommandContext = { command: string; args: readonly string[] };
type BatchContext = { batchMode: string; batchSize: number };
