import { useState, type ReactNode } from 'react';
import { api, type Channel, type LogAttempt, type LogEntry, type LogTotals, type Page } from '../api';
import { dateTime, int, ms, usdExact } from '../format';
import { Link } from '../router';
import { AsyncView, useAsync } from '../components/async';
import { HttpStatus } from '../components/badges';
import { Modal } from '../components/dialogs';
import { TableFoot, useCursorPager } from '../components/pager';
import { ExportCsvButton, usePageSize } from '../components/controls';
import { FilterTotals, PageHead, TermList } from '../components/layout';
import { useIsAdmin } from '../session';
import { FilterBar, useFilters } from './filters';

export function LogsPage() {
  const { values, params, refresh } = useFilters('24h', { status: true });
  const limit = usePageSize(50);
  const filterKey = JSON.stringify([params, limit]);
  const pager = useCursorPager(filterKey);
  const logs = useAsync(
    (signal) =>
      api.get<Page<LogEntry> & { totals?: LogTotals }>(
        '/api/logs',
        { ...params, limit, cursor: pager.cursor ?? undefined, totals: pager.page === 1 ? 1 : undefined },
        signal,
      ),
    [filterKey, pager.cursor],
  );
  // totals come with the first page; keep them while paging
  const [totals, setTotals] = useState<LogTotals | null>(null);
  const [seen, setSeen] = useState<unknown>(null);
  if (logs.data && logs.data !== seen) {
    setSeen(logs.data);
    if (logs.data.totals) setTotals(logs.data.totals);
    else if (pager.page === 1) setTotals(null);
  }

  return (
    <div className="page">
      <PageHead
        title="Call logs"
        lead="Every relay request that presented a valid key, refused ones included."
      >
        <ExportCsvButton path="/api/logs" query={params} name="logs" />
      </PageHead>
      <FilterBar
        values={values}
        withStatus
        label="Filter logs"
        onRefresh={() => {
          refresh();
          pager.first();
          logs.reload();
        }}
      />
      {totals ? <TotalsBar totals={totals} /> : null}
      <AsyncView
        state={logs}
        what="logs"
        isEmpty={(d) => d.data.length === 0 && pager.page === 1}
        empty={<p>No calls match these filters. Calls made with your keys show up here within a second.</p>}
      >
        {(page) => (
          <>
            <LogsTable rows={page.data} />
            <TableFoot label="Logs" pager={pager} nextCursor={page.next_cursor} limit={limit} />
          </>
        )}
      </AsyncView>
    </div>
  );
}

function TotalsBar({ totals }: { totals: LogTotals }) {
  return (
    <FilterTotals
      items={[
        ['Requests', int(totals.requests)],
        ['Prompt tokens', int(totals.prompt_tokens)],
        ['Cached tokens', int(totals.cached_tokens)],
        ['Completion tokens', int(totals.completion_tokens)],
        ['Cost', usdExact(totals.cost)],
      ]}
    />
  );
}

/** Header cells that span both header rows (all but the token columns). */
function headCells(labels: (string | null)[], className?: string) {
  return labels.map((label) =>
    label ? (
      <th key={label} scope="col" rowSpan={2} className={className}>
        {label}
      </th>
    ) : null,
  );
}

