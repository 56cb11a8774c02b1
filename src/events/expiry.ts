// `key.expiring`: a periodic scan for enabled keys whose `expires_at` is 7 days or 1 day away.
// Each notice has a dedupe key naming the key, the notice and the expiry it announces, so it
// fires once however often (and on however many instances) the scan runs, and again only if
// the key's expiry is moved. A key first seen within a day of expiring gets the 1-day notice
// only. Besides the periodic scan, a key change (announced on the bus) triggers one shortly.
// The keys come through a function services.ts hands in; this domain reads no key table.
import type { Logger } from 'pino';
import type { Clock } from '../shared/clock.js';
import { periodicJob } from '../shared/periodic.js';
import type { EventsService } from './service.js';

const DAY_MS = 24 * 3600_000;
/** Notices, widest first: days before expiry. */
const NOTICES = [7, 1] as const;
/** How often the scan runs, ms (the 1-day notice is at most this late). */
export const EXPIRY_SCAN_INTERVAL_MS = 10 * 60_000;
/** After a key changes (created, or its expiry moved), a scan runs this soon (bursts share one). */
const AFTER_CHANGE_MS = 500;

export interface ExpiringKey {
  id: number;
  userId: number;
  name: string;
  display: string;
  expiresAt: number;
}

export function createExpiryScanner(deps: {
  events: EventsService;
  expiringBetween: (from: number, to: number) => Promise<ExpiringKey[]>;
  now: Clock;
  logger: Logger;
}) {
  let soon: NodeJS.Timeout | null = null;

  /** One scan at the clock's current time; resolves to how many keys were looked at. */
  async function scan(): Promise<number> {
    const now = deps.now();
    const keys = await deps.expiringBetween(now, now + NOTICES[0] * DAY_MS);
    for (const k of keys) {
      const left = k.expiresAt - now;
      // The narrowest notice the key is within: 1 day, else 7 days.
      const days = [...NOTICES].reverse().find((d) => left <= d * DAY_MS)!;
      await deps.events.emit({
        type: 'key.expiring',
        userId: k.userId,
        keyId: k.id,
        dedupeKey: `key.expiring:${k.id}:${days}d:${k.expiresAt}`,
        data: {
          key_name: k.name,
          key_display: k.display,
          expires_at: new Date(k.expiresAt).toISOString(),
          days_before: days,
        },
      });
    }
    return keys.length;
  }

  const job = periodicJob(scan, (err) => deps.logger.error({ err: String(err) }, 'key expiry scan failed'), {
    rerunWhenBusy: true,
  });

  return {
    scan,
    /** A key changed: scan shortly, so a key created a day before its expiry is told at once. */
    soon() {
      if (!job.started || soon) return;
      soon = setTimeout(() => {
        soon = null;
        job.tick();
      }, AFTER_CHANGE_MS);
      soon.unref();
    },
    start(intervalMs = EXPIRY_SCAN_INTERVAL_MS) {
      job.start(intervalMs);
    },
    async stop() {
      if (soon) clearTimeout(soon);
      soon = null;
      await job.stop();
    },
  };
}
