// GET /api/usage walked through two instances on one PostgreSQL database: a snapshot lives in
// the instance that made it (usage/pages.ts), so a page asked of the other one is grouped at
// its offset and the walk goes on by offset; pages asked of the instance that holds it are
// its slices. Either way every key is listed once.
import { describe, expect, it } from 'vitest';
import type { TestServer } from '../helpers/server.js';
import { clusterReady, pairForSuite } from './helpers.js';

const DAY_MS = 86_400_000;
const KEYS = 7;

describe.skipIf(!clusterReady('usage pages across instances', 'PostgreSQL'))(
  'usage pages across instances',
  () => {
    const { a, b } = pairForSuite({});

    it('a walk that hops between instances lists every key once; one that stays gets slices', async () => {
      const user = await a.api('POST', '/api/users', { username: 'walker', password: 'password-123' });
      const d = Math.floor(Date.now() / DAY_MS) * DAY_MS - DAY_MS;
      const db = a.services.storage.db;
      for (let i = 0; i < KEYS; i++) {
        const k = await a.api('POST', '/api/keys', { name: `w${i}`, user_id: user.body.id });
        await db
          .insertInto('usage_daily')
          .values({
            day: new Date(d).toISOString().slice(0, 10),
            user_id: user.body.id,
            key_id: k.body.id,
            model: 'm',
            requests: 1,
            prompt_tokens: 1,
            cached_tokens: 0,
            completion_tokens: 1,
            cost_nano: (KEYS - i) * 1000,
          })
          .execute();
      }
      const range = `from=${new Date(d).toISOString()}&to=${new Date(d + DAY_MS).toISOString()}`;
      const walk = async (servers: TestServer[]) => {
        const names: string[] = [];
        const cursors: string[] = [];
        let cursor: string | null = null;
        let i = 0;
        do {
          const s = servers[i++ % servers.length]!;
          const r: {
            status: number;
            body: { data: Array<{ key_name: string }>; next_cursor: string | null };
          } = await s.api(
            'GET',
            `/api/usage?group_by=key&user_id=${user.body.id}&${range}&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
          );
          expect(r.status).toBe(200);
          names.push(...r.body.data.map((row) => row.key_name));
          cursor = r.body.next_cursor;
          if (cursor) cursors.push(cursor);
        } while (cursor);
        return { names, cursors };
      };
      const all = Array.from({ length: KEYS }, (_, i) => `w${i}`);
      // a, b, a, b: a's snapshot is not in b, so b pages by offset, and so does the rest.
      const hopping = await walk([a, b]);
      expect(hopping.names).toEqual(all);
      expect(hopping.cursors).toEqual([expect.stringMatching(/^2\.[A-Za-z0-9_-]{16}$/), '4', '6']);
      // b alone: its own snapshot answers every later page.
      const staying = await walk([b]);
      expect(staying.names).toEqual(all);
      const snapshot = staying.cursors[0]!.split('.')[1];
      expect(staying.cursors).toEqual([`2.${snapshot}`, `4.${snapshot}`, `6.${snapshot}`]);
    });
  },
);
