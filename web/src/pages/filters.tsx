// The filter bar shared by Logs and Usage: time range (presets or custom), key, model,
// status (logs only) and user (admins). Filters live in the URL so views can be linked.
import { useMemo, useState } from 'react';
import { api, type ApiKey, type Page, type UsageRow } from '../api';
import { toLocalInput } from '../format';
import { setQuery, useLocation } from '../router';
import { useAsync } from '../components/async';
import { FilterForm, SelectField, TextInput, userOptions } from '../components/controls';
import { useSession } from '../session';
import { useUsers } from './keyDialogs';

export const RANGES: { value: string; label: string; seconds: number | null }[] = [
  { value: '15m', label: 'Last 15 minutes', seconds: 15 * 60 },
  { value: '1h', label: 'Last hour', seconds: 3600 },
  { value: '24h', label: 'Last 24 hours', seconds: 86400 },
  { value: '7d', label: 'Last 7 days', seconds: 7 * 86400 },
  { value: '30d', label: 'Last 30 days', seconds: 30 * 86400 },
  { value: '90d', label: 'Last 90 days', seconds: 90 * 86400 },
  { value: 'all', label: 'All time', seconds: null },
  { value: 'custom', label: 'Custom range…', seconds: null },
];

export const STATUSES: { value: string; label: string }[] = [
  { value: '', label: 'Any status' },
  { value: 'ok', label: 'Succeeded (2xx)' },
  { value: 'error', label: 'Failed (4xx and 5xx)' },
  { value: '400', label: '400 Bad request' },
  { value: '401', label: '401 Unauthorized' },
  { value: '403', label: '403 Forbidden' },
  { value: '404', label: '404 Not found' },
  { value: '429', label: '429 Too many requests / quota' },
  { value: '500', label: '500 Server error' },
  { value: '502', label: '502 Upstream error' },
  { value: '504', label: '504 Upstream timeout' },
];

export interface FilterValues {
  range: string;
  from: string; // datetime-local value (custom range)
  to: string;
  key_id: string;
  model: string;
  status: string;
  user_id: string;
}

function useFilterValues(defaultRange: string): FilterValues {
  const { query } = useLocation();
  return {
    range: query.get('range') ?? defaultRange,
    from: query.get('from') ?? '',
    to: query.get('to') ?? '',
    key_id: query.get('key_id') ?? '',
    model: query.get('model') ?? '',
    status: query.get('status') ?? '',
    user_id: query.get('user_id') ?? '',
  };
}

/** The most keys the key filter lists (a key beyond them is reached by its page's link). */
const KEY_FILTER_MAX = 5_000;

/**
 * API query for the filters. `now` is passed in so presets are computed once per load
 * (and a "Refresh" recomputes them).
 */
export function apiParams(f: FilterValues, now: number, opts: { status?: boolean } = {}) {
  const p: Record<string, string | undefined> = {
    key_id: f.key_id || undefined,
    model: f.model || undefined,
    user_id: f.user_id || undefined,
  };
  if (opts.status) p.status = f.status || undefined;
  if (f.range === 'custom') {
    if (f.from) p.from = new Date(f.from).toISOString();
    if (f.to) p.to = new Date(f.to).toISOString();
  } else {
    const r = RANGES.find((x) => x.value === f.range);
    if (r?.seconds) p.from = new Date(now - r.seconds * 1000).toISOString();
  }
  return p;
}

/**
 * The filters in the URL and the API query for them. Relative ranges ("last 24 hours") are
 * computed once; `refresh` recomputes them from the current time.
 */
export function useFilters(defaultRange: string, opts: { status?: boolean } = {}) {
  const values = useFilterValues(defaultRange);
  const [now, setNow] = useState(() => Date.now());
  const params = apiParams(values, now, opts);
  return { values, now, params, refresh: () => setNow(Date.now()) };
}

