// Upstream providers. All live channels are held in memory with their decrypted credential
// (never logged, never returned), so choosing one costs no database round trip. Selection:
// highest priority tier first; inside a tier, weighted random order. Health: repeated
// failures put a channel in cool-down; an upstream 401/403 disables it. Both are audited.
import type { Logger } from 'pino';
import type { Db, OnChange } from '../db/index.js';
import type { ChannelRow } from '../db/schema.js';
import type { AuditService } from '../audit/service.js';
import type { EventsService } from '../events/service.js';
import { type InvalidationBus, reloadOnAnnouncement } from '../shared/bus.js';
import { notFound } from '../http/errors.js';
import { compileModelList, type ModelMatcher } from '../shared/models.js';
import type { SecretBox } from './secretbox.js';
import { withoutUserinfo } from './base-url.js';
import { backgroundWork } from '../shared/background.js';

export const CHANNEL_TYPES = ['openai', 'anthropic', 'gemini', 'mock'] as const;
export type ChannelType = (typeof CHANNEL_TYPES)[number];

export interface Channel {
  id: number;
  name: string;
  type: ChannelType;
  baseUrl: string;
  apiKey: string;
  models: string[];
  serves: ModelMatcher;
  modelMap: Record<string, string>;
  priority: number;
  weight: number;
  /** null = every group. */
  groups: Set<string> | null;
  status: 'active' | 'disabled';
  /** An `openai` channel that also serves the Responses API. */
  responses: boolean;
}

export interface ChannelInput {
  name: string;
  type: ChannelType;
  baseUrl: string;
  apiKey?: string;
  models: string[];
  modelMap: Record<string, string> | null;
  priority: number;
  weight: number;
  groups: string[] | null;
  status?: 'active' | 'disabled';
  responses?: boolean;
}

const FAILURES_BEFORE_COOLDOWN = 3;
const COOLDOWN_MS = 30_000;

/** What this instance saw of a channel lately (in memory, per instance). */
interface Health {
  failures: number;
  cooldownUntil: number;
  lastError: string | null;
  lastErrorAt: number | null;
}

export type ChannelJson = ReturnType<typeof toChannelJson>;

export function toChannelJson(r: ChannelRow, health?: Health) {
  return {
    id: Number(r.id),
    name: r.name,
    type: r.type,
    base_url: withoutUserinfo(r.base_url),
    models: JSON.parse(r.models) as string[],
    model_map: r.model_map === null ? null : (JSON.parse(r.model_map) as Record<string, string>),
    priority: Number(r.priority),
    weight: Number(r.weight),
    groups: r.groups === null ? null : (JSON.parse(r.groups) as string[]),
    status: r.status,
    responses: Number(r.responses) !== 0,
    disabled_reason: r.disabled_reason,
    cooling_down_until:
      health && health.cooldownUntil > Date.now() ? new Date(health.cooldownUntil).toISOString() : null,
    /** Failed upstream attempts since the last success or cool-down (this instance). */
    consecutive_failures: health?.failures ?? 0,
    /** The latest failed attempt's reason (never the credential), and when. */
    last_error: health?.lastError ?? null,
    last_error_at: health?.lastErrorAt ? new Date(health.lastErrorAt).toISOString() : null,
    created_at: new Date(Number(r.created_at)).toISOString(),
    updated_at: new Date(Number(r.updated_at)).toISOString(),
  };
}

