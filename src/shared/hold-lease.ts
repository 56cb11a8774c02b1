// The liveness lease behind Redis holds (ledger, budgets): each instance keeps its holds in
// its own counter field ("h:<id>"), and they count only while its liveness key exists; a
// heartbeat refreshes the key every lease/3, so a crashed instance's holds lapse with it.
import { randomBytes } from 'node:crypto';
import { isRedisUnreachable, neverSent, type RedisClient } from './redis.js';
import type { Logger } from 'pino';

/**
 * Lua for the scripts: COUNTER(k, field, livep, own) reads counter k in one HGETALL and answers
 * the value of `field` (nil when k does not exist: a counter is created with its field) and the
 * sum of the live holds on it; the holds of instances whose lease ran out are deleted. `own`:
 * this instance's hold field when the script renews this instance's lease before it decides
 * anything (that hold counts without a lookup), else nil.
 */
export const LUA_COUNTER = `local function COUNTER(k, field, livep, own)
  local t = redis.call('HGETALL', k); local v = nil; local sum = 0
  for i = 1, #t, 2 do
    local f = t[i]
    if f == field then v = t[i + 1]
    elseif f == own then sum = sum + tonumber(t[i + 1])
    elseif string.sub(f, 1, 2) == 'h:' then
      if redis.call('EXISTS', livep .. string.sub(f, 3)) == 1 then sum = sum + tonumber(t[i + 1])
      else redis.call('HDEL', k, f) end
    end
  end
  return v, sum
end
`;

/**
 * One generation of this instance's holds: its liveness key and its hold field. New holds go to
 * the current generation; a retired one takes none and lives only while holds made in it are
 * open. `open` counts them, from before their script is sent until they are settled or released.
 */
export interface HoldGeneration {
  readonly liveKey: string;
  readonly holdField: string;
  open: number;
  retired: boolean;
  /** HoldLease.retire of this generation. */
  retire(): void;
}

/**
 * Awaits `answer`; when the connection failed with the command sent, it may have run with its
 * answer lost, so `gens` (the generations it held in) are retired before the error goes on. A
 * command refused while the client was offline was never sent: nothing to retire (an outage
 * would otherwise retire a generation per request).
 */
export async function lostAnswerRetires<T>(
  gens: readonly (HoldGeneration | undefined)[],
  answer: Promise<T>,
): Promise<T> {
  try {
    return await answer;
  } catch (err) {
    if (isRedisUnreachable(err) && !neverSent(err)) for (const gen of gens) gen?.retire();
    throw err;
  }
}

export interface HoldLease {
  /** Prefix of every instance's liveness key (the scripts test `livePrefix + id`). */
  livePrefix: string;
  /** How long a liveness key lives without a heartbeat. */
  leaseMs: number;
  /** The generation a new hold goes to, counted open until `release`d. */
  acquire(): HoldGeneration;
  /** A hold of `gen` ended: settled, released, refused, or never made. */
  release(gen: HoldGeneration): void;
  /**
   * Runs `reserve` in a generation acquired for it, which stays open only when `held` says the
   * result holds something (it is then released with that hold); a failure releases it.
   */
  holding<T>(reserve: (gen: HoldGeneration) => Promise<T>, held: (result: T) => boolean): Promise<T>;
  /**
   * Redis may have run a command of `gen` whose answer was lost (the connection was cut): what
   * it held is unknown. `gen` takes no new holds, and once its open holds are all closed its
   * liveness key goes, and with it any hold this instance lost track of.
   */
  retire(gen: HoldGeneration): void;
  /** Stops the heartbeat and drops the liveness keys (this instance's holds stop counting). */
  close(): Promise<void>;
}

/**
 * Starts this instance's lease under `${livePrefix}<random id>`, of `holdLeaseMs` (30 s unless
 * given); `what` names it in logs. A retired generation gets a new random id.
 */
export function startHoldLease(
  redis: RedisClient,
  livePrefix: string,
  what: string,
  deps: { logger: Logger; holdLeaseMs?: number },
): HoldLease {
  const leaseMs = deps.holdLeaseMs ?? 30_000;
  const generation = (): HoldGeneration => {
    const id = randomBytes(8).toString('hex');
    const gen: HoldGeneration = {
      liveKey: livePrefix + id,
      holdField: `h:${id}`,
      open: 0,
      retired: false,
      retire: () => retire(gen),
    };
    return gen;
  };
  let current = generation();
  /** Every generation whose key is kept alive: the current one and retired ones still open. */
  const live = new Set<HoldGeneration>([current]);
  /**
   * Stops renewing `gen` and deletes its liveness key: its holds stop counting. Redis is often
   * out of reach just then (the lost answer's outage): the delete is sent again when the
   * connection is back, until it goes through or the unrenewed key has lapsed on its own.
   */
  const dropping = new Map<HoldGeneration, number>();
  const sendDrop = (gen: HoldGeneration) =>
    redis.del(gen.liveKey).then(
      () => dropping.delete(gen),
      () => {
        // Unrenewed, it lapses on its own a lease after the drop.
        if (Date.now() > dropping.get(gen)!) dropping.delete(gen);
      },
    );
  const drop = (gen: HoldGeneration) => {
    live.delete(gen);
    dropping.set(gen, Date.now() + leaseMs);
    void sendDrop(gen);
  };
  // Back from an outage: the deletes go out before any script this instance sends next.
  redis.on('ready', () => {
    for (const gen of dropping.keys()) void sendDrop(gen);
  });
  const heartbeat = setInterval(
    () => {
      for (const gen of live)
        void redis
          .set(gen.liveKey, '1', { PX: leaseMs })
          .catch((err) => deps.logger.warn({ err: String(err) }, `${what}: hold lease renewal failed`));
    },
    Math.max(250, Math.floor(leaseMs / 3)),
  );
  heartbeat.unref();
  function acquire(): HoldGeneration {
    current.open++;
    return current;
  }
  function release(gen: HoldGeneration): void {
    gen.open--;
    if (gen.retired && gen.open === 0) drop(gen);
  }
  function retire(gen: HoldGeneration): void {
    if (gen.retired) return;
    gen.retired = true;
    if (gen === current) {
      current = generation();
      live.add(current);
    }
    deps.logger.warn(`${what}: a Redis answer may be lost; new holds go to a new generation`);
    if (gen.open === 0) drop(gen);
  }
  return {
    livePrefix,
    leaseMs,
    acquire,
    release,
    async holding(reserve, held) {
      const gen = acquire();
      let result: Awaited<ReturnType<typeof reserve>>;
      try {
        result = await reserve(gen);
      } catch (err) {
        release(gen);
        throw err;
      }
      if (!held(result)) release(gen);
      return result;
    },
    retire,
    async close() {
      clearInterval(heartbeat);
      await Promise.all([...live].map((gen) => redis.del(gen.liveKey).catch(() => {})));
    },
  };
}
