// Redis Lua shared by the domains' scripts. Each script body is a Lua function of (KEYS, ARGV),
// so a domain runs it alone (`luaScript`) and another script can call it among others inside
// one atomic script (admission/admission-redis.ts composes a relay request's steps this way).
// Scripts go by SHA (EVALSHA) once Redis knows them: the text is sent only after a NOSCRIPT.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Exact integers: Redis's Lua holds numbers as doubles and formats them with %.17g ("-0",
 * exponents), so scripts hand HINCRBY an ARGV string or INT(n) (%d: exact below 2^53).
 */
export const LUA_INT = `local function INT(n) return string.format('%d', n) end\n`;

/** `local function NAME(KEYS, ARGV) body end`: the parameters shadow the globals, so a body reads as a script. */
export const luaFunction = (name: string, body: string): string =>
  `local function ${name}(KEYS, ARGV)\n${body}\nend\n`;

/** One call in a composed script: a function's keys and arguments. */
export interface LuaCall {
  keys: string[];
  args: (string | number)[];
}

/**
 * A script ready to run: its text the first time (EVAL caches it), then by SHA, and by text
 * again after a NOSCRIPT (a restarted or flushed Redis). The first call goes as text so that
 * calls made one after another reach Redis in that order (a fallback would come after them).
 */
export function luaRunner(redis: Redis, script: string) {
  const sha = createHash('sha1').update(script).digest('hex');
  let sent = false;
  return async (keys: string[], args: (string | number)[]): Promise<unknown> => {
    if (!sent) {
      sent = true;
      return redis.eval(script, keys.length, ...keys, ...args);
    }
    try {
      return await redis.evalsha(sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(script, keys.length, ...keys, ...args);
    }
  };
}
