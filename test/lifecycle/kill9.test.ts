// Nothing billed is lost (contract §9, issue 11): the real gateway process under plain and
// streaming load is killed with SIGKILL and started again on the same data; every answer a
// client received in full is then in the logs and charged, and nothing is charged twice
// (key `used` and the account balance moved by exactly the sum of logged costs). On SQLite,
// and on PostgreSQL + Redis, where a killed instance's admission holds lapse with its lease.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type GatewayProcess as Gateway,
  kill9,
  killGatewayProcesses,
  scratchDatabase,
  startGatewayProcess,
} from '../helpers/process.js';
import { pgRows } from '../helpers/pg-once.js';
import { holdsOn, redisPrefixOf } from '../helpers/redis-holds.js';
import { pgUrl, redisUrl } from '../helpers/server.js';
import { startMockProvider, type MockProvider } from '../mock-provider/server.js';

const dirs: string[] = [];
const MASTER = 'mk-kill9-' + randomBytes(12).toString('hex');
const SECRET = 'kill9-secret-' + randomBytes(8).toString('hex');

// A wide batch window: without the journal a kill would lose a second of answers.
const startGateway = (env: Record<string, string>) =>
  startGatewayProcess(MASTER, { MOLE_FLUSH_INTERVAL_MS: '1000', ...env });

/** One relay call; answers its request id and whether the client received the whole answer. */
async function call(
  g: Gateway,
  secret: string,
  stream: boolean,
  maxTokens = 16,
): Promise<{ id: string | null; complete: boolean; status: number }> {
  try {
    const res = await fetch(g.base + '/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'k9-model',
        messages: [{ role: 'user', content: `dig ${randomBytes(3).toString('hex')}` }],
        max_tokens: maxTokens,
        stream,
      }),
    });
    const id = res.headers.get('x-request-id');
    const text = await res.text();
    if (res.status !== 200) return { id, complete: false, status: res.status };
    if (stream)
      return {
        id,
        status: 200,
        complete: text.trimEnd().endsWith('data: [DONE]') && !text.includes('"error"'),
      };
    return { id, status: 200, complete: Array.isArray(JSON.parse(text).choices) };
  } catch {
    return { id: null, complete: false, status: 0 };
  }
}

