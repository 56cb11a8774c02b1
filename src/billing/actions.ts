// What a caller of the management API may do with prices and group multipliers: read them
// (anyone signed in; a user sees only their own group), change them (admins; the routes
// declare it), each change with its audit row in the same transaction. The routes only
// validate input and call these.
import type { AuditService } from '../audit/service.js';
import { notFound } from '../http/errors.js';
import { actorOf, isAdmin, type Principal, userOf } from '../http/principal.js';
import type { GroupPatch, PriceCatalog } from './catalog.js';
import type { Price } from './money.js';

export interface Caller {
  principal: Principal;
  ip: string;
}

/** A price as the caller wrote it (USD per 1M tokens), for the audit trail. */
export interface PriceInUsd {
  input: number;
  output: number;
  cached_input?: number | null | undefined;
  cache_write?: number | null | undefined;
  cache_write_1h?: number | null | undefined;
  web_search_per_1k?: number | null | undefined;
  priority_multiplier?: number | null | undefined;
}

export function createBillingActions(deps: { catalog: PriceCatalog; audit: Pick<AuditService, 'record'> }) {
  const { catalog, audit } = deps;
  return {
    listPrices: async () => ({ data: catalog.listPrices() }),
    /** An admin sees every group; a user only their own (its limits and models bind their keys). */
    listGroups: async (principal: Principal) => {
      const groups = catalog.listGroups();
      const user = isAdmin(principal) ? null : userOf(principal);
      return { data: user ? groups.filter((g) => g.name === user.group_name) : groups };
    },

    setPrice: ({ principal, ip }: Caller, model: string, price: Price, asWritten: PriceInUsd) =>
      catalog.setPrice(model, price, (trx) =>
        audit.record(
          {
            actor: actorOf(principal),
            action: 'price.set',
            ip,
            changes: {
              model,
              input: asWritten.input,
              output: asWritten.output,
              cached_input: asWritten.cached_input ?? null,
              cache_write: asWritten.cache_write ?? null,
              cache_write_1h: asWritten.cache_write_1h ?? null,
              web_search_per_1k: asWritten.web_search_per_1k ?? null,
              priority_multiplier: asWritten.priority_multiplier ?? null,
            },
          },
          trx,
        ),
      ),

    async deletePrice({ principal, ip }: Caller, model: string) {
      const deleted = await catalog.deletePrice(model, (trx) =>
        audit.record({ actor: actorOf(principal), action: 'price.delete', ip, changes: { model } }, trx),
      );
      if (!deleted) throw notFound('price');
      return { model, deleted: true };
    },

    /** `asWritten` is the change as the caller wrote it (API field names), for the audit trail. */
    setGroup: (
      { principal, ip }: Caller,
      name: string,
      patch: GroupPatch,
      asWritten: Record<string, unknown>,
    ) =>
      catalog.setGroup(name, patch, (trx) =>
        audit.record(
          { actor: actorOf(principal), action: 'group.set', ip, changes: { group: name, ...asWritten } },
          trx,
        ),
      ),
  };
}

export type BillingActions = ReturnType<typeof createBillingActions>;
