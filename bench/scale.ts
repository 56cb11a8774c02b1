/**
 * Micro and scale measurements, in-process against the real services (src/services.ts) on a
 * temporary SQLite data dir:
 *   - key verification alone: cache hit, cache miss (DB lookup), unknown and malformed keys
 *   - 1M keys: time to insert them, time to warm the verifier cache with all of them, and
 *     the heap that cache holds (MOLE_KEY_CACHE_SIZE = number of keys)
 *   - log ingestion: usageWriter.enqueue + flush, rows/s
 *   - GET /api/logs and GET /api/usage latency over 1M+ log rows (real HTTP, the real app),
 *     whole-day and partial-day ranges (the latter from usage_hourly + logs at the edges)
 *
 *   node --expose-gc --import tsx bench/scale.ts [--keys 1000000] [--logs 1000000] [--json out.json]
 *
 * Progress goes to stderr; the JSON result to --json (or stdout).
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync, statSync, rmSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import SQLite from 'better-sqlite3';
import { loadConfig } from '../src/config.js';
import { createServices } from '../src/services.js';
import { buildApp } from '../src/app.js';
import { BASE62 } from '../src/shared/base62.js';
import { KEY_PREFIX, keyChecksum, hashKey, isWellFormedKey, displayKey } from '../src/keys/format.js';
import type { NewLog } from '../src/db/schema.js';
import { LATER_LOG_COLUMNS } from '../src/usage/writer.js';
import { codec } from '../src/relay/protocols/index.js';
import { openaiCodec, parseRelayBody } from '../src/relay/protocols/openai.js';
import type { RouteInfo } from '../src/relay/protocols/types.js';
import { countChatPrompt } from '../src/relay/tokens.js';
import { tmpDir, MASTER_KEY } from './lib/targets.js';
import { percentile } from './lib/stats.js';
import { argOf, numArg } from './lib/args.js';
import type { ScaleResult } from './lib/report.js';

const N_KEYS = numArg('--keys', 1_000_000);
const N_LOGS = numArg('--logs', 1_000_000);
const N_WRITER = numArg('--writer-rows', 200_000);
const jsonOut = argOf('--json');

const say = (s: string) => process.stderr.write(`[scale] ${s}\n`);
const gc = () => {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) for (let i = 0; i < 3; i++) g();
};
const now = () => performance.now();

/** Runs fn repeatedly (awaiting each) for about `ms`, returns ops/s and µs/op. */
async function rate(
  fn: (i: number) => unknown,
  ms: number,
  minOps = 1000,
): Promise<{ ops: number; opsPerSec: number; usPerOp: number }> {
  let ops = 0;
  const t0 = now();
  let t = t0;
  while (t - t0 < ms || ops < minOps) {
    for (let j = 0; j < 256; j++) await fn(ops++);
    t = now();
  }
  const secs = (t - t0) / 1000;
  return { ops, opsPerSec: ops / secs, usPerOp: (secs * 1e6) / ops };
}

/** A well-formed key from fast random bytes (format and checksum exactly as the contract says). */
let pool = Buffer.alloc(0);
let poolAt = 0;
function fastKey(): string {
  if (poolAt + 42 > pool.length) {
    pool = randomBytes(42 * 4096);
    poolAt = 0;
  }
  let body = '';
  for (let i = 0; i < 42; i++) body += BASE62[pool[poolAt++]! % 62];
  return KEY_PREFIX + body + keyChecksum(body);
}

const result: Record<string, unknown> = { keys: N_KEYS, logRows: N_LOGS };
const dataDir = tmpDir('scale');
const config = loadConfig({
  MOLE_DATA_DIR: dataDir,
  MOLE_MASTER_KEY: MASTER_KEY,
  MOLE_LOG_LEVEL: 'warn',
  MOLE_KEY_CACHE_SIZE: String(Math.max(100_000, N_KEYS + 1000)),
  HOST: '127.0.0.1',
  PORT: '0',
});
const logger = pino({ level: 'warn' });
gc();
const heapBeforeServices = process.memoryUsage().heapUsed;
const services = await createServices(config, logger, { announceMasterKey: () => {} });
gc();
const heapAfterServices = process.memoryUsage().heapUsed;
const sqlite = new SQLite(path.join(dataDir, 'mole.sqlite'));
sqlite.pragma('journal_mode = WAL');
sqlite.pragma('synchronous = NORMAL');