export async function createChannelsService(
  db: Db,
  bus: InvalidationBus,
  box: SecretBox,
  audit: AuditService,
  logger: Logger,
  events: EventsService,
) {
  let live: Channel[] = [];
  const health = new Map<number, Health>();
  const healthOf = (id: number): Health => {
    const known = health.get(id);
    if (known) return known;
    const h: Health = { failures: 0, cooldownUntil: 0, lastError: null, lastErrorAt: null };
    health.set(id, h);
    return h;
  };

  function fromRow(r: ChannelRow): Channel | null {
    try {
      const models = JSON.parse(r.models) as string[];
      return {
        id: Number(r.id),
        name: r.name,
        type: r.type as ChannelType,
        baseUrl: r.base_url.replace(/\/+$/, ''),
        apiKey: box.open(r.api_key_enc),
        models,
        serves: compileModelList(models)!,
        modelMap: r.model_map === null ? {} : (JSON.parse(r.model_map) as Record<string, string>),
        priority: Number(r.priority),
        weight: Number(r.weight),
        groups: r.groups === null ? null : new Set(JSON.parse(r.groups) as string[]),
        status: r.status,
        responses: Number(r.responses) !== 0,
      };
    } catch (err) {
      logger.error(
        { channel: Number(r.id), err: err instanceof Error ? err.message : String(err) },
        'channel unreadable (was MOLE_SECRET changed?); skipped',
      );
      return null;
    }
  }

  /** Channels not deleted. */
  const liveChannels = () => db.selectFrom('channels').selectAll().where('deleted_at', 'is', null);

  async function reload() {
    const rows = await liveChannels().execute();
    live = rows.map(fromRow).filter((c): c is Channel => c !== null);
  }
  await reload();
  const reloaded = reloadOnAnnouncement(
    bus,
    (m) => m.kind === 'channels' || m.kind === 'all',
    reload,
    (err) => logger.error({ err: String(err) }, 'channels: reload failed; the previous list stays'),
  );
  const changed = async () => {
    bus.publish({ kind: 'channels' });
    await reloaded();
  };

  const inGroup = (c: Channel, group: string) => c.groups === null || c.groups.has(group);

  async function requireRow(id: number): Promise<ChannelRow> {
    const r = await liveChannels().where('id', '=', id).executeTakeFirst();
    if (!r) throw notFound('channel');
    return r;
  }

  function columns(i: Partial<ChannelInput>) {
    const set: Partial<ChannelRow> = {};
    if (i.name !== undefined) set.name = i.name;
    if (i.type !== undefined) set.type = i.type;
    if (i.baseUrl !== undefined) set.base_url = i.baseUrl;
    if (i.apiKey !== undefined) set.api_key_enc = box.seal(i.apiKey);
    if (i.models !== undefined) set.models = JSON.stringify(i.models);
    if (i.modelMap !== undefined) set.model_map = i.modelMap === null ? null : JSON.stringify(i.modelMap);
    if (i.priority !== undefined) set.priority = i.priority;
    if (i.weight !== undefined) set.weight = i.weight;
    if (i.groups !== undefined) set.groups = i.groups === null ? null : JSON.stringify(i.groups);
    if (i.responses !== undefined) set.responses = i.responses ? 1 : 0;
    if (i.status !== undefined) {
      set.status = i.status;
      if (i.status === 'active') set.disabled_reason = null;
    }
    return set;
  }

  /** Health's writes under way (a disable, an audited cool-down): `settled()` awaits them. */
  const healthWrites = backgroundWork();

  return {
    /** Is the model served to this group by any enabled channel? */
    serves(group: string, model: string): boolean {
      return live.some((c) => c.status === 'active' && inGroup(c, group) && c.serves.allows(model));
    },

    /**
     * Model names offered to a group: its channels' exact names, and those of `known` (the
     * priced models, say) that a wildcard entry ("gpt-4o*") serves; a wildcard lists nothing
     * of itself.
     */
    modelsFor(group: string, known: Iterable<string> = []): string[] {
      const open = live.filter((c) => c.status === 'active' && inGroup(c, group));
      const out = new Set<string>();
      for (const c of open) for (const m of c.models) if (!m.endsWith('*')) out.add(m);
      for (const m of known) if (!out.has(m) && open.some((c) => c.serves.allows(m))) out.add(m);
      return [...out].sort();
    },

    /** Channels to try, in order: priority tiers high→low, weighted random within a tier, healthy first. */
    candidates(group: string, model: string, now = Date.now()): Channel[] {
      const eligible = live.filter(
        (c) => c.status === 'active' && inGroup(c, group) && c.serves.allows(model),
      );
      const healthy = eligible.filter((c) => (health.get(c.id)?.cooldownUntil ?? 0) <= now);
      const cooling = eligible.filter((c) => (health.get(c.id)?.cooldownUntil ?? 0) > now);
      return [...order(healthy), ...order(cooling)];
    },

    upstreamModel(c: Channel, model: string): string {
      // An own entry only: a model named "constructor" must not find Object's.
      return Object.hasOwn(c.modelMap, model) ? c.modelMap[model]! : model;
    },

    reportSuccess(c: Channel): void {
      const h = health.get(c.id);
      if (h) h.failures = 0;
    },

    /** `fatal` (upstream 401/403): the credential is bad, so the channel is switched off. */
    reportFailure(c: Channel, reason: string, fatal: boolean): void {
      const seen = healthOf(c.id);
      seen.lastError = (c.apiKey ? reason.split(c.apiKey).join('[redacted]') : reason).slice(0, 500);
      seen.lastErrorAt = Date.now();
      if (fatal) {
        // Requests already in flight on this channel meet the same 401/403: switch it off once.
        if (c.status === 'disabled') return;
        c.status = 'disabled';
        // Only the instance whose update switched it off records and reports it.
        void healthWrites.track(
          db
            .updateTable('channels')
            .set({ status: 'disabled', disabled_reason: reason, updated_at: Date.now() })
            .where('id', '=', c.id)
            .where('status', '=', 'active')
            .executeTakeFirst()
            .then(async (res) => {
              if (Number(res.numUpdatedRows) === 0) return;
              await audit.record({
                actor: 'system',
                action: 'channel.disable',
                changes: { channel_id: c.id, name: c.name, reason },
              });
              await events.emit({
                type: 'channel.disabled',
                userId: null,
                data: { channel_id: c.id, channel_name: c.name, reason, by: 'health' },
              });
            })
            .then(changed)
            .catch((err) => logger.error({ err: String(err) }, 'could not disable channel')),
        );
        return;
      }
      const h = seen;
      h.failures++;
      if (h.failures >= FAILURES_BEFORE_COOLDOWN && h.cooldownUntil <= Date.now()) {
        h.cooldownUntil = Date.now() + COOLDOWN_MS;
        h.failures = 0;
        void healthWrites.track(
          audit
            .record({
              actor: 'system',
              action: 'channel.cooldown',
              changes: { channel_id: c.id, name: c.name, reason, seconds: COOLDOWN_MS / 1000 },
            })
            .catch((err) => logger.error({ err: String(err) }, 'audit failed')),
        );
      }
    },

    /**
     * Resolves once the health writes started so far (and any they started) are done: before the
     * database closes, and for a reader that must see them.
     */
    settled: (): Promise<void> => healthWrites.settled(),

    get: (id: number) => live.find((c) => c.id === id),
    async list() {
      const rows = await liveChannels().orderBy('priority', 'desc').orderBy('id').execute();
      return rows.map((r) => toChannelJson(r, health.get(Number(r.id))));
    },
    async getJson(id: number) {
      const r = await requireRow(id);
      return toChannelJson(r, health.get(id));
    },
    /** `onCreated` runs in the creation's transaction (the audit row): when it throws, no channel exists. */
    async create(i: ChannelInput, onCreated?: OnChange<ChannelJson>) {
      const now = Date.now();
      const row = await db.transaction().execute(async (trx) => {
        const created = await trx
          .insertInto('channels')
          .values({
            name: i.name,
            type: i.type,
            base_url: i.baseUrl,
            api_key_enc: box.seal(i.apiKey ?? ''),
            models: JSON.stringify(i.models),
            model_map: i.modelMap === null ? null : JSON.stringify(i.modelMap),
            priority: i.priority,
            weight: i.weight,
            groups: i.groups === null ? null : JSON.stringify(i.groups),
            status: i.status ?? 'active',
            responses: i.responses === false ? 0 : 1,
            disabled_reason: null,
            created_at: now,
            updated_at: now,
            deleted_at: null,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        await onCreated?.(trx, toChannelJson(created));
        return created;
      });
      await changed();
      return toChannelJson(row);
    },
    /** `onUpdated` runs in the change's transaction (the audit row): when it throws, nothing changes. */
    async update(
      id: number,
      i: Partial<ChannelInput>,
      onUpdated?: OnChange<ChannelJson>,
      by: { actor: string } = { actor: 'system' },
    ) {
      await requireRow(id);
      const row = await db.transaction().execute(async (trx) => {
        const before = await trx
          .selectFrom('channels')
          .select('status')
          .where('id', '=', id)
          .executeTakeFirstOrThrow();
        const updated = await trx
          .updateTable('channels')
          .set({ ...columns(i), updated_at: Date.now() })
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow();
        await onUpdated?.(trx, toChannelJson(updated));
        if (before.status !== 'disabled' && updated.status === 'disabled') {
          await events.emit(
            {
              type: 'channel.disabled',
              userId: null,
              data: { channel_id: id, channel_name: updated.name, reason: null, by: by.actor },
            },
            trx,
          );
        }
        return updated;
      });
      if (i.status === 'active') health.delete(id);
      await changed();
      return toChannelJson(row, health.get(id));
    },
    /** `onRemoved` runs in the removal's transaction (the audit row): when it throws, nothing changes. */
    async remove(id: number, onRemoved?: OnChange<ChannelJson>) {
      const r = await requireRow(id);
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable('channels')
          .set({ deleted_at: Date.now(), status: 'disabled' })
          .where('id', '=', id)
          .execute();
        await onRemoved?.(trx, toChannelJson(r));
      });
      await changed();
      return toChannelJson(r);
    },
  };
}

/** Priority tiers high→low; inside a tier a weighted random permutation (Efraimidis–Spirakis). */
function order(cs: Channel[]): Channel[] {
  const tiers = new Map<number, Channel[]>();
  for (const c of cs) {
    const t = tiers.get(c.priority);
    if (t) t.push(c);
    else tiers.set(c.priority, [c]);
  }
  const out: Channel[] = [];
  for (const p of [...tiers.keys()].sort((a, b) => b - a)) {
    const tier = tiers.get(p)!;
    if (tier.length === 1) out.push(tier[0]!);
    else
      out.push(
        ...tier
          .map((c) => ({ c, k: Math.random() ** (1 / Math.max(c.weight, 1e-9)) }))
          .sort((a, b) => b.k - a.k)
          .map((x) => x.c),
      );
  }
  return out;
}

export type ChannelsService = Awaited<ReturnType<typeof createChannelsService>>;
