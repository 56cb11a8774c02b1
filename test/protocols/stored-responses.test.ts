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

  it('a follow-up is held for the context it continues, not only for its own body', async () => {
    const { secret, user, key } = await userWithKey(s);
    const c = client(s, secret);
    const long = `Remember these words: ${'mole tunnel earth '.repeat(600)}`;
    const made = await create(c, { model: 'gpt-stored', input: long, max_output_tokens: 16 });
    const context = made.usage!.input_tokens + made.usage!.output_tokens;
    expect(context).toBeGreaterThan(1800);
    // A key with room for the follow-up's body and output (~42,000 nano at 1 and 2 USD per 1M
    // tokens) but not for the ~1.8M nano of context the upstream bills with it: refused, not
    // served and charged only what the quota had left.
    const tight = await s.api('POST', '/api/keys', { name: 'tight', user_id: user.id, quota: 0.0001 });
    const followUp = {
      model: 'gpt-stored',
      input: 'Which word?',
      max_output_tokens: 16,
      previous_response_id: made.id,
    };
    const refused = (await client(s, tight.body.key)
      .responses.create(followUp)
      .catch((e: unknown) => e)) as { status: number; code: string };
    expect(refused).toMatchObject({ status: 429, code: 'insufficient_quota' });
    // With room, it is served and charged in full: the context as input.
    const next = await c.responses.create(followUp);
    expect(next.usage!.input_tokens).toBeGreaterThan(context);
    const row = (await allLogs(s, { key_id: key.id }))[0]!;
    expect(row.prompt_tokens).toBe(next.usage!.input_tokens);
    // A response this gateway never relayed: its context is unknown, held as 500,000 tokens
    // (0.5 USD here), so a key with 0.1 USD left is refused before any upstream is asked.
    const small = await s.api('POST', '/api/keys', { name: 'small', user_id: user.id, quota: 0.1 });
    const before = first.requests.length + second.requests.length;
    const unknown = (await client(s, small.body.key)
      .responses.create({ ...followUp, previous_response_id: 'resp_made_elsewhere' })
      .catch((e: unknown) => e)) as { status: number; code: string };
    expect(unknown).toMatchObject({ status: 429, code: 'insufficient_quota' });
    expect(first.requests.length + second.requests.length).toBe(before);
    // A streamed response is remembered as well: that key may continue one (its context known).
    const streamed = await c.responses
      .stream({ model: 'gpt-stored', input: long, max_output_tokens: 16 })
      .finalResponse();
    const continued = await client(s, small.body.key).responses.create({
      ...followUp,
      previous_response_id: streamed.id,
    });
    expect(continued.usage!.input_tokens).toBeGreaterThan(context);
    // A follow-up whose stream is cut (no usage comes) is estimated with the context it named.
    for (const m of [first, second]) m.setScenario('gpt-stored', { cutAfterChunks: 2 });
    try {
      const cut = c.responses.stream({ ...followUp, previous_response_id: streamed.id });
      await cut.finalResponse().catch(() => null);
    } finally {
      for (const m of [first, second]) m.clearScenarios();
    }
    const estimated = (await allLogs(s, { key_id: key.id }))[0]!;
    expect(estimated).toMatchObject({ estimated: true });
    expect(estimated.prompt_tokens).toBeGreaterThan(context);
  });

  it('another account cannot continue a response it did not make: 400, nothing sent upstream', async () => {
    const alice = await userWithKey(s);
    const made = await create(client(s, alice.secret), {
      model: 'gpt-stored',
      input: 'My secret plan is X.',
    });
    const bob = await userWithKey(s);
    const sent = first.requests.length + second.requests.length;
    const err = (await client(s, bob.secret)
      .responses.create({ model: 'gpt-stored', input: 'What did I say?', previous_response_id: made.id })
      .catch((e: unknown) => e)) as { status: number; code: string; param: string; message: string };
    expect(err).toMatchObject({
      status: 400,
      code: 'previous_response_not_found',
      param: 'previous_response_id',
    });
    expect(err.message).toContain(`Previous response with id '${made.id}' not found.`);
    expect(first.requests.length + second.requests.length).toBe(sent);
    expect((await allLogs(s, { key_id: bob.key.id }))[0]).toMatchObject({ status: 400, cost: 0 });
    // Another key of the same account may: the response is the account's.
    const other = await s.api('POST', '/api/keys', { name: 'second', user_id: alice.user.id });
    const next = await client(s, other.body.key).responses.create({
      model: 'gpt-stored',
      input: 'What did I say?',
      previous_response_id: made.id,
    });
    expect(next.previous_response_id).toBe(made.id);
  });
});
