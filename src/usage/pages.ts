// Paging GET /api/usage. Sums per group are ordered by cost, so a page at an offset has to
// group the whole range again (150–175 ms a 1,000-group page over 100k keys here), and between
// two pages traffic moves keys across the page boundary: one is listed twice, another never.
// So the first page of a walk groups everything once and keeps the ordered sums in memory (a
// snapshot); `next_cursor` names it (`<offset>.<snapshot>`), and the later pages are slices of
// it: every group once, with the sums as of the first page. A snapshot answers only the query
// that made it (grouping and filter, the caller's scope included). One that has expired or was
// made by another instance is not found: that page, and the rest of its walk, is grouped at
// its offset as before (bare `<offset>` cursors), so a walk that hops between instances costs
// no more than it did.
import { randomBytes } from 'node:crypto';
import type { Clock } from '../shared/clock.js';
import type { LogFilter, UsageGroup, UsageQueries, UsageSums } from './queries.js';

/** A `next_cursor` of GET /api/usage: an offset, and the snapshot it is an offset into. */
export interface UsageCursor {
  offset: number;
  snapshot?: string;
}

/** `<offset>` or `<offset>.<snapshot>`, as `next_cursor` spells it. */
export const USAGE_CURSOR = /^([1-9]\d{0,9})(?:\.([A-Za-z0-9_-]{16}))?$/;

export function parseUsageCursor(text: string): UsageCursor | null {
  const m = USAGE_CURSOR.exec(text);
  if (!m) return null;
  return m[2] ? { offset: Number(m[1]), snapshot: m[2] } : { offset: Number(m[1]) };
}

export interface UsagePagesOptions {
  now: Clock;
  /** How long a snapshot answers its walk's pages. */
  ttlMs?: number;
  /** Groups one snapshot may hold: a larger result is paged by offset, grouped each time. */
  maxGroups?: number;
  /** Groups all snapshots together may hold (the oldest go first). */
  maxTotalGroups?: number;
}

interface Snapshot {
  query: string;
  groups: UsageSums[];
  expiresAt: number;
}

export function createUsagePages(
  q: Pick<UsageQueries, 'groups' | 'present' | 'usage'>,
  { now, ttlMs = 10 * 60_000, maxGroups = 200_000, maxTotalGroups = 400_000 }: UsagePagesOptions,
) {
  /** By name, oldest first (a Map keeps insertion order). */
  const snapshots = new Map<string, Snapshot>();
  let held = 0;

  const drop = (name: string, s: Snapshot) => {
    snapshots.delete(name);
    held -= s.groups.length;
  };

  function sweep(t: number): void {
    for (const [name, s] of snapshots) if (s.expiresAt <= t) drop(name, s);
  }

  function keep(query: string, groups: UsageSums[]): string {
    const t = now();
    sweep(t);
    for (const [name, s] of snapshots) {
      if (held + groups.length <= maxTotalGroups) break;
      drop(name, s);
    }
    const name = randomBytes(12).toString('base64url');
    snapshots.set(name, { query, groups, expiresAt: t + ttlMs });
    held += groups.length;
    return name;
  }

  function find(name: string | undefined, query: string): Snapshot | undefined {
    if (name === undefined) return undefined;
    const s = snapshots.get(name);
    if (!s) return undefined;
    if (s.expiresAt <= now()) {
      drop(name, s);
      return undefined;
    }
    // Another query's snapshot (another filter, or another caller's scope) is not this one's.
    return s.query === query ? s : undefined;
  }

  return {
    async page(
      groupBy: UsageGroup,
      f: Omit<LogFilter, 'status'>,
      limit: number,
      cursor: UsageCursor = { offset: 0 },
    ) {
      // Every field of the filter: a field added to it later must not let one query's snapshot
      // answer another's.
      const query = JSON.stringify([groupBy, f]);
      const { offset } = cursor;
      let name = cursor.snapshot;
      let groups = find(name, query)?.groups;
      if (!groups) {
        // A later page whose snapshot is not here (expired, or made by another instance behind
        // the same load balancer), or a bare offset: grouped at its offset, as before snapshots.
        if (offset > 0 || limit >= maxGroups) return q.usage(groupBy, f, { limit, offset });
        const all = await q.groups(groupBy, f, { limit: maxGroups + 1, offset: 0 });
        if (all.length > maxGroups) {
          // Too many to keep: this first page from them, the later ones by offset.
          return {
            data: await q.present(groupBy, all.slice(0, limit)),
            next_cursor: String(limit),
          };
        }
        groups = all;
        // Only a walk with pages to come needs the snapshot.
        if (limit < all.length) name = keep(query, all);
      }
      const more = offset + limit < groups.length;
      return {
        data: await q.present(groupBy, groups.slice(offset, offset + limit)),
        next_cursor: more ? `${offset + limit}.${name}` : null,
      };
    },
    /** Snapshots held and the groups in them (tests). */
    stats: () => ({ snapshots: snapshots.size, groups: held }),
  };
}

export type UsagePages = ReturnType<typeof createUsagePages>;