/** Plain and streaming calls from `workers` loops until `stop()`; answers what completed. */
function load(g: Gateway, secret: string, workers: number) {
  let running = true;
  const completed: Array<{ id: string; stream: boolean }> = [];
  let sent = 0;
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = 0; running; i++) {
      const stream = (w + i) % 2 === 0;
      sent++;
      const r = await call(g, secret, stream);
      if (r.complete && r.id) completed.push({ id: r.id, stream });
      if (r.status === 0) return; // the gateway is gone
    }
  });
  return {
    completed,
    sent: () => sent,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function allLogs(
  g: Gateway,
  keyId: number,
): Promise<Array<{ request_id: string; status: number; cost: number }>> {
  const out: Array<{ request_id: string; status: number; cost: number }> = [];
  let cursor: string | null = null;
  do {
    const page: { data: typeof out; next_cursor: string | null } = await g.api(
      'GET',
      `/api/logs?key_id=${keyId}&limit=500${cursor ? `&cursor=${cursor}` : ''}`,
    );
    out.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

const nano = (usd: number) => Math.round(usd * 1e9);
/** The killed gateways' flush interval: longer than the answers they give after a flush. */
const FLUSH_MS = { MOLE_FLUSH_INTERVAL_MS: '10000' };

async function setup(g: Gateway, mock: MockProvider, balance: number) {
  await g.api('POST', '/api/channels', {
    name: 'k9-' + randomBytes(3).toString('hex'),
    type: 'openai',
    base_url: mock.url,
    api_key: 'k9-upstream',
    models: ['k9-model'],
  });
  await g.api('PUT', '/api/prices/k9-model', { input: 2.5, output: 10 });
  const user = await g.api('POST', '/api/users', {
    username: 'k9' + randomBytes(4).toString('hex'),
    password: 'password-123',
    balance,
  });
  const key = await g.api('POST', '/api/keys', { name: 'k9', user_id: user.id });
  return { userId: user.id as number, keyId: key.id as number, secret: key.key as string };
}

/** Kills `g` under load, restarts on the same storage, and checks the books. */
async function killUnderLoad(
  g: Gateway,
  restart: () => Promise<Gateway>,
  ids: { userId: number; keyId: number; secret: string },
  balance: number,
) {
  const l = load(g, ids.secret, 12);
  const answered = async (n: number) => {
    while (l.completed.length < n) await new Promise((r) => setTimeout(r, 20));
  };
  await answered(60);
  // Every row so far written now (a read of the logs flushes first); the next answers wait in
  // the journal alone (the killed gateway flushes every FLUSH_MS), and streams are mid-answer
  // when it dies. Waiting on a timer instead left a loaded machine nothing to replay at times.
  await g.api('GET', '/api/logs?limit=1');
  await answered(l.completed.length + 10);
  await kill9(g);
  await l.stop();
  const g2 = await restart();
  const logs = await allLogs(g2, ids.keyId);
  const byId = new Map(logs.map((r) => [r.request_id, r]));
  const lost = l.completed.filter((c) => byId.get(c.id)?.status !== 200);
  expect(lost, `answers received in full but not logged (of ${l.completed.length})`).toEqual([]);
  expect(byId.size, 'one row per request').toBe(logs.length);
  for (const c of l.completed) expect(byId.get(c.id)!.cost).toBeGreaterThan(0);
  expect(l.completed.some((c) => c.stream) && l.completed.some((c) => !c.stream)).toBe(true);
  // Charged exactly once: spend equals the sum of logged costs, to the nano-USD.
  const logged = logs.reduce((a, r) => a + nano(r.cost), 0);
  const key = await g2.api('GET', `/api/keys/${ids.keyId}`);
  const user = await g2.api('GET', `/api/users/${ids.userId}`);
  expect(nano(key.used)).toBe(logged);
  expect(nano(balance) - nano(user.balance)).toBe(logged);
  return { g2, completed: l.completed.length, logs: logs.length };
}

const withPgRedis = Boolean(pgUrl() && redisUrl());
let databaseUrl = '';
let dropDatabase = async () => {};

describe('kill -9 under load', () => {
  let mock: MockProvider;
  beforeAll(async () => {
    mock = await startMockProvider({ apiKey: 'k9-upstream', recordRequests: false });
    // Streams take a while, so some are mid-answer when the gateway dies.
    mock.setScenario('*', { chunkDelayMs: 3 });
    if (withPgRedis) {
      const db = await scratchDatabase(pgUrl()!, 'mole_k9');
      databaseUrl = db.url;
      dropDatabase = db.drop;
    }
  });
  afterAll(async () => {
    await mock?.close();
    await dropDatabase();
  });
  afterEach(() => {
    killGatewayProcesses();
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it('SQLite: every answer received in full is logged and charged once after a restart', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-kill9-'));
    dirs.push(dataDir);
    const g = await startGateway({ MOLE_DATA_DIR: dataDir, ...FLUSH_MS });
    const ids = await setup(g, mock, 1000);
    const { g2 } = await killUnderLoad(g, () => startGateway({ MOLE_DATA_DIR: dataDir }), ids, 1000);
    expect(g2.output()).toMatch(/replayed rows a previous process left/);
    g2.child.kill('SIGTERM');
    await g2.exited;
  }, 120_000);

  describe.skipIf(!withPgRedis)('PostgreSQL + Redis', () => {
    const shared = (dataDir: string, extra: Record<string, string> = {}) => ({
      MOLE_DATA_DIR: dataDir,
      DATABASE_URL: databaseUrl,
      MOLE_SECRET: SECRET,
      REDIS_URL: redisUrl()!,
      MOLE_HOLD_LEASE_MS: '3000',
      ...extra,
    });

    it("every answer received in full is logged and charged once; a killed instance's holds lapse with its lease", async () => {
      const dirA = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-kill9-a-'));
      const dirB = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-kill9-b-'));
      dirs.push(dirA, dirB);
      const a = await startGateway(shared(dirA, FLUSH_MS));
      const ids = await setup(a, mock, 1000);
      const { g2: a2 } = await killUnderLoad(a, () => startGateway(shared(dirA)), ids, 1000);
      expect(a2.output()).toMatch(/replayed rows a previous process left/);

      // Holds: a balance that covers one worst case; instance A holds it for a slow stream
      // when it is killed. Instance B (same database and Redis) refuses a second request while
      // the hold counts, and admits it once A's lease has lapsed — well within 60 s.
      mock.setScenario('k9-model', { chunkDelayMs: 400 });
      const b = await startGateway(shared(dirB));
      const tight = await setup(a2, mock, 0);
      // Worst case of one call: local prompt count + 16 output tokens; top up exactly a bit more.
      await a2.api('POST', `/api/users/${tight.userId}/topup`, { amount: 0.0005 });
      const slow = call(a2, tight.secret, true, 40);
      // A's hold is in Redis before B is asked.
      const prefix = redisPrefixOf(
        (
          await pgRows<{ value: string }>(databaseUrl, "select value from meta where name = 'database_id'")
        )[0]!.value,
      );
      await vi.waitFor(
        async () => expect((await holdsOn(redisUrl()!, prefix, 'u', tight.userId)).live).toBeGreaterThan(0),
        { timeout: 10_000, interval: 50 },
      );
      const refusedWhileHeld = await call(b, tight.secret, false, 40);
      expect(refusedWhileHeld.status).toBe(429);
      await kill9(a2);
      await slow;
      const killedAt = Date.now();
      expect((await call(b, tight.secret, false, 40)).status).toBe(429);
      let admittedAfter = -1;
      while (Date.now() - killedAt < 60_000) {
        const r = await call(b, tight.secret, false, 40);
        if (r.status === 200) {
          admittedAfter = Date.now() - killedAt;
          break;
        }
        expect(r.status).toBe(429);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(admittedAfter, 'admitted once the killed instance’s lease lapsed').toBeGreaterThan(0);
      expect(admittedAfter).toBeLessThan(3000 + 2000);
      b.child.kill('SIGTERM');
      await b.exited;
    }, 180_000);
  });
});
