// OpenAI keeps a stored response (`store`, the SDK's default) for the account that made it. With
// two channels of one model on two accounts, a follow-up naming a response
// (`previous_response_id`) reaches the other account about half the time, which answers 400
// previous_response_not_found. That answer passes the follow-up on to the next channel, with no
// fault counted against the first; when no channel holds the response, the client gets the
// upstream's own 400.
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelTo, gatewayWithChannels } from '../helpers/gateway-channels.js';
import { type TestServer, userWithKey } from '../helpers/server.js';
import { type MockProvider, startMockProvider } from '../mock-provider/server.js';
import { addChannel, allLogs, client, setPrice } from '../relay/relay-helpers.js';

const UP_KEY = 'sk-stored-upstream-0001';

describe('stored responses across channels of one model', () => {
  let s: TestServer;
  let first: MockProvider;
  let second: MockProvider;
  gatewayWithChannels(
    { backend: 'sqlite' },
    { apiKey: UP_KEY, channels: [{ type: 'openai', models: ['gpt-stored'] }], prices: {} },
    (g) => {
      ({ s, mock: first } = g);
    },
  );
  beforeAll(async () => {
    second = await startMockProvider({ apiKey: UP_KEY });
    await addChannel(s, channelTo(second, UP_KEY, { type: 'openai', models: ['gpt-stored'] }));
    await setPrice(s, 'gpt-stored', { input: 1, output: 2 });
  });
  afterAll(async () => second?.close());

  /** The mock (the account) that answered each response made here. */
  const holderOf = new Map<string, MockProvider>();

  async function create(c: OpenAI, body: OpenAI.Responses.ResponseCreateParamsNonStreaming) {
    const before = [first.requests.length, second.requests.length];
    const r = await c.responses.create(body);
    holderOf.set(r.id, first.requests.length > before[0]! ? first : second);
    return r;
  }

  it('every follow-up reaches the account that holds its response; no channel is faulted', async () => {
    const { secret, key } = await userWithKey(s);
    const c = client(s, secret);
    const made = await create(c, { model: 'gpt-stored', input: 'Remember the word mole.' });
    const account = holderOf.get(made.id)!;
    const other = account === first ? second : first;
    const otherBefore = other.requests.length;
    for (let i = 0; i < 8; i++) {
      const next = await c.responses.create({
        model: 'gpt-stored',
        input: 'Which word?',
        previous_response_id: made.id,
      });
      expect(next.previous_response_id).toBe(made.id);
    }
    // Each follow-up tried the other account at most once first.
    expect(other.requests.length - otherBefore).toBeLessThanOrEqual(8);
    const rows = (await allLogs(s, { key_id: key.id })).slice(0, 8);
    expect(rows.every((r) => r.status === 200)).toBe(true);
    const tried = rows.map((r) => (r.attempts as Array<{ status: number }>).map((a) => a.status));
    for (const t of tried) expect([[200], [400, 200]]).toContainEqual(t);
    // Both channels still serve new conversations: the 400s counted as no failure.
    const health = (await s.api('GET', '/api/channels')).body.data as Array<{ status: string }>;
    expect(health.every((ch) => ch.status === 'active')).toBe(true);
  });

  it('a response no account holds: the upstream’s 400 reaches the client after every channel was asked', async () => {
    const { secret, key } = await userWithKey(s);
    const c = client(s, secret);
    const unstored = await create(c, { model: 'gpt-stored', input: 'x', store: false });
    const err = (await c.responses
      .create({ model: 'gpt-stored', input: 'y', previous_response_id: unstored.id })
      .then(
        () => null,
        (e: unknown) => e,
      )) as { status: number; code: string; param: string } | null;
    expect(err).toMatchObject({
      status: 400,
      code: 'previous_response_not_found',
      param: 'previous_response_id',
    });
    const row = (await allLogs(s, { key_id: key.id }))[0]!;
    expect((row.attempts as Array<{ status: number }>).map((a) => a.status)).toEqual([400, 400]);
    expect(row.cost).toBe(0);
  });
});
