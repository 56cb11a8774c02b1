// What a caller of the management API may do with channels: admins manage them (the routes
// declare it), each change with its audit row in the same transaction, the credential never
// in the trail nor in an answer; anyone signed in lists the models their group is offered.
// The routes only validate input and call these.
import type { AuditService } from '../audit/service.js';
import type { PriceCatalog } from '../billing/catalog.js';
import { actorOf, type Principal, userOf } from '../http/principal.js';
import { loadUndici } from '../shared/undici.js';
import { anthropicOrigin, geminiOrigin } from './base-url.js';
import type { ChannelInput, ChannelsService } from './service.js';

export interface Caller {
  principal: Principal;
  ip: string;
}

/** The fields as the caller wrote them, for the audit trail (the credential becomes "changed"). */
export type AsWritten = Record<string, unknown> & { api_key?: string | undefined };

const auditable = (b: AsWritten) => {
  const { api_key, ...rest } = b;
  return api_key === undefined ? rest : { ...rest, api_key: 'changed' };
};

/** Every occurrence of the credential (and of its URL-encoded form) in a text shown to admins. */
function redact(text: string, credential: string): string {
  if (!credential) return text;
  let out = text.split(credential).join('[redacted]');
  const encoded = encodeURIComponent(credential);
  if (encoded !== credential) out = out.split(encoded).join('[redacted]');
  return out;
}

export function createChannelActions(deps: {
  channels: ChannelsService;
  audit: Pick<AuditService, 'record'>;
  catalog: Pick<PriceCatalog, 'price' | 'group' | 'pricedModels'>;
}) {
  const { channels, audit } = deps;
  return {
    create: ({ principal, ip }: Caller, input: ChannelInput, asWritten: AsWritten) =>
      channels.create(input, (trx, ch) =>
        audit.record(
          {
            actor: actorOf(principal),
            action: 'channel.create',
            ip,
            changes: { channel_id: ch.id, ...auditable(asWritten) },
          },
          trx,
        ),
      ),

    list: async () => ({ data: await channels.list() }),
    get: (id: number) => channels.getJson(id),

    update: ({ principal, ip }: Caller, id: number, input: Partial<ChannelInput>, asWritten: AsWritten) =>
      channels.update(
        id,
        input,
        (trx) =>
          audit.record(
            {
              actor: actorOf(principal),
              action: 'channel.update',
              ip,
              changes: { channel_id: id, ...auditable(asWritten) },
            },
            trx,
          ),
        { actor: actorOf(principal) },
      ),

    async remove({ principal, ip }: Caller, id: number) {
      const ch = await channels.remove(id, (trx, removed) =>
        audit.record(
          {
            actor: actorOf(principal),
            action: 'channel.delete',
            ip,
            changes: { channel_id: id, name: removed.name },
          },
          trx,
        ),
      );
      return { ...ch, deleted: true };
    },

    /** A user sees their own group's models; an admin or the master key any group's (default: own / "default"). */
    models(principal: Principal, requested: string | undefined) {
      let group = requested;
      const user = userOf(principal);
      if (user && user.role !== 'admin') group = user.group_name;
      group ??= user ? user.group_name : 'default';
      return {
        group,
        // Only what the group's policy lets it use at all (billing/catalog.ts `group`).
        data: channels
          .modelsFor(group, deps.catalog.pricedModels())
          .filter((id) => deps.catalog.group(group)?.models?.allows(id) ?? true)
          .map((id) => ({ id, priced: deps.catalog.price(id) !== null })),
      };
    },

    /** Whether the upstream answers (lists its models); the credential never shows in an error. */
    async test(id: number): Promise<{ ok: boolean; latency_ms: number; error?: string }> {
      await channels.getJson(id);
      const ch = channels.get(id);
      if (!ch) return { ok: false, latency_ms: 0, error: 'channel is not loaded (credential unreadable?)' };
      if (ch.type === 'mock') return { ok: true, latency_ms: 0 };
      const started = Date.now();
      try {
        const { url, headers } = modelsRequest(ch);
        const res = await loadUndici().request(url, {
          method: 'GET',
          headers,
          headersTimeout: 10_000,
          bodyTimeout: 10_000,
        });
        await res.body.dump();
        const ok = res.statusCode < 400;
        return {
          ok,
          latency_ms: Date.now() - started,
          ...(ok ? {} : { error: `upstream answered HTTP ${res.statusCode}${testHint(ch, res.statusCode)}` }),
        };
      } catch (err) {
        return {
          ok: false,
          latency_ms: Date.now() - started,
          error: `could not reach upstream: ${redact((err as Error).message, ch.apiKey)}`,
        };
      }
    },
  };
}

export type ChannelActions = ReturnType<typeof createChannelActions>;

/**
 * The request that lists a channel's models, as its type's API takes it: OpenAI's under its
 * base URL with a Bearer token; Anthropic's and Gemini's under the origin (base-url.ts) with
 * their own credential headers.
 */
function modelsRequest(ch: { type: string; baseUrl: string; apiKey: string }): {
  url: string;
  headers: Record<string, string>;
} {
  const base = ch.baseUrl.replace(/\/+$/, '');
  switch (ch.type) {
    case 'anthropic':
      return {
        url: `${anthropicOrigin(base)}/v1/models`,
        headers: { 'x-api-key': ch.apiKey, 'anthropic-version': '2023-06-01' },
      };
    case 'gemini':
      return {
        url: `${geminiOrigin(base)}/v1beta/models`,
        headers: { 'x-goog-api-key': ch.apiKey },
      };
    default:
      return { url: `${base}/models`, headers: { authorization: `Bearer ${ch.apiKey}` } };
  }
}

/** An OpenAI-compatible base URL names the API's version (…/v1): without it, paths 404. */
function testHint(ch: { type: string; baseUrl: string }, status: number): string {
  if (status !== 404 || ch.type !== 'openai') return '';
  if (/\/v\d[\w.-]*\/v\d[\w.-]*\/?$/.test(ch.baseUrl))
    return ': the base URL repeats its version (…/v1/v1): keep one';
  if (/\/v\d[\w.-]*\/?$/.test(ch.baseUrl)) return '';
  return ': an OpenAI-compatible base URL usually ends in /v1 (e.g. https://api.openai.com/v1)';
}
