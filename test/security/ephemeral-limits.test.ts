// Minting ephemeral keys is limited (contract §8): each `POST /v1/keys/ephemeral` is a request
// of its parent and counts against the parent's rpm (429 rate_limit_exceeded, with the usual
// rate-limit headers), and one parent may hold at most MOLE_MAX_EPHEMERAL_KEYS_PER_KEY live
// ephemeral keys (409 key_limit_reached; expired and revoked ones do not count).
import { describe, expect, it } from 'vitest';
import { backends } from '../helpers/server.js';
import { suiteServer } from '../helpers/suite.js';
import { createKey, createUser, expectRelayError, relay } from '../foundation/util.js';

const CAP = 3;

describe.each(backends())('ephemeral key minting limits [%s]', (backend) => {
  const s = suiteServer({ backend, env: { MOLE_MAX_EPHEMERAL_KEYS_PER_KEY: String(CAP) } });

  const mint = (secret: string, body: Record<string, unknown> = {}) =>
    relay(s, secret, { method: 'POST', path: '/v1/keys/ephemeral', body });

  it("each mint counts against the parent's rpm", async () => {
    const { user } = await createUser(s);
    const parent = await createKey(s, user.id, { rpm: 2 });
    const first = await mint(parent.secret);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.headers.get('x-ratelimit-limit-requests')).toBe('2');
    expect(first.headers.get('x-ratelimit-remaining-requests')).toBe('1');
    expect((await mint(parent.secret)).status).toBe(201);
    const refused = await mint(parent.secret);
    expectRelayError(refused, 429, 'rate_limit_exceeded');
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.body.error.message).toContain('this API key');
    // Another key of the same owner has its own window.
    const other = await createKey(s, user.id, { rpm: 2 });
    expect((await mint(other.secret)).status).toBe(201);
    // A minute later the parent may mint again.
    s.clock.advance(61_000);
    expect((await mint(parent.secret)).status).toBe(201);
  });

  it('a parent holds at most the configured number of live ephemeral keys', async () => {
    const { user } = await createUser(s);
    const parent = await createKey(s, user.id);
    const minted: { key: string }[] = [];
    for (let i = 0; i < CAP; i++) {
      const r = await mint(parent.secret, { ttl_seconds: 60 + i * 600 });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      minted.push(r.body);
    }
    const refused = await mint(parent.secret);
    expectRelayError(refused, 409, 'key_limit_reached');
    expect(refused.body.error.message).toContain(`${CAP} live ephemeral keys`);
    // The cap is per parent: a sibling key mints freely.
    const sibling = await createKey(s, user.id);
    expect((await mint(sibling.secret)).status).toBe(201);
    // A revoked child frees its place.
    expect((await relay(s, minted[2]!.key, { method: 'POST', path: '/v1/key/revoke' })).status).toBe(200);
    expect((await mint(parent.secret)).status).toBe(201);
    expectRelayError(await mint(parent.secret), 409, 'key_limit_reached');
    // So does an expired one (the first lives 60 s).
    s.clock.advance(61_000);
    expect((await mint(parent.secret)).status).toBe(201);
    expectRelayError(await mint(parent.secret), 409, 'key_limit_reached');
  });
});
