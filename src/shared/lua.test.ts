// packCalls and UNPACK (lua.ts): a composed script's steps read exactly the keys and arguments
// they were given, whatever characters those hold; on the Redis server of MOLE_TEST_REDIS_URL.
import { afterAll, describe, expect, it } from 'vitest';
import { LUA_UNPACK, type LuaCall, luaRunner, packCalls } from './lua.js';
import type { RedisClient } from './redis.js';
import { onRedis, testRedis } from './redis.spec.js';

describe('packCalls', () => {
  it("declares every step's keys in order and packs the head, key counts and arguments as JSON", () => {
    const c = packCalls(
      ['7'],
      [
        { keys: ['a', 'b'], args: ['1', 'x'] },
        { keys: [], args: [] },
        { keys: ['c'], args: [''] },
      ],
    );
    expect(c.keys).toEqual(['a', 'b', 'c']);
    expect(c.args).toHaveLength(1);
    expect(JSON.parse(c.args[0])).toEqual([['7'], [2, 0, 1], ['1', 'x'], [], ['']]);
  });
});

describe('luaRunner', () => {
  // Only a SCRIPT FLUSH makes a real Redis forget a script, and the test server is shared: the
  // fallback is driven by a stand-in that answers NOSCRIPT as Redis does.
  function standIn(evalshaError: Error | null) {
    const sent: string[] = [];
    const redis = {
      sendCommand: async ([name, _scriptOrSha, ...a]: string[]) => {
        sent.push(`${name!.toLowerCase()} ${a.join(' ')}`);
        if (name === 'EVAL') return 'by text';
        if (evalshaError) throw evalshaError;
        return 'by sha';
      },
    };
    return { redis: redis as unknown as RedisClient, sent };
  }

  it('sends the text first, then the SHA', async () => {
    const { redis, sent } = standIn(null);
    const run = luaRunner(redis, 'return 1');
    expect(await run(['k'], ['a'])).toBe('by text');
    expect(await run(['k'], ['b'])).toBe('by sha');
    expect(sent).toEqual(['eval 1 k a', 'evalsha 1 k b']);
  });

  it('sends the text again after a NOSCRIPT; any other error is the answer', async () => {
    const noScript = standIn(new Error('NOSCRIPT No matching script. Please use EVAL.'));
    const run = luaRunner(noScript.redis, 'return 1');
    await run([], []);
    expect(await run(['k'], ['x'])).toBe('by text');
    expect(noScript.sent).toEqual(['eval 0', 'evalsha 1 k x', 'eval 1 k x']);
    const broken = standIn(new Error('ERR something else'));
    const run2 = luaRunner(broken.redis, 'return 1');
    await run2([], []);
    await expect(run2([], [])).rejects.toThrow('ERR something else');
  });
});

onRedis('lua.test', 'packed arguments', (url) => {
  describe('UNPACK on Redis', () => {
    const redis = testRedis(url);
    afterAll(() => redis.destroy());
    // Answers what UNPACK handed over: the head, then each step's keys and arguments.
    const echo = luaRunner(
      redis,
      `${LUA_UNPACK}local head, S = UNPACK(); local out = {head}
for i = 1, #S do out[#out + 1] = S[i][1]; out[#out + 1] = S[i][2] end
return out`,
    );
    const roundTrip = async (head: string[], steps: LuaCall[]) => {
      const c = packCalls(head, steps);
      return echo(c.keys, c.args);
    };

    it('hands every step its own keys and arguments, separators and odd characters included', async () => {
      const steps: LuaCall[] = [
        {
          keys: ['mole:x:ledger:k:1', 'k,2;"3"'],
          args: ['a,b', 'c;d', '"quoted"', 'back\\slash', 'line\nbreak\r', 'tab\t', '\u0001\u001f', '[]{}:'],
        },
        { keys: [], args: [] },
        { keys: ['k:3'], args: ['', ' ', 'null', 'true', 'ü€😀 中文'] },
        { keys: ['k:4'], args: [] },
        { keys: [], args: ['h:0123456789abcdef'] },
      ];
      expect(await roundTrip(['5000', ''], steps)).toEqual([
        ['5000', ''],
        ...steps.flatMap((s) => [s.keys, s.args]),
      ]);
    });

    it('keeps integers near 2^53 (and past it) as the exact decimal text they were sent as', async () => {
      const big = ['9007199254740991', '-9007199254740991', '9007199254740993', '18446744073709551615', '0'];
      expect(await roundTrip(big, [{ keys: ['k'], args: big }])).toEqual([big, ['k'], big]);
      // And Lua reads them as numbers exactly below 2^53: string.format('%d') gives them back.
      const exact = luaRunner(
        redis,
        `${LUA_UNPACK}local _, S = UNPACK(); local a = S[1][2]
return {string.format('%d', tonumber(a[1]) - 1), string.format('%d', tonumber(a[2]) + 1)}`,
      );
      const c = packCalls([], [{ keys: [], args: ['9007199254740991', '-9007199254740991'] }]);
      expect(await exact(c.keys, c.args)).toEqual(['9007199254740990', '-9007199254740990']);
    });

    it('an empty head and steps without keys or arguments unpack to empty tables', async () => {
      const none: LuaCall = { keys: [], args: [] };
      expect(await roundTrip([], [none, none])).toEqual([[], [], [], [], []]);
    });
  });
});
