import { api, type UsageRow } from '../api';
import { dateOnly, int, usdExact } from '../format';
import { Link, setQuery, useLocation } from '../router';
import { AsyncView, useAsync } from '../components/async';
import { ExportCsvButton } from '../components/controls';
import { toDaySeries } from '../components/chartData';
import { LazyUsageChart } from '../components/LazyUsageChart';
import { DataTable, FilterTotals, PageHead } from '../components/layout';
import { FilterBar, useFilters } from './filters';

type Breakdown = 'key' | 'model' | 'day';
/** By key, rows also carry the key's masked form: two keys may share a name. */
type Row = UsageRow & { key_display?: string | null };
const BREAKDOWNS: { value: Breakdown; label: string }[] = [
  { value: 'key', label: 'By key' },
  { value: 'model', label: 'By model' },
  { value: 'day', label: 'By day' },
];

export default function UsagePage() {
  const { values, now, params, refresh } = useFilters('30d');
  const { query } = useLocation();
  const breakdown = (BREAKDOWNS.find((b) => b.value === query.get('by'))?.value ?? 'key') as Breakdown;
  const paramKey = JSON.stringify(params);

  const daily = useAsync(
    (signal) =>
      api.get<{ data: UsageRow[] }>('/api/usage', { ...params, group_by: 'day' }, signal).then((r) => r.data),
    [paramKey],
  );
  const table = useAsync(
    (signal) =>
      breakdown === 'day'
        ? Promise.resolve(null)
        : api
            .get<{ data: Row[] }>('/api/usage', { ...params, group_by: breakdown }, signal)
            .then((r) => r.data),
    [paramKey, breakdown],
  );
  const totals = (daily.data ?? []).reduce(
    (t, r) => ({
      requests: t.requests + r.requests,
      prompt: t.prompt + r.prompt_tokens,
      completion: t.completion + r.completion_tokens,
      cost: t.cost + r.cost,
    }),
    { requests: 0, prompt: 0, completion: 0, cost: 0 },
  );

  const rows: Row[] =
    breakdown === 'day'
      ? [...(daily.data ?? [])].sort((a, b) => (b.day ?? '').localeCompare(a.day ?? ''))
      : (table.data ?? []);
  const tableState = breakdown === 'day' ? daily : table;
  const maxCost = Math.max(0, ...rows.map((r) => r.cost));

  return (
    <div className="page">
      <PageHead title="Usage" lead="What your keys spent, and on which models.">
        <ExportCsvButton
          path="/api/usage"
          query={{ ...params, group_by: breakdown }}
          name={`usage-by-${breakdown}`}
        />
      </PageHead>
      <FilterBar values={values} label="Filter usage" onRefresh={refresh} />

      <section className="card" aria-labelledby="usage-chart-title">
        <div className="card-head">
          <h2 id="usage-chart-title">Spend and requests over time</h2>
        </div>
        {daily.data ? (
          <FilterTotals
            items={[
              ['Spend', usdExact(totals.cost)],
              ['Requests', int(totals.requests)],
              ['Prompt tokens', int(totals.prompt)],
              ['Completion tokens', int(totals.completion)],
            ]}
          />
        ) : null}
        <AsyncView
          state={daily}
          what="usage"
          isEmpty={(d) => d.length === 0}
          empty={<p>No usage in this period yet.</p>}
        >
          {(d) => (
            <LazyUsageChart
              points={toDaySeries(
                d,
                params.from,
                params.to ?? (params.from ? new Date(now).toISOString() : undefined),
              )}
            />
          )}
        </AsyncView>
      </section>

      <section className="card" aria-labelledby="usage-table-title">
        <div className="card-head">
          <h2 id="usage-table-title">Breakdown</h2>
          <fieldset className="segmented" aria-label="Group the table">
            {BREAKDOWNS.map((b) => (
              <button
                key={b.value}
                type="button"
                aria-pressed={breakdown === b.value}
                onClick={() => setQuery({ by: b.value === 'key' ? null : b.value })}
              >
                {b.label}
              </button>
            ))}
          </fieldset>
        </div>
        <AsyncView
          state={tableState}
          what="usage"
          isEmpty={() => rows.length === 0}
          empty={<p>No usage in this period yet.</p>}
        >
          {() => (
            <DataTable
              caption={<>Usage {BREAKDOWNS.find((b) => b.value === breakdown)?.label.toLowerCase()}</>}
              columns={[
                breakdown === 'key' ? 'Key' : breakdown === 'model' ? 'Model' : 'Day',
                { label: 'Requests', num: true },
                { label: 'Prompt tokens', num: true },
                { label: 'Completion tokens', num: true },
                { label: 'Spend', num: true },
                { label: 'Share of spend', hidden: true },
              ]}
            >
              {rows.map((r) => (
                <tr key={`${breakdown}:${r.key_id ?? r.model ?? r.day ?? ''}`}>
                  <th scope="row">
                    {breakdown === 'key' ? (
                      <>
                        <Link href={`/keys/${encodeURIComponent(r.key_id ?? '')}`}>
                          {r.key_name ?? r.key_id}
                        </Link>
                        {r.key_display ? <code className="key-display muted">{r.key_display}</code> : null}
                      </>
                    ) : breakdown === 'model' ? (
                      (r.model ?? <span className="muted">no model (key and model lists)</span>)
                    ) : (
                      dateOnly(r.day)
                    )}
                  </th>
                  <td className="num">{int(r.requests)}</td>
                  <td className="num">{int(r.prompt_tokens)}</td>
                  <td className="num">{int(r.completion_tokens)}</td>
                  <td className="num">{usdExact(r.cost)}</td>
                  <td className="share-cell">
                    <span className="share" aria-hidden="true">
                      <span style={{ width: `${maxCost > 0 ? (r.cost / maxCost) * 100 : 0}%` }} />
                    </span>
                  </td>
                </tr>
              ))}
            </DataTable>
          )}
        </AsyncView>
      </section>
    </div>
  );
}