export function LogsTable({ rows, compact }: { rows: LogEntry[]; compact?: boolean }) {
  const [open, setOpen] = useState<LogEntry | null>(null);
  return (
    <>
      <div className="table-wrap">
        <table className="data logs-table">
          <caption className="sr-only">Call logs, newest first</caption>
          <thead>
            <tr>
              {headCells(['Time', compact ? null : 'Key', 'Model'])}
              <th scope="colgroup" colSpan={3} className="group-head">
                Tokens
              </th>
              {headCells(['Cost', 'Latency', 'First token'], 'num')}
              {headCells(['Status', 'IP'])}
              <th scope="col" rowSpan={2}>
                <span className="sr-only">Details</span>
              </th>
            </tr>
            <tr>
              {['In', 'Cached', 'Out'].map((label) => (
                <th key={label} scope="col" className="num sub-head">
                  {label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.length === 0 ? (
              <tr>
                <td colSpan={compact ? 11 : 12} className="muted">
                  No more calls.
                </td>
              </tr>
            ) : null}
            {rows.map((l) => (
              <tr key={l.id}>
                <td className="nowrap">
                  <time dateTime={l.created_at}>{dateTime(l.created_at)}</time>
                </td>
                {compact ? null : (
                  <td className="nowrap">
                    <Link href={`/keys/${encodeURIComponent(l.key_id)}`}>{l.key_name ?? `#${l.key_id}`}</Link>
                    {l.ephemeral_id != null ? (
                      <span
                        className="tag"
                        title={`Made by ephemeral key #${l.ephemeral_id}, billed to this key`}
                      >
                        ephemeral #{l.ephemeral_id}
                      </span>
                    ) : null}
                  </td>
                )}
                <td className="nowrap">
                  {l.model ?? <span className="muted">—</span>}
                  {l.stream ? <span className="tag">stream</span> : null}
                </td>
                <td className="num">{int(l.prompt_tokens)}</td>
                <td className="num">{int(l.cached_tokens)}</td>
                <td className="num">
                  {int(l.completion_tokens)}
                  {l.estimated ? (
                    <abbr className="tag" title="Counted locally: the upstream did not report usage">
                      est.
                    </abbr>
                  ) : null}
                </td>
                <td className="num">{usdExact(l.cost)}</td>
                <td className="num">{ms(l.latency_ms)}</td>
                <td className="num">{l.stream || l.ttft_ms != null ? ms(l.ttft_ms) : '—'}</td>
                <td>
                  <HttpStatus status={l.status} code={l.error_code} />
                </td>
                <td className="nowrap">{l.ip ?? '—'}</td>
                <td>
                  <button type="button" className="link" onClick={() => setOpen(l)}>
                    Details
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {open ? <LogDrawer log={open} onClose={() => setOpen(null)} /> : null}
    </>
  );
}

/** Channel names by id, for admins (users may not list channels; attempts carry names anyway). */
function useChannelNames(enabled: boolean) {
  return useAsync(
    async (signal) => {
      if (!enabled) return new Map<number, string>();
      try {
        const r = await api.get<{ data: Channel[] }>('/api/channels', undefined, signal);
        return new Map(r.data.map((c) => [c.id, c.name]));
      } catch {
        return new Map<number, string>();
      }
    },
    [enabled],
  );
}

/** "offline mock (#2)": a channel by name, from the log's attempts or the channel list. */
function channelLabel(id: number | null, log: LogEntry, names: Map<number, string> | null): string {
  if (id === null) return '—';
  const name =
    [...(log.attempts ?? [])].reverse().find((a) => a.channel_id === id && a.channel_name)?.channel_name ??
    names?.get(id);
  return name ? `${name} (#${id})` : `#${id}`;
}

function attemptFailed(a: LogAttempt): boolean {
  return a.error != null || a.status == null || a.status >= 400;
}

function LogDrawer({ log, onClose }: { log: LogEntry; onClose: () => void }) {
  const isAdmin = useIsAdmin();
  const names = useChannelNames(isAdmin).data ?? null;
  const attempts = log.attempts ?? [];
  const failed = attempts.filter(attemptFailed).length;
  const rows: [string, ReactNode][] = [
    ['Time', dateTime(log.created_at)],
    ['Request ID', <code key="r">{log.request_id}</code>],
    ['Key', log.key_name ? `${log.key_name} (${log.key_id})` : log.key_id],
    [
      'Ephemeral key',
      log.ephemeral_id != null ? `#${log.ephemeral_id} (minted by this key, billed to it)` : '—',
    ],
    ['Protocol', log.protocol ?? 'openai'],
    ['Endpoint', log.endpoint ?? '—'],
    ['Model', log.model ?? '—'],
    ['Upstream model', log.upstream_model ?? '—'],
    ['Channel', channelLabel(log.channel_id, log, names)],
    ['Streamed', log.stream ? 'yes' : 'no'],
    ['HTTP status', String(log.status)],
    ['Error code', log.error_code ?? '—'],
    ['Prompt tokens', int(log.prompt_tokens)],
    ['Cached prompt tokens', int(log.cached_tokens)],
    ['Cache-write prompt tokens', int(log.cache_write_tokens ?? 0)],
    ['Of them kept for an hour', int(log.cache_write_1h_tokens ?? 0)],
    ['Completion tokens', int(log.completion_tokens)],
    ['Reasoning tokens', int(log.reasoning_tokens ?? 0)],
    ["Web searches (the provider's search tool)", int(log.web_searches ?? 0)],
    ['Service tier', log.service_tier ?? '—'],
    ['Usage source', log.estimated ? 'estimated locally' : 'reported by the upstream'],
    ['Cost', usdExact(log.cost)],
    ['Latency', ms(log.latency_ms)],
    ['Time to first token', ms(log.ttft_ms)],
    ['Client IP', log.ip ?? '—'],
    ['User ID', log.user_id],
    [
      failed ? `Upstream attempts (${failed} failed)` : 'Upstream attempts',
      attempts.length ? (
        <ol key="a" className="attempts">
          {attempts.map((a, i) => {
            const bad = attemptFailed(a);
            return (
              // biome-ignore lint/suspicious/noArrayIndexKey: a fixed list, in the order tried
              <li key={i} className={bad ? 'failed' : undefined}>
                <strong>{channelLabel(a.channel_id, log, names)}</strong>:{' '}
                <span className={bad ? 'error-text' : 'ok-text'}>
                  {bad ? 'failed' : 'answered'}
                  {a.status != null ? `, HTTP ${a.status}` : ''}
                  {a.error ? ` (${a.error})` : ''}
                </span>
                , {ms(a.latency_ms)}
              </li>
            );
          })}
        </ol>
      ) : (
        '—'
      ),
    ],
  ];
  return (
    <Modal title="Call details" onClose={onClose} variant="drawer">
      <TermList className="details" items={rows} />
    </Modal>
  );
}
