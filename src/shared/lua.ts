// Redis Lua shared by the domains' scripts. Each script body is a Lua function of (KEYS, ARGV),
// so a domain runs it alone (`luaScript`) and another script can call it among others inside
// one atomic script (admission/admission-redis.ts composes a relay request's steps this way).
// Scripts go by SHA (EVALSHA) once Redis knows them: the text is sent only after a NOSCRIPT.
import { createHash } from 'node:crypto';
import type { RedisClient } from './redis.js';

/**
 * Exact integers: Redis's Lua holds numbers as doubles and formats them with %.17g ("-0",
 * exponents), so scripts hand HINCRBY an ARGV string or INT(n) (%d: exact below 2^53).
 */
export const LUA_INT = `local function INT(n) return string.format('%d', n) end\n`;

/** `local function NAME(KEYS, ARGV) body end`: the parameters shadow the globals, so a body reads as a script. */
export const luaFunction = (name: string, body: string): string =>
  `local function ${name}(KEYS, ARGV)\n${body}\nend\n`;

/** One call in a composed script: a function's keys and arguments (decimal text for numbers). */
export interface LuaCall {
  keys: string[];
  args: string[];
}

/**
 * A composed script's KEYS and ARGV: KEYS holds every step's keys in order (declared, as Redis
 * asks); ARGV is one JSON array, `[head, [each step's key count], step 1's arguments, …]`, that
 * Redis's cjson decodes in C. One argument for the client to encode and Redis to parse instead of
 * dozens, and no Lua loop to cut them apart. Arguments travel as JSON strings, so a step reads
 * the very strings it would read from ARGV.
 */
export function packCalls(head: string[], steps: readonly LuaCall[]): { keys: string[]; args: [string] } {
  const keys: string[] = [];
  const counts: number[] = [];
  const packed: unknown[] = [head, counts];
  for (const s of steps) {
    counts.push(s.keys.length);
    for (const k of s.keys) keys.push(k);
    packed.push(s.args);
  }
  return { keys, args: [JSON.stringify(packed)] };
}

/**
 * Lua for composed scripts: UNPACK() answers packCalls' head (a table of strings) and its steps
 * S, each S[i] = {keys, args} (tables, empty for a step that does not apply).
 */
export const LUA_UNPACK = `local function UNPACK()
  local p = cjson.decode(ARGV[1]); local counts = p[2]; local S = {}; local kp = 0
  for s = 1, #counts do
    local n = counts[s]; local k = {}
    for i = 1, n do k[i] = KEYS[kp + i] end
    kp = kp + n; S[s] = {k, p[s + 2]}
  end
  return p[1], S
end
`;

/**
 * A script ready to run: its text the first time (EVAL caches it), then by SHA, and by text
 * again after a NOSCRIPT (a restarted or flushed Redis). The first call goes as text so that
 * calls made one after another reach Redis in that order (a fallback would come after them).
 */
export function luaRunner(redis: Pick<RedisClient, 'sendCommand'>, script: string) {
  const sha = createHash('sha1').update(script).digest('hex');
  let sent = false;
  const byText = (n: string, keys: string[], args: string[]) =>
    redis.sendCommand(['EVAL', script, n, ...keys, ...args]) as Promise<unknown>;
  // A plain function and a catch rather than an async one: two relay requests' worth of calls
  // run through here each, and every async frame is garbage to collect.
  return (keys: string[], args: string[]): Promise<unknown> => {
    const n = String(keys.length);
    if (!sent) {
      sent = true;
      return byText(n, keys, args);
    }
    return (redis.sendCommand(['EVALSHA', sha, n, ...keys, ...args]) as Promise<unknown>).catch(
      (err: unknown) => {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        return byText(n, keys, args);
      },
    );
  };
}
