// SIGTERM on the real process: in-flight streams finish, pending logs and spend are flushed;
// past the grace period a stream still under way ends with its protocol's error event.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { type MockProvider, type Scenario, startMockProvider } from '../mock-provider/server.js';
import type { NewApiKey, User } from '../../web/src/api-types.js';
import { builtEntry, freePort, REPO_ROOT as ROOT, waitFor } from '../helpers/process.js';

describe('graceful shutdown', () => {
  let child: ChildProcess | null = null;
  let mock: MockProvider | null = null;
  let dir = '';
  afterEach(async () => {
    child?.kill('SIGKILL');
    await mock?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /**
   * The built gateway as its own process (MOLE_DATA_DIR in a temp dir, `env` added), with a
   * channel to the mock for `slow-model` (answering as `scenario` says), a user with 5 USD and a key, and a stream begun:
   * its reader holds the first chunk.
   */
  async function streamUnderWay(scenario: Scenario, env: Record<string, string> = {}) {
    mock = await startMockProvider({ apiKey: 'up-secret' });
    mock.setScenario('slow-model', scenario);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-shutdown-'));
    const port = await freePort();
    const master = 'mk-shutdown-test-master-key-0123456789';
    child = spawn(process.execPath, [builtEntry('main.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        MOLE_DATA_DIR: dir,
        MOLE_MASTER_KEY: master,
        MOLE_LOG_LEVEL: 'warn',
        MOLE_FLUSH_INTERVAL_MS: '60000',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(base + '/api/openapi.json')).ok, 90_000);
    expect(out).toMatch(new RegExp(`listening on http://127\\.0\\.0\\.1:${port}`));

    const api = <T>(method: string, p: string, body: unknown) =>
      fetch(base + p, {
        method,
        headers: { authorization: `Bearer ${master}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then((r) => r.json() as Promise<T>);
    await api('POST', '/api/channels', {
      name: 'slow',
      type: 'openai',
      base_url: mock.url,
      api_key: 'up-secret',
      models: ['slow-model'],
    });
    await api('PUT', '/api/prices/slow-model', { input: 1, output: 2 });
    const user = await api<User>('POST', '/api/users', {
      username: 'drain',
      password: 'password-123',
      balance: 5,
    });
    const key = await api<NewApiKey>('POST', '/api/keys', { name: 'drain-key', user_id: user.id });

    const res = await fetch(base + '/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'slow-model',
        messages: [{ role: 'user', content: 'take your time' }],
        stream: true,
      }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const first = await reader.read(); // the stream has begun
    expect(first.done).toBe(false);
    /** The rest of the stream, after the first chunk, as text. */
    const rest = async () => {
      let body = new TextDecoder().decode(first.value);
      for (;;) {
        const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (done) return body;
        body += new TextDecoder().decode(value);
      }
    };
    const exited = new Promise<number | null>((r) => child!.on('exit', (code) => r(code)));
    /** The stream's log row, the key's spend and the user's balance (after the process ended). */
    const stored = () => {
      const db = new Database(path.join(dir, 'mole.sqlite'), { readonly: true });
      try {
        return {
          log: db
            .prepare(
              'select status, error_code, completion_tokens, cost_nano, estimated from logs where key_id = ?',
            )
            .get(key.id) as {
            status: number;
            error_code: string | null;
            completion_tokens: number;
            cost_nano: number;
            estimated: number;
          },
          used: (
            db.prepare('select used_nano from api_keys where id = ?').get(key.id) as { used_nano: number }
          ).used_nano,
          balance: (
            db.prepare('select balance_nano from users where id = ?').get(user.id) as { balance_nano: number }
          ).balance_nano,
        };
      } finally {
        db.close();
      }
    };
    return { rest, exited, stored };
  }

  it('lets an in-flight stream finish and flushes its log row and spend before exiting', {
    timeout: 180_000,
  }, async () => {
    const t = await streamUnderWay({ chunkDelayMs: 150, completionTokens: 10 });
    child!.kill('SIGTERM');
    // New connections are refused while draining, but the stream in flight runs to [DONE].
    const body = await t.rest();
    expect(body).toContain('data: [DONE]');
    expect(body).not.toContain('"error"');
    expect(await t.exited).toBe(0);

    // The flush interval was a minute: only the shutdown flush can have written these.
    const { log, used, balance } = t.stored();
    expect(log).toMatchObject({ status: 200, completion_tokens: 10, estimated: 0 });
    expect(log.cost_nano).toBeGreaterThan(0);
    expect(used).toBe(log.cost_nano);
    expect(balance).toBe(5_000_000_000 - log.cost_nano);
  });

  it('past the grace period a stream still under way ends with its error event, billed and logged', {
    timeout: 180_000,
  }, async () => {
    // 40 chunks 200 ms apart: 8 s, far past a 1 s grace period.
    const t = await streamUnderWay(
      { chunkDelayMs: 200, completionTokens: 40 },
      { MOLE_SHUTDOWN_GRACE_SECONDS: '1' },
    );
    child!.kill('SIGTERM');
    const body = await t.rest();
    expect(body).not.toContain('data: [DONE]');
    const last = body.trimEnd().split('\n\n').at(-1)!;
    expect(last).toMatch(/^data: \{"error":/);
    expect(JSON.parse(last.slice('data: '.length)).error).toMatchObject({
      code: 'upstream_error',
      message: 'The answer was cut: the gateway is shutting down.',
    });
    expect(await t.exited).toBe(0);
    const { log, used, balance } = t.stored();
    // What it produced before the cut, counted here.
    expect(log).toMatchObject({ status: 200, error_code: 'upstream_error', estimated: 1 });
    expect(log.completion_tokens).toBeGreaterThan(0);
    expect(log.completion_tokens).toBeLessThan(40);
    expect(used).toBe(log.cost_nano);
    expect(balance).toBe(5_000_000_000 - log.cost_nano);
  });
});
