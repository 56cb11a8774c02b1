// Leak response (contract §8): what the gateway does, on its own authority, to a key that is
// out in the open (a GitHub secret-scanning report) or behaving unlike itself (the anomaly
// guard). Either way the key is switched off and locked at once (only an admin can enable it
// again; every instance hears of it on the invalidation bus), audited and announced as an
// event, the audit row and the event in the change's own transaction. Never a secret in any
// of them: a reported token is only ever hashed.
import type { EphemeralKeys } from '../keys/ephemeral.js';
import { hash } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditService } from '../audit/service.js';
import type { ApiKeyRow } from '../db/schema.js';
import type { EventsService } from '../events/service.js';
import { AppError } from '../http/errors.js';
import { KEY_REGEX } from '../keys/format.js';
import type { KeysService } from '../keys/service.js';
import { TOKEN_REGEX } from '../tokens/format.js';
import type { TokensService } from '../tokens/service.js';

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
  /** A leaked ephemeral key is revoked (just it: it was made to be handed out). */
  ephemeral: Pick<EphemeralKeys, 'findByHashes' | 'revoke'>;
  /** A leaked management token (`mg-…`) is revoked: it is read from the DB on every use. */
  tokens: Pick<TokensService, 'findByHashes' | 'revoke'>;
  audit: Pick<AuditService, 'record'>;
  events: Pick<EventsService, 'emit'>;
  logger: Logger;
}) {
  const { keys, audit, events } = deps;

  /**
   * Revokes a reported management token (an expired one too: it must never work again),
   * audited `token.leaked` and announced as a `key.leaked` event of kind `management_token`.
   * A token revoked meanwhile (a second report) is left as it is.
   */
  async function revokeToken(id: number, r: LeakReport, ip: string): Promise<void> {
    const where = { url: r.url, source: r.source, type: r.type };
    try {
      await deps.tokens.revoke(id, async (trx, row) => {
        const userId = row.user_id === null ? null : Number(row.user_id);
        const about = { token_id: Number(row.id), name: row.name, display: row.display };
        await audit.record(
          {
            actor: GITHUB_ACTOR,
            action: 'token.leaked',
            userId,
            ip,
            changes: { ...where, ...about, revoked: true },
          },
          trx,
        );
        await events.emit(
          {
            type: 'key.leaked',
            userId,
            dedupeKey: `key.leaked:token:${Number(row.id)}`,
            data: { kind: 'management_token', ...about, ...where, revoked: true },
          },
          trx,
        );
      });
    } catch (err) {
      if (err instanceof AppError && err.code === 'not_found') return;
      throw err;
    }
    deps.logger.warn(
      { token_id: id, source: r.source, url: r.url },
      'security: a leaked management token was reported; it is revoked',
    );
  }

  /**
   * Switches a key off and locks it; when that changed it, audits `action` (the key's `changes`,
   * then its status move and the lock) and announces an event of the same type, both in the
   * change's transaction.
   */
  function lockKey(
    keyId: number,
    userId: number,
    actor: string,
    action: 'key.leaked' | 'key.auto_disabled',
    ip: string | undefined,
    about: (after: ApiKeyRow) => {
      changes: Record<string, unknown>;
      data: Record<string, unknown>;
    },
  ) {
    return keys.lockDown(keyId, async (trx, { before, after }) => {
      const { changes, data } = about(after);
      await audit.record(
        {
          actor,
          action,
          keyId,
          userId,
          ...(ip !== undefined ? { ip } : {}),
          changes: { ...changes, status: { from: before.status, to: after.status }, locked: true },
        },
        trx,
      );
      // No dedupe key: this runs only when the key changed, once a lock (lockDown), and a key
      // enabled again and locked anew is a new occurrence (an alert of the same hour too).
      await events.emit({ type: action, userId, keyId, data }, trx);
    });
  }

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
      const ephemerals = new Map(
        (await deps.ephemeral.findByHashes(ours.filter((h) => !byHash.has(h)))).map((e) => [e.key_hash, e]),
      );
      const tokenHashes = [...new Set(hashes.filter((_h, i) => TOKEN_REGEX.test(reports[i]!.token)))];
      const mgTokens = new Map((await deps.tokens.findByHashes(tokenHashes)).map((t) => [t.token_hash, t]));
      const out: LeakLabel[] = [];
      for (const [i, r] of reports.entries()) {
        const row = byHash.get(hashes[i]!);
        const eph = row ? undefined : ephemerals.get(hashes[i]!);
        const mg = mgTokens.get(hashes[i]!);
        out.push({
          token_hash: hashes[i]!,
          token_type: r.type,
          label: row || eph || mg ? 'true_positive' : 'false_positive',
        });
        if (mg) {
          if (mg.revoked_at === null) await revokeToken(mg.id, r, ip);
          continue;
        }
        if (eph && eph.status === 'active') {
          await deps.ephemeral.revoke(Number(eph.id), async (trx, revoked) => {
            await audit.record(
              {
                actor: GITHUB_ACTOR,
                action: 'key.leaked',
                keyId: Number(revoked.parent_id),
                userId: Number(revoked.user_id),
                ip,
                changes: {
                  url: r.url,
                  source: r.source,
                  type: r.type,
                  ephemeral_id: Number(revoked.id),
                  display: revoked.display,
                },
              },
              trx,
            );
          });
          continue;
        }
        if (!row || row.status === 'deleted') continue;
        const keyId = Number(row.id);
        const userId = Number(row.user_id);
        const where = { url: r.url, source: r.source, type: r.type };
        const { changed } = await lockKey(keyId, userId, GITHUB_ACTOR, 'key.leaked', ip, (after) => ({
          changes: { ...where, name: after.name, display: after.display },
          data: { key_id: keyId, key_name: after.name, display: after.display, ...where, disabled: true },
        }));
        deps.logger.warn(
          { key_id: keyId, source: r.source, url: r.url, changed },
          'security: a leaked key was reported; it is disabled and locked',
        );
      }
      return out;
    },

    /** The guard's `disable`: off and locked at once, audited `key.auto_disabled` with the reason. */
    async autoDisable(keyId: number, userId: number, trip: GuardTrip): Promise<void> {
      const { reason, metric, limit, value, hour } = trip;
      const { changed } = await lockKey(
        keyId,
        userId,
        GUARD_ACTOR,
        'key.auto_disabled',
        undefined,
        (after) => ({
          changes: { name: after.name, display: after.display, reason, metric, limit, value, hour },
          data: { key_id: keyId, key_name: after.name, action: 'disable', disabled: true, ...trip },
        }),
      );
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
