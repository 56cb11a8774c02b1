// Leak response (contract §8): what the gateway does, on its own authority, to a key that is
// out in the open (a GitHub secret-scanning report) or behaving unlike itself (the anomaly
// guard). Either way the key is switched off and locked at once (only an admin can enable it
// again; every instance hears of it on the invalidation bus), audited and announced as an
// event, the audit row and the event in the change's own transaction. Never a secret in any
// of them: a reported token is only ever hashed.
import { hash } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditService } from '../audit/service.js';
import type { EventsService } from '../events/service.js';
import { KEY_REGEX } from '../keys/format.js';
import type { KeysService } from '../keys/service.js';

/** One match in GitHub's report. */
export interface LeakReport {
  token: string;
  type: string;
  url: string;
  source: string;
}

/** GitHub's feedback format: the token only as its SHA-256. */
export interface LeakLabel {
  token_hash: string;
  token_type: string;
  label: 'true_positive' | 'false_positive';
}

/** Why the guard stepped in: which threshold, its limit and what was seen, this clock hour. */
export interface GuardTrip {
  metric: 'ips' | 'spend';
  /** `max_ips_per_hour`, or `max_spend_per_hour` in USD. */
  limit: number;
  /** Distinct IPs, or USD spent, this hour. */
  value: number;
  /** The clock hour, ISO 8601 (its start). */
  hour: string;
  reason: string;
}

export const GITHUB_ACTOR = 'github:secret-scanning';
export const GUARD_ACTOR = 'system:guard';

export function createSecurityActions(deps: {
  keys: Pick<KeysService, 'findByHashes' | 'lockDown'>;
  audit: Pick<AuditService, 'record'>;
  events: Pick<EventsService, 'emit'>;
  logger: Logger;
}) {
  const { keys, audit, events } = deps;

  return {
    /**
     * Disables and locks every live key among the reported tokens; labels each token
     * `true_positive` when it is (or was: deleted keys count) one of ours. Idempotent: a key
     * already off and locked is left as it is, with no second audit row or event.
     */
    async reportLeaks(reports: LeakReport[], ip: string): Promise<LeakLabel[]> {
      const hashes = reports.map((r) => hash('sha256', r.token, 'hex'));
      // Only strings of our key shape can be ours (imported keys share it): no lookup for others.
      const ours = [...new Set(hashes.filter((_h, i) => KEY_REGEX.test(reports[i]!.token)))];
      const rows = await keys.findByHashes(ours);
      const byHash = new Map<string, (typeof rows)[number]>();
      for (const row of rows) {
        // A current secret wins over another key's old one (cannot happen, but be exact).
        byHash.set(row.key_hash, row);
        if (row.prev_key_hash && !byHash.has(row.prev_key_hash)) byHash.set(row.prev_key_hash, row);
      }
      const out: LeakLabel[] = [];
      for (const [i, r] of reports.entries()) {
        const row = byHash.get(hashes[i]!);
        out.push({
          token_hash: hashes[i]!,
          token_type: r.type,
          label: row ? 'true_positive' : 'false_positive',
        });
        if (!row || row.status === 'deleted') continue;
        const keyId = Number(row.id);
        const userId = Number(row.user_id);
        const { changed } = await keys.lockDown(keyId, async (trx, { before, after }) => {
          const where = { url: r.url, source: r.source, type: r.type };
          await audit.record(
            {
              actor: GITHUB_ACTOR,
              action: 'key.leaked',
              keyId,
              userId,
              ip,
              changes: {
                ...where,
                name: after.name,
                display: after.display,
                status: { from: before.status, to: after.status },
                locked: true,
              },
            },
            trx,
          );
          await events.emit(
            {
              type: 'key.leaked',
              userId,
              keyId,
              dedupeKey: `key.leaked:key:${keyId}:${after.display}`,
              data: { key_id: keyId, key_name: after.name, display: after.display, ...where, disabled: true },
            },
            trx,
          );
        });
        deps.logger.warn(
          { key_id: keyId, source: r.source, url: r.url, changed },
          'security: a leaked key was reported; it is disabled and locked',
        );
      }
      return out;
    },

    /** The guard's `disable`: off and locked at once, audited `key.auto_disabled` with the reason. */
    async autoDisable(keyId: number, userId: number, trip: GuardTrip): Promise<void> {
      const { changed } = await keys.lockDown(keyId, async (trx, { before, after }) => {
        await audit.record(
          {
            actor: GUARD_ACTOR,
            action: 'key.auto_disabled',
            keyId,
            userId,
            changes: {
              name: after.name,
              display: after.display,
              reason: trip.reason,
              metric: trip.metric,
              limit: trip.limit,
              value: trip.value,
              hour: trip.hour,
              status: { from: before.status, to: after.status },
              locked: true,
            },
          },
          trx,
        );
        await events.emit(
          {
            type: 'key.auto_disabled',
            userId,
            keyId,
            dedupeKey: `key.auto_disabled:key:${keyId}:${trip.hour}:${trip.metric}`,
            data: { key_id: keyId, key_name: after.name, action: 'disable', disabled: true, ...trip },
          },
          trx,
        );
      });
      if (changed)
        deps.logger.warn(
          { key_id: keyId, reason: trip.reason },
          'security: the anomaly guard disabled a key',
        );
    },

    /** The guard's `alert`: the event only, once per key, clock hour and threshold. */
    async alert(keyId: number, userId: number, trip: GuardTrip): Promise<void> {
      await events.emit({
        type: 'key.auto_disabled',
        userId,
        keyId,
        dedupeKey: `key.auto_disabled:key:${keyId}:${trip.hour}:${trip.metric}`,
        data: { key_id: keyId, action: 'alert', disabled: false, ...trip },
      });
    },
  };
}

export type SecurityActions = ReturnType<typeof createSecurityActions>;