export function FilterBar({
  values,
  withStatus,
  label,
  onRefresh,
}: {
  values: FilterValues;
  withStatus?: boolean;
  label: string;
  onRefresh: () => void;
}) {
  const { user } = useSession();
  const isAdmin = user.role === 'admin';
  const users = useUsers(isAdmin);

  // Every key of the account (the ones with traffic are not the newest ones), up to a bound.
  const keys = useAsync(
    async (signal) => {
      const all: ApiKey[] = [];
      let cursor: string | undefined;
      do {
        const page = await api.get<Page<ApiKey>>(
          '/api/keys',
          { limit: 500, cursor, user_id: values.user_id || undefined },
          signal,
        );
        all.push(...page.data);
        cursor = page.next_cursor ?? undefined;
      } while (cursor && all.length < KEY_FILTER_MAX);
      return all;
    },
    [values.user_id],
  );
  // the selected key may be beyond the first page of the list (deep link from a key page)
  const selectedKey = useAsync(
    async (signal) => {
      if (!values.key_id || keys.data?.some((k) => String(k.id) === values.key_id) !== false) return null;
      try {
        return await api.get<ApiKey>(`/api/keys/${encodeURIComponent(values.key_id)}`, undefined, signal);
      } catch {
        return null;
      }
    },
    [values.key_id, keys.data],
  );
  const keyOptions = useMemo(() => {
    const list = [...(keys.data ?? [])];
    if (selectedKey.data && !list.some((k) => k.id === selectedKey.data?.id)) list.unshift(selectedKey.data);
    const counts = new Map<string, number>();
    for (const k of list) counts.set(k.name, (counts.get(k.name) ?? 0) + 1);
    return list.map((k) => ({
      id: String(k.id),
      label: (counts.get(k.name) ?? 0) > 1 ? `${k.name} (${k.display})` : k.name,
    }));
  }, [keys.data, selectedKey.data]);

  const models = useAsync(async (signal) => {
    const [offered, used] = await Promise.all([
      api.get<{ data: { id: string }[] }>('/api/models', undefined, signal).then(
        (r) => r.data.map((m) => m.id),
        () => [] as string[],
      ),
      api.get<{ data: UsageRow[] }>('/api/usage', { group_by: 'model' }, signal).then(
        (r) => r.data.map((m) => m.model ?? '').filter(Boolean),
        () => [] as string[],
      ),
    ]);
    return [...new Set([...used, ...offered])].sort();
  }, []);
  const modelOptions = useMemo(() => {
    const list = models.data ?? [];
    return values.model && !list.includes(values.model) ? [values.model, ...list] : list;
  }, [models.data, values.model]);

  return (
    <FilterForm label={label}>
      <SelectField
        label="Time range"
        value={values.range}
        options={RANGES}
        onChange={(range) => {
          if (range === 'custom') {
            const now = new Date();
            setQuery({
              range,
              from: values.from || toLocalInput(new Date(now.getTime() - 86400_000)),
              to: values.to || toLocalInput(now),
            });
          } else setQuery({ range, from: null, to: null });
        }}
      />
      {values.range === 'custom' ? (
        <>
          <TextInput
            label="From"
            type="datetime-local"
            value={values.from}
            onChange={(v) => setQuery({ from: v || null })}
          />
          <TextInput
            label="To"
            type="datetime-local"
            value={values.to}
            onChange={(v) => setQuery({ to: v || null })}
          />
        </>
      ) : null}
      {isAdmin ? (
        <SelectField
          label="User"
          value={values.user_id}
          options={userOptions(users.data, 'Everyone')}
          onChange={(v) => setQuery({ user_id: v || null, key_id: null })}
        />
      ) : null}
      <SelectField
        label="Key"
        value={values.key_id}
        options={[
          { value: '', label: 'All keys' },
          ...keyOptions.map((k) => ({ value: k.id, label: k.label })),
        ]}
        onChange={(v) => setQuery({ key_id: v || null })}
      />
      <SelectField
        label="Model"
        value={values.model}
        options={[{ value: '', label: 'All models' }, ...modelOptions.map((m) => ({ value: m, label: m }))]}
        onChange={(v) => setQuery({ model: v || null })}
      />
      {withStatus ? (
        <SelectField
          label="Status"
          value={values.status}
          options={STATUSES}
          onChange={(v) => setQuery({ status: v || null })}
        />
      ) : null}
      <div className="filter-buttons">
        <button type="button" onClick={onRefresh}>
          Refresh
        </button>
      </div>
    </FilterForm>
  );
}
