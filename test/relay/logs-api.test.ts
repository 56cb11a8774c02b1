// The call-log and usage APIs over real relay traffic, on SQLite and PostgreSQL: the log
// object's fields, filters (key, user, model, status, time), cursor pagination, totals, CSV
// export (with formula-injection guard); usage grouped by day / key / model (rollup and raw
// paths agree), CSV; a signed-in user sees only their own rows.
import { beforeAll, describe, expect, it } from 'vitest';
import { backends, login, userWithKey, type TestServer, walkPages } from '../helpers/server.js';
import { relaySuite } from '../helpers/relay-suite.js';
import { allLogs, client, nanoOf, sdkError, sumCost, type LogRow } from './relay-helpers.js';

const LOG_FIELDS = [
  'id',
  'request_id',
  'created_at',
  'user_id',
  'key_id',
  'key_name',
  'model',
  'upstream_model',
  'channel_id',
  'endpoint',
  'stream',
  'status',
  'error_code',
  'prompt_tokens',
  'cached_tokens',
  'completion_tokens',
  'cost',
  'latency_ms',
  'ttft_ms',
  'ip',
  'estimated',
];

/** Minimal RFC 4180 parser (quoted cells, doubled quotes, CRLF). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += ch;
  }
  if (cell || row.length) rows.push([...row, cell]);
  return rows;
}

describe.each(backends())('logs and usage API (%s)', (backend) => {
  let s: TestServer;
  let u1: Awaited<ReturnType<typeof userWithKey>>;
  let u1b: { id: number; secret: string; name: string };
  let u2: Awaited<ReturnType<typeof userWithKey>>;
  let boundary: string;
  let all: LogRow[];

  relaySuite(
    { backend },
    { prices: { 'lg-a': { input: 1, output: 3 }, 'lg-b': { input: 0.5, output: 1.5 } } },
    (started) => {
      s = started.s;
    },
  );
  beforeAll(async () => {
    u1 = await userWithKey(s, { balance: 10 });
    const kb = await s.api('POST', '/api/keys', { name: '=HYPERLINK("http://evil")', user_id: u1.user.id });
    u1b = { id: kb.body.id, secret: kb.body.key, name: kb.body.name };
    u2 = await userWithKey(s, { balance: 10 });
    const ask = (secret: string, model: string, i: number, stream = false) =>
      stream
        ? (async () => {
            for await (const _ of await client(s, secret).chat.completions.create({
              model,
              messages: [{ role: 'user', content: `q${i}` }],
              max_tokens: 2 + i,
              stream: true,
            })) {
              /* drain */
            }
          })()
        : client(s, secret).chat.completions.create({
            model,
            messages: [{ role: 'user', content: `q${i}` }],
            max_tokens: 2 + i,
          });
    // first batch
    for (let i = 0; i < 5; i++) await ask(u1.secret, 'lg-a', i, i % 2 === 1);
    for (let i = 0; i < 2; i++) await ask(u1.secret, 'lg-b', i);
    // The server's clock moves on, so no sleep is needed to tell the batches apart.
    s.clock.advance(1_000);
    boundary = new Date(s.clock.now()).toISOString();
    s.clock.advance(1_000);
    // second batch
    for (let i = 0; i < 3; i++) await ask(u1b.secret, 'lg-a', i);
    await sdkError(
      client(s, u1b.secret).chat.completions.create({
        model: 'nope',
        messages: [{ role: 'user', content: 'x' }],
      }),
    );
    for (let i = 0; i < 4; i++) await ask(u2.secret, 'lg-b', i, true);
    all = await allLogs(s);
    expect(all).toHaveLength(15);
  });

  it('every log row has the contract fields', () => {
    for (const r of all) {
      expect(Object.keys(r).sort()).toEqual(expect.arrayContaining(LOG_FIELDS));
      expect(r.request_id).toMatch(/\S/);
      expect(Number.isNaN(Date.parse(r.created_at))).toBe(false);
    }
    const ids = all.map((r) => r.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
  });

  it('filters: key_id, user_id, model, status (code, ok, error), from/to', async () => {
    const byKey = await allLogs(s, { key_id: u1.key.id });
    expect(byKey).toHaveLength(7);
    expect(byKey.every((r) => r.key_id === u1.key.id)).toBe(true);
    expect(await allLogs(s, { key_id: u1b.id })).toHaveLength(4);
    expect(await allLogs(s, { user_id: u1.user.id })).toHaveLength(11);
    expect(await allLogs(s, { user_id: u2.user.id })).toHaveLength(4);
    expect(await allLogs(s, { model: 'lg-a' })).toHaveLength(8);
    expect(await allLogs(s, { model: 'lg-b', key_id: u1.key.id })).toHaveLength(2);
    expect(await allLogs(s, { status: 200 })).toHaveLength(14);
    expect(await allLogs(s, { status: 'ok' })).toHaveLength(14);
    const errors = await allLogs(s, { status: 'error' });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({
      status: 404,
      error_code: 'model_not_found',
      model: 'nope',
      key_id: u1b.id,
    });
    expect(await allLogs(s, { status: 404 })).toHaveLength(1);
    const after = await allLogs(s, { from: boundary });
    expect(after).toHaveLength(8);
    expect(after.every((r) => r.created_at >= boundary)).toBe(true);
    const before = await allLogs(s, { to: boundary });
    expect(before).toHaveLength(7);
    expect(await allLogs(s, { from: boundary, key_id: u2.key.id, model: 'lg-b' })).toHaveLength(4);
    expect(await allLogs(s, { from: new Date(Date.now() + 3_600_000).toISOString() })).toHaveLength(0);
    const bad = await s.api('GET', '/api/logs?from=yesterday-ish');
    expect(bad.status).toBe(422);
    expect((await s.api('GET', '/api/logs?to=2026-11-31T00:00:00Z')).status).toBe(422);
    expect((await s.api('GET', '/api/logs?to=2028-02-29T00:00:00Z')).status).toBe(200);
    // A date alone as `to` means through that day (UTC); a time, up to that time.
    const day = all[0]!.created_at.slice(0, 10);
    const sameDay = all.filter((r) => r.created_at.startsWith(day));
    expect(await allLogs(s, { from: day, to: day })).toHaveLength(sameDay.length);
    expect(await allLogs(s, { from: day, to: `${day}T00:00:00Z` })).toHaveLength(0);
    const usage = await s.api('GET', `/api/usage?group_by=day&from=${day}&to=${day}`);
    expect(usage.body.data).toEqual([expect.objectContaining({ day, requests: sameDay.length })]);
  });

  it('cursor pagination walks every row once, newest first', async () => {
    const { rows: seen, pages } = await walkPages<LogRow>(s, '/api/logs?limit=4');
    expect(pages).toBe(4);
    expect(seen.map((r) => r.id)).toEqual(all.map((r) => r.id));
    expect(new Set(seen.map((r) => r.id)).size).toBe(15);
    // with a filter too
    const first = await s.api('GET', `/api/logs?key_id=${u1.key.id}&limit=5`);
    const second = await s.api(
      'GET',
      `/api/logs?key_id=${u1.key.id}&limit=5&cursor=${first.body.next_cursor}`,
    );
    expect(second.body.next_cursor).toBeNull();
    expect([...first.body.data, ...second.body.data].map((r: LogRow) => r.id)).toEqual(
      (await allLogs(s, { key_id: u1.key.id })).map((r) => r.id),
    );
  });

  it('totals=1 sums the filtered rows exactly', async () => {
    // Whole-day ranges (or none) and no status are answered from the daily rollup; the others
    // scan the logs. Both must agree with the rows themselves.
    const day = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
    const wholeDays = `from=${new Date(day).toISOString()}&to=${new Date(day + 86_400_000).toISOString()}`;
    const partialDay = `from=${new Date(day - 1000).toISOString()}&to=${new Date(Date.now() + 60_000).toISOString()}`;
    for (const q of [
      '',
      `key_id=${u1.key.id}`,
      'model=lg-b',
      `user_id=${u1.user.id}&status=ok`,
      wholeDays,
      partialDay,
      `key_id=${u1.key.id}&${wholeDays}`,
    ]) {
      const r = await s.api('GET', `/api/logs?totals=1&limit=1&${q}`);
      expect(r.status).toBe(200);
      const qs = Object.fromEntries(new URLSearchParams(q));
      const rows = await allLogs(s, qs);
      expect(r.body.totals, q).toMatchObject({
        requests: rows.length,
        prompt_tokens: rows.reduce((a, x) => a + x.prompt_tokens, 0),
        cached_tokens: rows.reduce((a, x) => a + x.cached_tokens, 0),
        completion_tokens: rows.reduce((a, x) => a + x.completion_tokens, 0),
      });
      expect(nanoOf(r.body.totals.cost), q).toBe(sumCost(rows));
    }
  });

  it('CSV export of logs: header, one line per row, filters applied, formula cells neutralised', async () => {
    const r = await s.api('GET', `/api/logs?format=csv&user_id=${u1.user.id}`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(r.headers.get('content-disposition')).toMatch(/attachment/);
    const rows = parseCsv(r.body as string);
    const [header, ...lines] = rows;
    expect(header).toEqual(expect.arrayContaining(LOG_FIELDS));
    expect(lines).toHaveLength(11);
    const col = (name: string) => header!.indexOf(name);
    const json = await allLogs(s, { user_id: u1.user.id });
    for (const [i, line] of lines.entries()) {
      expect(line).toHaveLength(header!.length);
      expect(Number(line[col('id')])).toBe(json[i]!.id);
      expect(line[col('request_id')]).toBe(json[i]!.request_id);
      expect(nanoOf(Number(line[col('cost')]))).toBe(nanoOf(json[i]!.cost));
      expect(Number(line[col('completion_tokens')])).toBe(json[i]!.completion_tokens);
    }
    const evil = lines.filter((l) => Number(l[col('key_id')]) === u1b.id);
    expect(evil).toHaveLength(4);
    for (const l of evil) {
      expect(l[col('key_name')]).toBe(`'${u1b.name}`);
    }
  });

  it('usage grouped by day, key and model matches the logs; whole-day (rollup) and partial-day ranges agree', async () => {
    // (days are UTC; a run straddling midnight yields two)
    const days = [...new Set(all.map((r) => r.created_at.slice(0, 10)))].sort();
    const day = await s.api('GET', '/api/usage?group_by=day');
    expect(day.status).toBe(200);
    expect(day.body.data.map((d: { day: string }) => d.day)).toEqual(days);
    for (const d of day.body.data) {
      const mine = all.filter((r) => r.created_at.startsWith(d.day));
      expect(d).toMatchObject({
        requests: mine.length,
        prompt_tokens: mine.reduce((a, r) => a + r.prompt_tokens, 0),
        completion_tokens: mine.reduce((a, r) => a + r.completion_tokens, 0),
      });
      expect(nanoOf(d.cost)).toBe(sumCost(mine));
    }

    const byKey = (await s.api('GET', '/api/usage?group_by=key')).body.data as Array<{
      key_id: number;
      requests: number;
      cost: number;
    }>;
    expect(byKey.map((k) => k.key_id).sort()).toEqual([u1.key.id, u1b.id, u2.key.id].sort());
    for (const k of byKey) {
      const mine = all.filter((r) => r.key_id === k.key_id);
      expect(k.requests).toBe(mine.length);
      expect(nanoOf(k.cost)).toBe(sumCost(mine));
    }
    const byModel = (await s.api('GET', `/api/usage?group_by=model&user_id=${u1.user.id}`)).body
      .data as Array<{ model: string; requests: number; cost: number }>;
    expect(byModel.map((m) => m.model).sort()).toEqual(['lg-a', 'lg-b', 'nope']);
    for (const m of byModel) {
      const mine = all.filter((r) => r.model === m.model && r.user_id === u1.user.id);
      expect(m.requests).toBe(mine.length);
      expect(nanoOf(m.cost)).toBe(sumCost(mine));
    }

    const start = Date.parse(days[0] + 'T00:00:00.000Z');
    const end = Date.parse(days[days.length - 1] + 'T00:00:00.000Z') + 86_400_000;
    const whole = (
      await s.api(
        'GET',
        `/api/usage?group_by=key&from=${new Date(start).toISOString()}&to=${new Date(end).toISOString()}`,
      )
    ).body.data;
    const partial = (
      await s.api(
        'GET',
        `/api/usage?group_by=key&from=${new Date(start + 1).toISOString()}&to=${new Date(Date.now() + 60_000).toISOString()}`,
      )
    ).body.data;
    const norm = (d: Array<{ key_id: number }>) => [...d].sort((a, b) => a.key_id - b.key_id);
    expect(norm(partial)).toEqual(norm(whole));
    expect(norm(whole)).toEqual(norm(byKey));
    // partial range after the boundary: only the second batch
    const late = (await s.api('GET', `/api/usage?group_by=model&from=${boundary}`)).body.data as Array<{
      model: string;
      requests: number;
    }>;
    expect(late.reduce((a, m) => a + m.requests, 0)).toBe(8);
  });

  it('usage CSV export by key and by model', async () => {
    const r = await s.api('GET', '/api/usage?group_by=key&format=csv');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/csv/);
    const [header, ...lines] = parseCsv(r.body as string);
    expect(header).toEqual([
      'key_id',
      'key_name',
      'requests',
      'prompt_tokens',
      'cached_tokens',
      'completion_tokens',
      'cost',
    ]);
    expect(lines).toHaveLength(3);
    const total = lines.reduce((a, l) => a + nanoOf(Number(l[6])), 0n);
    expect(total).toBe(sumCost(all));
    expect(lines.find((l) => Number(l[0]) === u1b.id)![1]).toBe(`'${u1b.name}`);
    const m = await s.api('GET', '/api/usage?group_by=model&format=csv');
    const [mh, ...ml] = parseCsv(m.body as string);
    expect(mh![0]).toBe('model');
    expect(ml.reduce((a, l) => a + Number(l[1]), 0)).toBe(15);
    const d = await s.api('GET', '/api/usage?group_by=day&format=csv');
    const [dh, ...dl] = parseCsv(d.body as string);
    expect(dh![0]).toBe('day');
    expect(dl.reduce((a, l) => a + Number(l[1]), 0)).toBe(15);
  });

  it('a signed-in user sees only their own logs and usage', async () => {
    const sess = await login(s, u2.username, u2.password);
    expect(sess.status).toBe(200);
    const h = { cookie: sess.cookie };
    const own = await s.api('GET', '/api/logs?limit=500', undefined, h);
    expect(own.status).toBe(200);
    expect(own.body.data).toHaveLength(4);
    expect(own.body.data.every((r: LogRow) => r.user_id === u2.user.id)).toBe(true);
    const sneaky = await s.api('GET', `/api/logs?limit=500&user_id=${u1.user.id}`, undefined, h);
    expect(sneaky.body.data.every((r: LogRow) => r.user_id === u2.user.id)).toBe(true);
    const other = await s.api('GET', `/api/logs?limit=500&key_id=${u1.key.id}`, undefined, h);
    expect(other.body.data).toHaveLength(0);
    const usage = await s.api('GET', '/api/usage?group_by=key', undefined, h);
    expect(usage.body.data.map((k: { key_id: number }) => k.key_id)).toEqual([u2.key.id]);
    const csv = await s.api('GET', '/api/logs?format=csv', undefined, h);
    expect(parseCsv(csv.body as string)).toHaveLength(5);
  });
});
