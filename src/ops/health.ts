// Readiness (contract §9): the database answers (a real read of a schema table, so a dropped
// schema or a closed handle counts as down), and Redis too when configured. Each check is
// bounded by a timeout, so a database that hangs makes the probe fail instead of waiting.
// Answers name what failed with a short reason; details go to the log (on a change of state
// only, so a probe every few seconds does not flood it).
import type { Logger } from 'pino';

export interface Check {
  name: string;
  run(): Promise<void>;
}

export interface CheckResult {
  ok: boolean;
  ms: number;
  /** Short, non-sensitive reason: "timeout", "not connected", "error". */
  error?: string;
}

export interface Readiness {
  ok: boolean;
  checks: Record<string, CheckResult>;
  failed: string[];
}

class NotConnected extends Error {}

/** `probe` reads a real table (a dropped schema or a closed handle must fail it). */
export function databaseCheck(probe: () => Promise<void>): Check {
  return { name: 'database', run: probe };
}

/** The Redis clients the gateway uses (commands and pub/sub): all must be connected. */
export function redisCheck(clients: Array<{ isReady: boolean; ping(): Promise<unknown> } | null>): Check {
  return {
    name: 'redis',
    run: async () => {
      const live = clients.filter((c) => c !== null);
      for (const c of live) if (!c.isReady) throw new NotConnected('redis not connected');
      // The commands connection must answer; the pub/sub one must at least be connected.
      await live[0]?.ping();
    },
  };
}

export function createReadiness(checks: Check[], opts: { timeoutMs: number; logger: Logger }) {
  const lastOk = new Map<string, boolean>();
  let draining = false;

  async function runOne(c: Check): Promise<CheckResult> {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), opts.timeoutMs);
      timer.unref();
    });
    let result: CheckResult;
    let detail = '';
    try {
      await Promise.race([c.run(), timeout]);
      result = { ok: true, ms: Math.round(performance.now() - started) };
    } catch (err) {
      detail = err instanceof Error ? err.message : String(err);
      const reason =
        detail === 'timeout' ? 'timeout' : err instanceof NotConnected ? 'not connected' : 'error';
      result = { ok: false, ms: Math.round(performance.now() - started), error: reason };
    } finally {
      clearTimeout(timer);
    }
    if (lastOk.get(c.name) !== result.ok) {
      lastOk.set(c.name, result.ok);
      if (result.ok) opts.logger.info({ check: c.name }, 'readiness: check passes');
      else opts.logger.warn({ check: c.name, err: detail }, 'readiness: check fails');
    }
    return result;
  }

  return {
    /** Marks the process as shutting down: readiness fails from now on. */
    drain(): void {
      draining = true;
    },
    async check(): Promise<Readiness> {
      const results = await Promise.all(checks.map(runOne));
      const out: Record<string, CheckResult> = {};
      checks.forEach((c, i) => {
        out[c.name] = results[i]!;
      });
      if (draining) out.shutdown = { ok: false, ms: 0, error: 'draining' };
      const failed = Object.entries(out)
        .filter(([, r]) => !r.ok)
        .map(([n]) => n);
      return { ok: failed.length === 0, checks: out, failed };
    },
  };
}

export type ReadinessProbe = ReturnType<typeof createReadiness>;
