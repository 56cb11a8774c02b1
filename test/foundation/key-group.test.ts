// A key's group decides its models and prices. Only an admin can grant a key a group; a
// group the owner pinned on their own key can only ever be the owner's current group, so
// when an admin moves the owner, the owner's keys move too (issue 11, defect 2).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { addChannel, client, nanoOf, setGroup, setPrice, uniq } from '../relay/relay-helpers.js';
import { createUser, expectApiError, expectRelayError, relay, session } from './util.js';

describe('key groups follow their owner unless an admin granted them', () => {
  let s: TestServer;
  let vip: string;
  const chat = (secret: string, model: string) =>
    relay(s, secret, {
      method: 'POST',
      path: '/v1/chat/completions',
      body: { model, messages: [{ role: 'user', content: 'hi' }] },
    });

  beforeAll(async () => {
    s = await startTestServer();
    vip = uniq('vip');
    await addChannel(s, { type: 'mock', models: ['vip-only'], groups: [vip] });
    await addChannel(s, { type: 'mock', models: ['everyone'] });
    await setPrice(s, 'vip-only', { input: 1, output: 1 });
    await setPrice(s, 'everyone', { input: 1, output: 1 });
    await setGroup(s, vip, 3);
  });
  afterAll(() => s?.close());

  it('a key its owner pinned to their own group loses that group when an admin moves the owner', async () => {
    const u = await createUser(s, { group: vip, balance: 10 });
    const me = await session(s, u.username, u.password);
    const made = await me.call('POST', '/api/keys', { name: 'mine', group: vip });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    expect(made.body.group).toBe(vip);
    expect((await chat(made.body.key, 'vip-only')).status).toBe(200);

    // Touch the verifier cache first, then move the owner.
    const moved = await s.api('PATCH', `/api/users/${u.user.id}`, { group: 'default' });
    expect(moved.status).toBe(200);
    expectRelayError(await chat(made.body.key, 'vip-only'), 404, 'model_not_found');
    const ok = await chat(made.body.key, 'everyone');
    expect(ok.status).toBe(200);
    // Billed at the owner's new group (multiplier 1), not vip's 3×.
    await s.services.flush();
    const logs = await s.api('GET', `/api/logs?key_id=${made.body.id}&model=everyone`);
    const row = logs.body.data[0];
    const again = await s.api('GET', `/api/keys/${made.body.id}`);
    expect(again.body.group).toBe(null);
    // 1 USD per 1M tokens at 1× is 1000 nano per token; vip's 3× would be 3000.
    expect(nanoOf(row.cost)).toBe(BigInt(row.prompt_tokens + row.completion_tokens) * 1000n);
    const models = (await client(s, made.body.key).models.list()).data.map((m) => m.id);
    expect(models).not.toContain('vip-only');
  });

  it('a group an admin granted stays with the key; its owner cannot change or clear it', async () => {
    const u = await createUser(s, { balance: 10 });
    const granted = await s.api('POST', '/api/keys', { name: 'granted', user_id: u.user.id, group: vip });
    expect(granted.status).toBe(201);
    expect((await chat(granted.body.key, 'vip-only')).status).toBe(200);
    await s.api('PATCH', `/api/users/${u.user.id}`, { group: uniq('g') });
    expect((await chat(granted.body.key, 'vip-only')).status).toBe(200);
    expect((await s.api('GET', `/api/keys/${granted.body.id}`)).body.group).toBe(vip);

    const me = await session(s, u.username, u.password);
    expectApiError(await me.call('PATCH', `/api/keys/${granted.body.id}`, { group: null }), 403, 'forbidden');
    expect((await chat(granted.body.key, 'vip-only')).status).toBe(200);
  });
});
