// Contract §7, issue 9: with REDIS_URL a concurrency slot is a lease that expires on its own,
// so a crashed instance never holds a slot for long. Two real gateway processes share one
// PostgreSQL database and one Redis; instance A takes both slots of a key with
// max_concurrency 2 and is killed with SIGKILL (no shutdown code runs, nothing is given
// back); instance B refuses while A's leases count and admits again once they ran out.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayProcess,
  kill9,
  killGatewayProcesses,
  scratchDatabase,
  startGatewayProcess,
  waitFor,
} from '../helpers/process.js';
import { pgUrl, redisUrl } from '../helpers/server.js';
import { clusterReady } from './helpers.js';
import { startMockProvider, type MockProvider } from '../mock-provider/server.js';

const enabled = clusterReady('concurrency kill -9 suite');

/** MOLE_HOLD_LEASE_MS for both instances (renewed every third of it while a request runs). */
const LEASE_MS = 1500;
const MASTER = 'mk-ck9-' + randomBytes(12).toString('hex');
const SECRET = 'ck9-secret-' + randomBytes(8).toString('hex');

/** One chat call; answers its status and error code (`ok` for 200, `gone` when the gateway died). */
async function chat(g: GatewayProcess, secret: string, model: string) {
  try {
    const res = await fetch(g.base + '/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'dig' }], max_tokens: 8 }),
    });
    const body = (await res.json()) as { error?: { code?: string } };
    return {
      status: res.status,
      code: res.status === 200 ? 'ok' : (body.error?.code ?? '?'),
      retryAfter: res.headers.get('retry-after'),
    };
  } catch {
    return { status: 0, code: 'gone', retryAfter: null };
  }
}

/** Free slots of the key as `g` sees them (its `limits.max_concurrency.remaining`). */
async function slotsLeft(g: GatewayProcess, secret: string): Promise<number> {
  const res = await fetch(g.base + '/v1/key', { headers: { authorization: `Bearer ${secret}` } });
  const body = (await res.json()) as { limits?: { max_concurrency?: { remaining: number } } };
  return body.limits?.max_concurrency?.remaining ?? -1;
}

describe.skipIf(!enabled)(
  'a killed instance never holds a concurrency slot for long (real processes)',
  () => {
    let mock: MockProvider;
    let db: { url: string; drop: () => Promise<void> } | null = null;
    const dirs: string[] = [];
    beforeAll(async () => {
      mock = await startMockProvider({ apiKey: 'ck9-upstream', recordRequests: false });
      // The slow model answers long after the test is over: its requests hold their slots
      // until the instance serving them dies.
      mock.setScenario('ck9-slow', { firstByteDelayMs: 120_000 });
      db = await scratchDatabase(pgUrl()!, 'mole_ck9');
    });
    afterAll(async () => {
      killGatewayProcesses();
      await mock?.close();
      await db?.drop();
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    });

    it('B refuses while A holds both slots, and admits again within 2× the lease after kill -9 A', {
      timeout: 120_000,
    }, async () => {
      const instance = () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-ck9-'));
        dirs.push(dir);
        return startGatewayProcess(MASTER, {
          MOLE_DATA_DIR: dir,
          DATABASE_URL: db!.url,
          REDIS_URL: redisUrl()!,
          MOLE_SECRET: SECRET,
          MOLE_HOLD_LEASE_MS: String(LEASE_MS),
        });
      };
      // A migrates the fresh database; B starts while A is being set up.
      const a = await instance();
      const setup = (async () => {
        await a.api('POST', '/api/channels', {
          name: 'ck9',
          type: 'openai',
          base_url: mock.url,
          api_key: 'ck9-upstream',
          models: ['ck9-fast', 'ck9-slow'],
        });
        for (const m of ['ck9-fast', 'ck9-slow'])
          await a.api('PUT', `/api/prices/${m}`, { input: 1, output: 2 });
        const user = await a.api('POST', '/api/users', {
          username: 'ck9' + randomBytes(4).toString('hex'),
          password: 'password-123',
          balance: 100,
        });
        const key = await a.api('POST', '/api/keys', { name: 'ck9', user_id: user.id, max_concurrency: 2 });
        expect(key.max_concurrency).toBe(2);
        return key.key as string;
      })();
      const [b, secret] = await Promise.all([instance(), setup]);
      // B serves the key (it learns the channel and prices from the shared database / bus).
      await waitFor(async () => (await chat(b, secret, 'ck9-fast')).status === 200, 20_000, 'B to serve');

      // A takes both slots with two requests that do not end.
      const onA = [chat(a, secret, 'ck9-slow'), chat(a, secret, 'ck9-slow')];
      // Watched through B's view of the key (GET /v1/key counts nothing, so takes no slot).
      await waitFor(
        async () => (await slotsLeft(b, secret)) === 0,
        20_000,
        "A's requests to hold both slots",
      );
      const third = await chat(b, secret, 'ck9-fast');
      expect(third.status).toBe(429);
      expect(third.code).toBe('concurrency_limit_exceeded');
      expect(third.retryAfter).toMatch(/^\d+$/);

      // kill -9 A: its requests die with it, their slots are never given back.
      await kill9(a);
      const killedAt = Date.now();
      expect((await Promise.all(onA)).map((r) => r.code)).toEqual(['gone', 'gone']);
      // A renewed its leases at most a third of a lease ago: they still count.
      expect((await chat(b, secret, 'ck9-fast')).code).toBe('concurrency_limit_exceeded');

      // B admits again once the leases ran out; until then it refuses only for concurrency.
      let admittedAfter = -1;
      while (Date.now() - killedAt < 4 * LEASE_MS) {
        const r = await chat(b, secret, 'ck9-fast');
        if (r.status === 200) {
          admittedAfter = Date.now() - killedAt;
          break;
        }
        expect(r.code).toBe('concurrency_limit_exceeded');
        await new Promise((res) => setTimeout(res, 50));
      }
      expect(admittedAfter, "admitted once the killed instance's leases ran out").toBeGreaterThan(0);
      expect(admittedAfter).toBeLessThan(2 * LEASE_MS);

      // Both slots are back, not just one: two requests at once are admitted, a third is not.
      await waitFor(async () => (await slotsLeft(b, secret)) === 2, 5_000, 'both slots free in B’s view');
      mock.setScenario('ck9-fast', { firstByteDelayMs: 1000 });
      const [r1, r2, r3] = await Promise.all([
        chat(b, secret, 'ck9-fast'),
        chat(b, secret, 'ck9-fast'),
        new Promise((res) => setTimeout(res, 300)).then(() => chat(b, secret, 'ck9-fast')),
      ]);
      expect([r1.code, r2.code, r3.code]).toEqual(['ok', 'ok', 'concurrency_limit_exceeded']);
    });
  },
);
