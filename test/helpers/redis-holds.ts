// Reads a ledger counter's holds in Redis itself (past any proxy in front of it), the way the
// admission scripts count them: a hold field `h:<id>` counts while its instance's liveness key
// `<prefix>:ledger:live:<id>` exists (src/shared/hold-lease.ts).
import { createClient } from '@redis/client';

/** The Redis key prefix of a gateway's database (`mole:<database id>`, src/services.ts). */
export const redisPrefixOf = (databaseId: string) => `mole:${databaseId}`;

/**
 * The holds on key `id`'s (`k`) or account `id`'s (`u`) counter, nano-USD: `live`, those that
 * count; `all`, every hold field, also those of an instance whose lease is gone (a script that
 * next reads the counter deletes them).
 */
export async function holdsOn(
  url: string,
  prefix: string,
  counter: 'k' | 'u',
  id: number,
): Promise<{ live: number; all: number }> {
  const redis = createClient({ url });
  await redis.connect();
  try {
    const sum = { live: 0, all: 0 };
    for (const [field, value] of Object.entries(await redis.hGetAll(`${prefix}:ledger:${counter}:${id}`))) {
      if (!field.startsWith('h:')) continue;
      sum.all += Number(value);
      if (await redis.exists(`${prefix}:ledger:live:${field.slice(2)}`)) sum.live += Number(value);
    }
    return sum;
  } finally {
    redis.destroy();
  }
}
