// Audit trail: who did what to which key or user, when, from where. Changes hold field
// names and non-secret values only; callers never pass a secret (see keys/service.ts).
import type { Db } from '../db/index.js';
import type { AuditRow } from '../db/schema.js';
import { readIdPage } from '../shared/page.js';

export interface AuditEntry {
  actor: string;
  action: string;
  keyId?: number | null;
  userId?: number | null;
  ip?: string | null;
  changes?: Record<string, unknown>;
}

const SECRET_FIELDS = /^(key|secret|password|password_hash|key_hash|api_key|api_key_enc|token)$/i;

function scrub(changes: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(changes)) out[k] = SECRET_FIELDS.test(k) ? '[redacted]' : v;
  return out;
}

export function createAuditService(db: Db) {
  return {
    /** Writes one row; pass the transaction of the change it records, so both commit together. */
    async record(e: AuditEntry, exec: Db = db): Promise<void> {
      await exec
        .insertInto('audit_log')
        .values({
          created_at: Date.now(),
          actor: e.actor,
          action: e.action,
          key_id: e.keyId ?? null,
          user_id: e.userId ?? null,
          ip: e.ip ?? null,
          changes: JSON.stringify(scrub(e.changes ?? {})),
        })
        .execute();
    },

    /**
     * Newest first; `userId` scopes to one owner (users only see their own trail). With
     * `ipsOf` (a user's actor name), the IP shows only on rows that user or their keys did:
     * a user learns no admin's address from what an admin did to their account.
     */
    async list(q: {
      keyId?: number;
      userId?: number;
      actions?: string[];
      limit: number;
      cursor?: number;
      ipsOf?: string;
    }) {
      let query = db.selectFrom('audit_log').selectAll();
      if (q.keyId !== undefined) query = query.where('key_id', '=', q.keyId);
      if (q.userId !== undefined) query = query.where('user_id', '=', q.userId);
      if (q.actions?.length) query = query.where('action', 'in', q.actions);
      const viewer = q.ipsOf;
      if (viewer === undefined) return readIdPage(query, q, toAuditJson);
      const own = (actor: string) =>
        actor === viewer ||
        actor.startsWith(`${viewer}/`) ||
        actor.startsWith('key:') ||
        actor.startsWith('ephemeral:');
      return readIdPage(query, q, (r) => ({ ...toAuditJson(r), ...(own(r.actor) ? {} : { ip: null }) }));
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;

export function toAuditJson(r: AuditRow) {
  return {
    id: Number(r.id),
    created_at: new Date(Number(r.created_at)).toISOString(),
    actor: r.actor,
    action: r.action,
    key_id: r.key_id === null ? null : Number(r.key_id),
    user_id: r.user_id === null ? null : Number(r.user_id),
    ip: r.ip,
    changes: JSON.parse(r.changes) as Record<string, unknown>,
  };
}
