// Notifications: things an owner or an admin should hear about (a budget threshold crossed,
// a key about to expire, a channel switched off, …). `emit` stores one row per occurrence
// (a repeated `dedupeKey` is a no-op) and, when a webhook is configured, the same row is
// queued for delivery (events/webhook.ts drains it). Other domains only call `emit`.
import { randomBytes } from 'node:crypto';
import type { Db } from '../db/index.js';
import type { EventRow } from '../db/schema.js';
import { type Clock, systemClock } from '../shared/clock.js';
import { readIdPage } from '../shared/page.js';

export const EVENT_TYPES = [
  'budget.threshold',
  'key.expiring',
  'key.auto_disabled',
  'key.leaked',
  'channel.disabled',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface EventInput {
  type: EventType;
  /** The account it concerns (tenancy for GET /api/events); null = admins only. */
  userId: number | null;
  keyId?: number | null;
  /** Identifies one occurrence: the same dedupeKey is stored once (e.g. `budget.threshold:key:7:daily:2026-12-05:0.8`). */
  dedupeKey?: string;
  /** Never a secret (fields named like one are dropped anyway). */
  data: Record<string, unknown>;
}

export interface EventsService {
  /**
   * Stores the event (and queues its webhook delivery) durably; resolves when stored.
   * Pass the transaction of the change it reports to commit both together (on SQLite a call
   * on the plain database from inside an open transaction would wait for that transaction).
   */
  emit(e: EventInput, exec?: Db): Promise<void>;
}

/** Field names whose values are never kept in an event, at any depth. */
const SECRET_FIELD =
  /^(key|secret|password|password_hash|key_hash|api_key|api_key_enc|token|authorization)$/i;

function scrub(v: unknown, depth = 0): unknown {
  if (depth > 16 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => scrub(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (!SECRET_FIELD.test(k)) out[k] = scrub(x, depth + 1);
  return out;
}

/** The public, stable id of an event: the webhook's `id` and `x-mole-event-id`. */
export const newEventId = () => `evt_${randomBytes(12).toString('hex')}`;

export interface EventListQuery {
  limit: number;
  /** Only this account's events (a user sees their own only). */
  userId?: number;
  keyId?: number;
  type?: EventType;
  cursor?: number;
  /** Add each event's webhook delivery state (admins). */
  withDelivery?: boolean;
}

export function createEventsService(
  db: Db,
  opts: {
    now?: Clock;
    /** True when a webhook is configured: new events are queued for delivery. */
    deliver: boolean;
    /** Called after an event is stored (wakes the webhook loop). */
    onStored?: () => void;
  },
) {
  const clock = opts.now ?? systemClock;
  return {
    async emit(e: EventInput, exec: Db = db): Promise<void> {
      const now = clock();
      const res = await exec
        .insertInto('events')
        .values({
          uid: newEventId(),
          type: e.type,
          user_id: e.userId,
          key_id: e.keyId ?? null,
          dedupe_key: e.dedupeKey ?? null,
          data: JSON.stringify(scrub(e.data)),
          created_at: now,
          next_attempt_at: opts.deliver ? now : null,
        })
        .onConflict((oc) => oc.column('dedupe_key').doNothing())
        .executeTakeFirst();
      if (Number(res.numInsertedOrUpdatedRows ?? 0n) > 0) opts.onStored?.();
    },

    /** Newest first, cursor-paged like the other lists. */
    async list(q: EventListQuery) {
      let query = db.selectFrom('events').selectAll();
      if (q.userId !== undefined) query = query.where('user_id', '=', q.userId);
      if (q.keyId !== undefined) query = query.where('key_id', '=', q.keyId);
      if (q.type !== undefined) query = query.where('type', '=', q.type);
      return readIdPage(query, q, (r) =>
        q.withDelivery ? { ...toEventJson(r), delivery: toDeliveryJson(r) } : toEventJson(r),
      );
    },
  } satisfies EventsService & Record<string, unknown>;
}

export type EventsStore = ReturnType<typeof createEventsService>;

/** The event as GET /api/events answers it and as the webhook body carries it. */
export function toEventJson(r: EventRow) {
  return {
    id: r.uid,
    type: r.type as EventType,
    created_at: new Date(Number(r.created_at)).toISOString(),
    user_id: r.user_id === null ? null : Number(r.user_id),
    key_id: r.key_id === null ? null : Number(r.key_id),
    data: JSON.parse(r.data) as Record<string, unknown>,
  };
}

/** Where the event's webhook delivery stands; null when it was never queued (no webhook then). */
export function toDeliveryJson(r: EventRow) {
  const iso = (v: number | null) => (v === null ? null : new Date(Number(v)).toISOString());
  if (r.delivered_at === null && r.next_attempt_at === null) return null;
  return {
    state: r.delivered_at !== null ? ('delivered' as const) : ('pending' as const),
    attempts: Number(r.attempts),
    last_error: r.last_error,
    next_attempt_at: iso(r.next_attempt_at),
    delivered_at: iso(r.delivered_at),
  };
}
