// Management reads see spend at once, even with a long batch interval: they flush first.
import { describe, expect, it } from 'vitest';
import { backends, login, userWithKey, type TestServer } from '../helpers/server.js';
import { offlineSuite } from '../helpers/relay-suite.js';

describe.each(backends())('read-your-writes on balances (%s)', (backend) => {
  let s: TestServer;
  offlineSuite(
    { backend, env: { MOLE_FLUSH_INTERVAL_MS: '60000' } },
    { 'mole-mini': { input: 3, output: 15 } },
    (started) => {
      s = started;
    },
  );

  it('user balance from GET /api/users/:id, GET /api/users and /api/auth/session includes spend not yet batched', async () => {
    const { user, secret, username, password } = await userWithKey(s, { balance: 10 });
    const r = await fetch(s.url + '/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mole-mini', messages: [{ role: 'user', content: 'dig' }] }),
    });
    expect(r.status).toBe(200);
    const one = await s.api('GET', `/api/users/${user.id}`);
    expect(one.body.balance).toBeLessThan(10);
    const logs = await s.api('GET', `/api/logs?user_id=${user.id}&totals=1`);
    expect(Math.round((10 - one.body.balance) * 1e9)).toBe(Math.round(logs.body.totals.cost * 1e9));
    const list = await s.api('GET', `/api/users?q=${username}`);
    expect(list.body.data[0].balance).toBe(one.body.balance);
    const session = await login(s, username, password);
    const me = await s.api('GET', '/api/auth/session', undefined, { cookie: session.cookie });
    expect(me.body.user.balance).toBe(one.body.balance);
  });
});
