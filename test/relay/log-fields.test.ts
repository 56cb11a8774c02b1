// The log and price fields multi-protocol relaying fills in, on SQLite and PostgreSQL: each
// log row's upstream attempts (an array, [] when none were recorded), its ingress protocol,
// prompt-cache writes and reasoning tokens; a price for prompt-cache writes.
import { describe, expect, it } from 'vitest';
import { backends, userWithKey } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import type { NewLog } from '../../src/db/schema.js';
import { logRow } from '../helpers/log-row.js';

describe.each(backends())('log attempts, protocol, cache writes; cache-write prices (%s)', (backend) => {
  const s = suiteServer({ backend });

  const row = (u: { user: { id: number }; key: { id: number } }, extra: Partial<NewLog>) =>
    logRow({
      user_id: u.user.id,
      key_id: u.key.id,
      channel_id: 2,
      endpoint: '/v1/messages',
      prompt_tokens: 1000,
      cached_tokens: 500,
      completion_tokens: 20,
      latency_ms: 30,
      ...extra,
    });

  it('GET /api/logs returns attempts, protocol, cache_write_tokens and reasoning_tokens', async () => {
    const u = await userWithKey(s);
    const attempts = [
      { channel_id: 1, channel_name: 'first', status: 500, error: null, latency_ms: 12 },
      { channel_id: 1, channel_name: 'first', status: null, error: 'connection reset', latency_ms: 3 },
      { channel_id: 2, channel_name: 'second', status: 200, error: null, latency_ms: 30 },
    ];
    const first = row(u, {
      protocol: 'anthropic',
      cache_write_tokens: 300,
      reasoning_tokens: 7,
      attempts: JSON.stringify(attempts),
    });
    const second = row(u, {});
    await s.services.usageWriter.enqueue(first);
    await s.services.usageWriter.enqueue(second);
    const r = await s.api('GET', `/api/logs?key_id=${u.key.id}`);
    expect(r.status).toBe(200);
    const byId = (id: string) => r.body.data.find((l: { request_id: string }) => l.request_id === id);
    const newest = byId(first.request_id);
    const older = byId(second.request_id);
    expect(newest).toMatchObject({
      protocol: 'anthropic',
      cache_write_tokens: 300,
      reasoning_tokens: 7,
      cached_tokens: 500,
      prompt_tokens: 1000,
      attempts,
    });
    expect(older).toMatchObject({
      protocol: 'openai',
      cache_write_tokens: 0,
      reasoning_tokens: 0,
      attempts: [],
    });

    const csv = await s.api('GET', `/api/logs?format=csv&key_id=${u.key.id}`);
    const header = String(csv.body).split(/\r?\n/)[0];
    expect(header).toContain('protocol,cache_write_tokens,reasoning_tokens,ephemeral_id');
    // Columns added later come last, so the earlier ones keep their places.
    expect(header).toMatch(/,ephemeral_id,cache_write_1h_tokens,web_searches,service_tier$/);
  });

  it('a row with a lone surrogate, or a pair cut at a length limit, is stored and holds up no other', async () => {
    const u = await userWithKey(s);
    const odd = row(u, { model: 'gpt-\ud800zz', key_name: `${'k'.repeat(255)}😀x`, service_tier: '\udc00' });
    const next = row(u, {});
    await s.services.usageWriter.enqueue(odd);
    await s.services.usageWriter.enqueue(next);
    const r = await s.api('GET', `/api/logs?key_id=${u.key.id}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const byId = (id: string) => r.body.data.find((l: { request_id: string }) => l.request_id === id);
    expect(byId(odd.request_id)).toMatchObject({
      model: 'gpt-\ufffdzz',
      key_name: `${'k'.repeat(255)}\ufffd`,
      service_tier: '\ufffd',
    });
    expect(byId(next.request_id)).toBeTruthy();
  });

  it('PUT/GET /api/prices accept and return cache_write (null = the input price)', async () => {
    const set = await s.api('PUT', '/api/prices/cw-model', {
      input: 3,
      output: 15,
      cached_input: 0.3,
      cache_write: 3.75,
    });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body).toMatchObject({ input: 3, output: 15, cached_input: 0.3, cache_write: 3.75 });
    const plain = await s.api('PUT', '/api/prices/cw-plain', { input: 1, output: 2 });
    expect(plain.body).toMatchObject({ cached_input: null, cache_write: null });
    const list = await s.api('GET', '/api/prices');
    const byModel = Object.fromEntries(list.body.data.map((p: { model: string }) => [p.model, p]));
    expect(byModel['cw-model']).toMatchObject({ cache_write: 3.75 });
    expect(byModel['cw-plain']).toMatchObject({ cache_write: null });
    expect(s.services.catalog.price('cw-model')).toMatchObject({ cacheWriteNanoPerM: 3_750_000_000 });
    const bad = await s.api('PUT', '/api/prices/cw-bad', { input: 1, output: 1, cache_write: -1 });
    expect(bad.status).toBe(422);
  });
});