try {
  const user = await services.accounts.createUser({
    username: 'scale',
    password: 'scale-password-123',
    role: 'user',
    group: 'default',
    balanceNano: 1e15,
  });
  const userId = Number(user.id);
  const { row: keyRow, secret } = await services.keys.create(userId, { name: 'hot' });
  const ip = '127.0.0.1';

  // ── 1. verification alone ────────────────────────────────────────────────────────────
  say('verification: hit / components');
  await services.verifier.verify(secret, ip);
  const hit = await rate(() => services.verifier.verify(secret, ip), 1500, 20_000);
  const wellFormed = await rate(() => isWellFormedKey(secret), 500, 20_000);
  const sha = await rate(() => hashKey(secret), 500, 20_000);
  const malformed = await rate(() => services.verifier.verify('sk-not-a-real-key', ip), 500, 20_000);
  const unknownKey = fastKey();
  await services.verifier.verify(unknownKey, ip); // one DB miss, then the negative cache answers
  const unknown = await rate(() => services.verifier.verify(unknownKey, ip), 500, 20_000);
  result.verify = {
    hitPerSec: hit.opsPerSec,
    hitUs: hit.usPerOp,
    checksumOnlyUs: wellFormed.usPerOp,
    sha256OnlyUs: sha.usPerOp,
    malformedPerSec: malformed.opsPerSec,
    unknownCachedPerSec: unknown.opsPerSec,
  };
  // What the relay spends turning a request body into an admission estimate (JSON parse +
  // local token count), for the benchmark's tiny prompt and for a ~4k-token one.
  const smallBody = Buffer.from(
    JSON.stringify({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Hello, mole! Say something short.' }],
      max_tokens: 16,
    }),
  );
  const bigText = Array.from(
    { length: 400 },
    (_, i) => `Paragraph ${i}: the mole digs a quiet tunnel under the warm garden soil.`,
  ).join(' ');
  const bigBody = Buffer.from(
    JSON.stringify({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: bigText },
      ],
      max_tokens: 16,
    }),
  );
  // The bound admission holds (UTF-8 bytes) is not the token count: count those exactly, once.
  const bigTokens = countChatPrompt([
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: bigText },
  ]);
  const admitSmall = await rate(
    () =>
      openaiCodec.parseRequest(
        parseRelayBody(smallBody),
        { protocol: 'openai', operation: 'generate' },
        4096,
      ),
    500,
    5_000,
  );
  const admitBig = await rate(
    () =>
      openaiCodec.parseRequest(parseRelayBody(bigBody), { protocol: 'openai', operation: 'generate' }, 4096),
    1000,
    200,
  );
  // The same prompt in the other ingress protocols (each codec reads its own body shape).
  const others: Record<string, { route: RouteInfo; body: Record<string, unknown> }> = {
    anthropic: {
      route: { protocol: 'anthropic', operation: 'generate' },
      body: {
        model: 'm',
        system: 'You are terse.',
        max_tokens: 16,
        messages: [{ role: 'user', content: bigText }],
      },
    },
    responses: {
      route: { protocol: 'responses', operation: 'generate' },
      body: { model: 'm', instructions: 'You are terse.', input: bigText, max_output_tokens: 16 },
    },
    gemini: {
      route: { protocol: 'gemini', operation: 'generate', pathModel: 'm' },
      body: {
        systemInstruction: { parts: [{ text: 'You are terse.' }] },
        contents: [{ role: 'user', parts: [{ text: bigText }] }],
        generationConfig: { maxOutputTokens: 16 },
      },
    },
  };
  const bigUsByProtocol: Record<string, number> = { openai: admitBig.usPerOp };
  for (const [protocol, o] of Object.entries(others)) {
    const raw = Buffer.from(JSON.stringify(o.body));
    bigUsByProtocol[protocol] = (
      await rate(() => codec(o.route.protocol).parseRequest(parseRelayBody(raw), o.route, 4096), 1000, 200)
    ).usPerOp;
  }
  result.admission = {
    smallUs: admitSmall.usPerOp,
    bigUs: admitBig.usPerOp,
    bigPromptTokens: bigTokens,
    bigBodyBytes: bigBody.length,
    bigUsByProtocol,
  };
  say(
    `  admission estimate: ${admitSmall.usPerOp.toFixed(1)} µs tiny prompt; for ${bigTokens} prompt tokens ${Object.entries(
      bigUsByProtocol,
    )
      .map(([p, us]) => `${p} ${us.toFixed(0)} µs`)
      .join(', ')}`,
  );
  say(
    `  hit ${hit.opsPerSec.toFixed(0)}/s (${hit.usPerOp.toFixed(2)} µs; checksum ${wellFormed.usPerOp.toFixed(2)} µs, sha256 ${sha.usPerOp.toFixed(2)} µs)`,
  );

  // ── 2. insert N keys straight into the table (the product's own insert path costs an audit row and a round trip each) ──
  const MISSES = Math.min(20_000, N_KEYS);
  const TOTAL_KEYS = N_KEYS + 2 * MISSES; // the extra ones stay cold for the miss test
  say(`inserting ${TOTAL_KEYS} keys`);
  const secrets: string[] = new Array(TOTAL_KEYS);
  const t0 = now();
  const insert = sqlite.prepare(
    `INSERT INTO api_keys (user_id, name, key_hash, display, status, used_nano, created_at, updated_at) VALUES (?, ?, ?, ?, 'active', 0, ?, ?)`,
  );
  const BATCH = 50_000;
  const insertMany = sqlite.transaction((from: number, to: number, ts: number) => {
    for (let i = from; i < to; i++) {
      const s = fastKey();
      secrets[i] = s;
      insert.run(userId, `k${i}`, createHash('sha256').update(s).digest('hex'), displayKey(s), ts, ts);
    }
  });
  for (let i = 0; i < TOTAL_KEYS; i += BATCH) insertMany(i, Math.min(TOTAL_KEYS, i + BATCH), Date.now());
  const insertSecs = (now() - t0) / 1000;
  result.keyInsert = {
    rows: TOTAL_KEYS,
    seconds: insertSecs,
    rowsPerSec: TOTAL_KEYS / insertSecs,
    dbBytes: statSync(path.join(dataDir, 'mole.sqlite')).size + walSize(dataDir),
  };
  say(
    `  ${insertSecs.toFixed(1)} s (${(TOTAL_KEYS / insertSecs).toFixed(0)} rows/s, includes key generation + SHA-256)`,
  );
  const CONC = 64;
  let t = now();

  // ── 3. hold all N keys in the verifier cache ───────────────────────────────────────────
  // Every entry is built by the verifier's own load path (verify → miss → findByHash → cache).
  // To keep the run short, findByHash answers from one bulk SELECT of the same rows instead of
  // one query per key; the per-key DB cost is measured separately below (misses).
  say(`warming the key cache with all ${N_KEYS} keys`);
  gc();
  const heap0 = process.memoryUsage();
  const cached0 = services.verifier.cacheSize();
  t = now();
  let rowsByHash: Map<string, unknown> | null = new Map();
  for (const r of sqlite
    .prepare(`SELECT api_keys.*, users.status AS user_status, users.group_name AS user_group, users.deleted_at AS user_deleted_at
      FROM api_keys JOIN users ON users.id = api_keys.user_id WHERE api_keys.id <= ?`)
    .iterate(N_KEYS + 1) as Iterable<{ key_hash: string }>)
    rowsByHash.set(r.key_hash, r);
  const bulkReadSecs = (now() - t) / 1000;
  const realFind = services.keys.findByHash;
  (services.keys as { findByHash: (h: string) => Promise<unknown> }).findByHash = async (h: string) =>
    rowsByHash!.get(h);
  t = now();
  for (let i = 0; i < N_KEYS; i += CONC * 64) {
    const stop = Math.min(N_KEYS, i + CONC * 64);
    let j = i;
    await Promise.all(
      Array.from({ length: CONC }, async () => {
        while (j < stop) await services.verifier.verify(secrets[j++]!, ip);
      }),
    );
    if ((i / (CONC * 64)) % 50 === 0) say(`  … ${stop}`);
  }
  const warmSecs = (now() - t) / 1000;
  services.keys.findByHash = realFind;
  rowsByHash.clear();
  rowsByHash = null;
  gc();
  const heap1 = process.memoryUsage();
  const cached1 = services.verifier.cacheSize();
  const added = cached1 - cached0;
  // Random hits across the whole million (no locality: the worst case for CPU caches).
  const hitRandom = await rate(
    (i) => services.verifier.verify(secrets[(i * 7919) % N_KEYS]!, ip),
    1500,
    50_000,
  );
  result.keyCache = {
    cachedEntries: cached1,
    bulkReadSeconds: bulkReadSecs,
    /** verify() of every key once, DB reads served from the bulk read (see above). */
    warmSeconds: warmSecs,
    warmPerSec: N_KEYS / warmSecs,
    heapBytesAdded: heap1.heapUsed - heap0.heapUsed,
    rssBytesAdded: heap1.rss - heap0.rss,
    bytesPerEntry: (heap1.heapUsed - heap0.heapUsed) / Math.max(1, added),
    /** Heap of the whole service set right after start, with the LRU sized for all keys (lru-cache preallocates its index). */
    servicesHeapAtStart: heapAfterServices - heapBeforeServices,
    /** Heap from before createServices to after all keys are cached. */
    heapTotalWithAllKeys: heap1.heapUsed - heapBeforeServices,
    randomHitPerSec: hitRandom.opsPerSec,
  };
  say(
    `  ${cached1} cached in ${warmSecs.toFixed(1)} s; +${((heap1.heapUsed - heap0.heapUsed) / 1048576).toFixed(0)} MiB heap (${((heap1.heapUsed - heap0.heapUsed) / Math.max(1, added)).toFixed(0)} B/entry); random hits ${hitRandom.opsPerSec.toFixed(0)}/s`,
  );

  // ── 4. misses: each a DB lookup (then cached) ──────────────────────────────────────────
  say(`verification: ${MISSES} cold misses (cache full, so each also evicts)`);
  t = now();
  for (let i = N_KEYS; i < N_KEYS + MISSES; i++) {
    const v = await services.verifier.verify(secrets[i]!, ip);
    if (!v.ok) throw new Error(`verify failed on a fresh key: ${v.code}`);
  }
  const missSecs = (now() - t) / 1000;
  // Misses with 64 in flight (what a busy gateway sees after a restart).
  t = now();
  let next = N_KEYS + MISSES;
  const end = N_KEYS + 2 * MISSES;
  await Promise.all(
    Array.from({ length: CONC }, async () => {
      while (next < end) await services.verifier.verify(secrets[next++]!, ip);
    }),
  );
  const missConcSecs = (now() - t) / 1000;
  (result.verify as Record<string, number>).missPerSec = MISSES / missSecs;
  (result.verify as Record<string, number>).missUs = (missSecs * 1e6) / MISSES;
  (result.verify as Record<string, number>).missConcurrent64PerSec = (end - N_KEYS - MISSES) / missConcSecs;
  say(
    `  miss ${(MISSES / missSecs).toFixed(0)}/s sequential, ${((end - N_KEYS - MISSES) / missConcSecs).toFixed(0)}/s with ${CONC} in flight`,
  );

  secrets.length = 0;

  // ── 5. log ingestion through the usage writer ──────────────────────────────────────────
  say(`log ingestion: ${N_WRITER} rows through usageWriter`);
  const keyIds = Array.from({ length: 100 }, (_, i) => i + 2);
  const models = ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1-mini'];
  const mkRow = (i: number, ts: number): NewLog => ({
    request_id: 'req_' + i.toString(16).padStart(24, '0'),
    created_at: ts,
    user_id: userId,
    key_id: keyIds[i % keyIds.length]!,
    key_name: 'k' + (i % keyIds.length),
    model: models[i % models.length]!,
    upstream_model: models[i % models.length]!,
    channel_id: 1,
    endpoint: '/v1/chat/completions',
    stream: i & 1,
    status: 200,
    error_code: null,
    prompt_tokens: 12,
    cached_tokens: 0,
    completion_tokens: 16,
    cost_nano: 11_400,
    latency_ms: 3,
    ttft_ms: i & 1 ? 2 : null,
    ip,
    estimated: 0,
    ...LATER_LOG_COLUMNS,
  });
  // Enqueue cost alone (what a request pays).
  const probe = mkRow(0, Date.now());
  t = now();
  for (let i = 0; i < 10_000; i++) void services.usageWriter.enqueue({ ...probe, request_id: 'probe' + i });
  const enqueueUs = ((now() - t) * 1000) / 10_000;
  await services.usageWriter.flush();
  // End to end, in batches about the size a 200 ms flush sees at ~25k req/s.
  const FLUSH_EVERY = 5_000;
  t = now();
  const ts = Date.now();
  for (let i = 0; i < N_WRITER; i++) {
    void services.usageWriter.enqueue(mkRow(i, ts + i));
    if ((i + 1) % FLUSH_EVERY === 0) await services.usageWriter.flush();
  }
  await services.usageWriter.flush();
  const writerSecs = (now() - t) / 1000;
  result.logIngest = {
    rows: N_WRITER,
    batchRows: FLUSH_EVERY,
    seconds: writerSecs,
    rowsPerSec: N_WRITER / writerSecs,
    enqueueUs,
  };
  say(
    `  ${(N_WRITER / writerSecs).toFixed(0)} rows/s (batches of ${FLUSH_EVERY}); enqueue ${enqueueUs.toFixed(2)} µs/row`,
  );

  // ── 6. 1M+ log rows, then the management read endpoints ────────────────────────────────
  // usage_hourly exists from migration 0016 on; the same script measures the code before it.
  const hasHourly = !!sqlite.prepare("SELECT 1 FROM sqlite_master WHERE name = 'usage_hourly'").get();
  say(
    `bulk-inserting ${N_LOGS} log rows (30 days, 100 keys, 3 models) + their daily${hasHourly ? ' and hourly' : ''} rollups`,
  );
  t = now();
  const DAY = 86_400_000;
  const start = Math.floor(Date.now() / DAY) * DAY - 29 * DAY;
  const span = 30 * DAY;
  const insLog =
    sqlite.prepare(`INSERT INTO logs (request_id, created_at, user_id, key_id, key_name, model, upstream_model, channel_id, endpoint, stream, status, error_code, prompt_tokens, cached_tokens, completion_tokens, cost_nano, latency_ms, ttft_ms, ip, estimated)
    VALUES (?, ?, ?, ?, ?, ?, ?, 1, '/v1/chat/completions', ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, 0)`);
  type Agg = {
    period: string | number;
    key: number;
    model: string;
    n: number;
    p: number;
    c: number;
    cost: number;
  };
  const rollup = new Map<string, Agg>();
  const hourly = new Map<string, Agg>();
  const add = (
    m: Map<string, Agg>,
    period: string | number,
    key: number,
    model: string,
    p: number,
    c: number,
    cost: number,
  ) => {
    const id = `${period}|${key}|${model}`;
    let a = m.get(id);
    if (!a) {
      a = { period, key, model, n: 0, p: 0, c: 0, cost: 0 };
      m.set(id, a);
    }
    a.n++;
    a.p += p;
    a.c += c;
    a.cost += cost;
  };
  const insertLogs = sqlite.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const created = start + Math.floor((i / N_LOGS) * span);
      const key = keyIds[(i * 31) % keyIds.length]!;
      const model = models[i % models.length]!;
      const status = i % 50 === 0 ? 429 : 200;
      const p = 10 + (i % 40);
      const c = status === 200 ? 16 + (i % 200) : 0;
      const cost = status === 200 ? p * 150 + c * 600 : 0;
      insLog.run(
        'bulk_' + i.toString(16).padStart(24, '0'),
        created,
        userId,
        key,
        'k' + key,
        model,
        model,
        i & 1,
        status,
        status === 200 ? null : 'rate_limit_exceeded',
        p,
        c,
        cost,
        3 + (i % 100),
        i & 1 ? 2 : null,
        ip,
      );
      add(rollup, new Date(created).toISOString().slice(0, 10), key, model, p, c, cost);
      if (hasHourly) add(hourly, created - (created % 3_600_000), key, model, p, c, cost);
    }
  });
  for (let i = 0; i < N_LOGS; i += BATCH) insertLogs(i, Math.min(N_LOGS, i + BATCH));
  const upsert =
    sqlite.prepare(`INSERT INTO usage_daily (day, user_id, key_id, model, requests, prompt_tokens, cached_tokens, completion_tokens, cost_nano) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)
    ON CONFLICT (day, user_id, key_id, model) DO UPDATE SET requests = requests + excluded.requests, prompt_tokens = prompt_tokens + excluded.prompt_tokens, completion_tokens = completion_tokens + excluded.completion_tokens, cost_nano = cost_nano + excluded.cost_nano`);
  const upsertHourly = hasHourly
    ? sqlite.prepare(`INSERT INTO usage_hourly (hour, user_id, key_id, model, requests, prompt_tokens, cached_tokens, completion_tokens, cost_nano) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)
    ON CONFLICT (hour, user_id, key_id, model) DO UPDATE SET requests = requests + excluded.requests, prompt_tokens = prompt_tokens + excluded.prompt_tokens, completion_tokens = completion_tokens + excluded.completion_tokens, cost_nano = cost_nano + excluded.cost_nano`)
    : null;
  sqlite.transaction(() => {
    for (const a of rollup.values()) upsert.run(a.period, userId, a.key, a.model, a.n, a.p, a.c, a.cost);
    for (const a of hourly.values())
      upsertHourly!.run(a.period, userId, a.key, a.model, a.n, a.p, a.c, a.cost);
  })();
  const logInsSecs = (now() - t) / 1000;
  const totalLogs = (sqlite.prepare('SELECT count(*) AS n FROM logs').get() as { n: number }).n;
  result.logBulkInsert = {
    rows: N_LOGS,
    seconds: logInsSecs,
    rowsPerSec: N_LOGS / logInsSecs,
    totalRows: totalLogs,
    dbBytes: statSync(path.join(dataDir, 'mole.sqlite')).size + walSize(dataDir),
  };
  say(`  ${logInsSecs.toFixed(1)} s; logs table now ${totalLogs} rows`);

  say('management reads over HTTP');
  const app = await buildApp(services, logger);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const someKey = keyIds[7]!;
  const midDay = new Date(start + 10 * DAY).toISOString();
  const midDayPlus = new Date(start + 17 * DAY + 3_600_000).toISOString();
  const range = (from: number, to: number) =>
    `from=${encodeURIComponent(new Date(from).toISOString())}&to=${encodeURIComponent(new Date(to).toISOString())}`;
  const H = 3_600_000;
  const sixHours = range(start + 28 * DAY + 7 * H + 123_456, start + 28 * DAY + 13 * H + 123_456);
  const threeAndHalfDays = range(start + 20 * DAY + 5 * H + 777, start + 23 * DAY + 17 * H + 4_321);
  const thirtyDays = range(start + 1_234, start + 30 * DAY - 4_321);
  const queries: Array<{ name: string; path: string; reps: number }> = [
    { name: 'logs, newest 50', path: '/api/logs?limit=50', reps: 50 },
    { name: 'logs, page 100 via cursor', path: '', reps: 20 },
    { name: 'logs, one key, 50', path: `/api/logs?key_id=${someKey}&limit=50`, reps: 50 },
    { name: 'logs, one model, 50', path: '/api/logs?model=gpt-4o&limit=50', reps: 50 },
    { name: 'logs, errors only, 50', path: '/api/logs?status=error&limit=50', reps: 20 },
    {
      name: 'logs, one key + 7-day window',
      path: `/api/logs?key_id=${someKey}&from=${encodeURIComponent(midDay)}&to=${encodeURIComponent(midDayPlus)}&limit=50`,
      reps: 20,
    },
    { name: 'logs + totals (sums over all rows)', path: '/api/logs?limit=50&totals=1', reps: 5 },
    { name: 'usage by day (rollup)', path: '/api/usage?group_by=day', reps: 20 },
    { name: 'usage by key (rollup)', path: '/api/usage?group_by=key', reps: 20 },
    {
      name: 'usage by model, one key (rollup)',
      path: `/api/usage?group_by=model&key_id=${someKey}`,
      reps: 20,
    },
    {
      name: 'usage by model, 7 days + 1 h (not whole days)',
      path: `/api/usage?group_by=model&from=${encodeURIComponent(midDay)}&to=${encodeURIComponent(midDayPlus)}`,
      reps: 5,
    },
    // Ranges off hour boundaries (before 0016 every one of these scanned the logs it covers).
    { name: 'usage by key, 6 h (partial day)', path: `/api/usage?group_by=key&${sixHours}`, reps: 10 },
    { name: 'usage by model, 6 h (partial day)', path: `/api/usage?group_by=model&${sixHours}`, reps: 10 },
    { name: 'logs + totals, 6 h (partial day)', path: `/api/logs?limit=50&totals=1&${sixHours}`, reps: 10 },
    {
      name: 'usage by day, 3.5 days (partial)',
      path: `/api/usage?group_by=day&${threeAndHalfDays}`,
      reps: 5,
    },
    { name: 'usage by key, 30 days (partial)', path: `/api/usage?group_by=key&${thirtyDays}`, reps: 5 },
  ];
  // A deep cursor: the id of the 5000th newest row.
  const deepCursor = (
    sqlite.prepare('SELECT id FROM logs ORDER BY id DESC LIMIT 1 OFFSET 5000').get() as { id: number }
  ).id;
  queries[1]!.path = `/api/logs?limit=50&cursor=${deepCursor}`;
  const reads: ScaleResult['reads'] = [];
  for (const q of queries) {
    const times: number[] = [];
    let rows = 0;
    for (let i = 0; i < q.reps + 1; i++) {
      const t1 = now();
      const res = await fetch(base + q.path, { headers: { authorization: `Bearer ${MASTER_KEY}` } });
      const body = (await res.json()) as { data?: unknown[] };
      const dt = now() - t1;
      if (res.status !== 200)
        throw new Error(`${q.path} → ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
      rows = body.data?.length ?? 0;
      if (i > 0) times.push(dt); // first call warms caches/JIT
    }
    times.sort((a, b) => a - b);
    reads.push({
      name: q.name,
      path: q.path,
      reps: q.reps,
      p50ms: percentile(times, 50),
      p99ms: percentile(times, 99),
      maxms: times[times.length - 1]!,
      rows,
    });
    say(
      `  ${q.name}: p50 ${percentile(times, 50).toFixed(1)} ms, max ${times[times.length - 1]!.toFixed(1)} ms (${rows} rows)`,
    );
  }
  result.reads = reads;
  await app.close();
  void keyRow;
} finally {
  sqlite.close();
  await services.close();
  rmSync(dataDir, { recursive: true, force: true });
}

function walSize(dir: string): number {
  try {
    return statSync(path.join(dir, 'mole.sqlite-wal')).size;
  } catch {
    return 0;
  }
}

const text = JSON.stringify(result, null, 2);
if (jsonOut) writeFileSync(jsonOut, text);
else process.stdout.write(text + '\n');
process.exit(0);
