// Notifications: what the gateway raised about your account and keys (a budget threshold
// crossed, a key about to expire or switched off, a leaked key); admins see every event,
// channel ones too. The same events go to MOLE_WEBHOOK_URL when it is set.
import { useMemo } from 'react';
import { api, type EventType, type GatewayEvent, type Page, type User } from '../api';
import { dateTime } from '../format';
import { Link, setQuery, useLocation } from '../router';
import { AsyncView, useAsync } from '../components/async';
import { FilterForm, SelectField, usePageSize } from '../components/controls';
import { DataTable, PageHead, TableCell, TableRow } from '../components/layout';
import { TableFoot, useCursorPager } from '../components/pager';
import { useIsAdmin } from '../session';
import { useUsers } from './keyDialogs';

const TYPES: { value: EventType; label: string }[] = [
  { value: 'budget.threshold', label: 'Budget threshold reached' },
  { value: 'key.expiring', label: 'Key expiring' },
  { value: 'key.auto_disabled', label: 'Key switched off' },
  { value: 'key.leaked', label: 'Key leaked' },
  { value: 'channel.disabled', label: 'Channel disabled' },
];
const typeLabel = (t: string) => TYPES.find((x) => x.value === t)?.label ?? t;

export function EventsPage() {
  const isAdmin = useIsAdmin();
  const users = useUsers(isAdmin);
  const accounts = useMemo(() => new Map((users.data ?? []).map((u) => [u.id, u])), [users.data]);
  const { query } = useLocation();
  const type = query.get('type') ?? '';
  const keyId = query.get('key_id') ?? '';
  const limit = usePageSize(50);
  const filterKey = JSON.stringify([type, keyId, limit]);
  const pager = useCursorPager(filterKey);
  const events = useAsync(
    (signal) =>
      api.get<Page<GatewayEvent>>(
        '/api/events',
        { type: type || undefined, key_id: keyId || undefined, limit, cursor: pager.cursor ?? undefined },
        signal,
      ),
    [filterKey, pager.cursor],
  );

  return (
    <div className="page">
      <PageHead
        title="Notifications"
        lead={
          isAdmin
            ? 'Everything the gateway raised: budget thresholds, expiring, switched-off and leaked keys, disabled channels.'
            : 'What the gateway raised about your account and keys: budget thresholds, expiring, switched-off and leaked keys.'
        }
      />
      <FilterForm label="Filter notifications">
        <SelectField
          label="Type"
          value={type}
          options={[
            { value: '', label: 'Any type' },
            ...TYPES.filter((t) => isAdmin || t.value !== 'channel.disabled'),
          ]}
          onChange={(v) => setQuery({ type: v || null })}
        />
        {keyId ? (
          <button type="button" onClick={() => setQuery({ key_id: null })}>
            Key #{keyId} ✕
          </button>
        ) : null}
      </FilterForm>
      {/* An empty list is still a table (with a row saying so), like the others. */}
      <AsyncView state={events} what="notifications">
        {(page) => (
          <>
            <EventsTable rows={page.data} accounts={isAdmin ? accounts : null} first={pager.page === 1} />
            <TableFoot label="Notifications" pager={pager} nextCursor={page.next_cursor} limit={limit} />
          </>
        )}
      </AsyncView>
    </div>
  );
}

function EventsTable({
  rows,
  accounts,
  first,
}: {
  rows: GatewayEvent[];
  /** Admins: the account column, each account named by its user (by id until loaded). */
  accounts: ReadonlyMap<number, User> | null;
  first: boolean;
}) {
  const showAccount = accounts !== null;
  return (
    <DataTable
      caption="Notifications, newest first"
      className="events-table"
      columns={['Time', 'Type', showAccount && 'Account', 'Key', 'Details', showAccount && 'Webhook']}
    >
      {rows.length === 0 ? (
        <TableRow>
          <TableCell colSpan={showAccount ? 6 : 4} className="muted">
            {first
              ? 'No notifications yet. Expiring keys, budget thresholds and similar events show up here.'
              : 'No more notifications.'}
          </TableCell>
        </TableRow>
      ) : null}
      {rows.map((e) => (
        <TableRow key={e.id}>
          <TableCell label="Time" className="nowrap">
            <time dateTime={e.created_at}>{dateTime(e.created_at)}</time>
          </TableCell>
          <TableCell label="Type">
            <span className="badge" title={e.type}>
              {typeLabel(e.type)}
            </span>
          </TableCell>
          {showAccount ? (
            <TableCell label="Account">
              {e.user_id === null ? (
                <span className="muted">admins</span>
              ) : (
                (accounts?.get(e.user_id)?.username ?? `#${e.user_id}`)
              )}
            </TableCell>
          ) : null}
          <TableCell label="Key" className="nowrap">
            {e.key_id === null ? (
              <span className="muted">—</span>
            ) : (
              <Link href={`/keys/${e.key_id}`}>{keyName(e) ?? `#${e.key_id}`}</Link>
            )}
          </TableCell>
          <TableCell label="Details">
            <Details data={e.data} />
          </TableCell>
          {showAccount ? (
            <TableCell label="Webhook" className="nowrap">
              <Delivery delivery={e.delivery} />
            </TableCell>
          ) : null}
        </TableRow>
      ))}
    </DataTable>
  );
}

const keyName = (e: GatewayEvent): string | null =>
  typeof e.data.key_name === 'string' ? e.data.key_name : null;

/** The event's data as "field: value" pairs (times shown in the reader's zone). */
function Details({ data }: { data: Record<string, unknown> }) {
  const entries = Object.entries(data).filter(([k]) => k !== 'key_name');
  if (entries.length === 0) return <span className="muted">—</span>;
  return (
    <ul className="event-details">
      {entries.map(([k, v]) => (
        <li key={k}>
          <span className="muted">{k.replace(/_/g, ' ')}:</span> {show(k, v)}
        </li>
      ))}
    </ul>
  );
}

function show(field: string, v: unknown): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string' && field.endsWith('_at') && !Number.isNaN(Date.parse(v))) return dateTime(v);
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** The webhook delivery (admins): delivered, or still being tried and why it failed. */
function Delivery({ delivery }: { delivery: GatewayEvent['delivery'] }) {
  if (!delivery) return <span className="muted">—</span>;
  if (delivery.state === 'delivered') return <span title={dateTime(delivery.delivered_at)}>delivered</span>;
  if (delivery.attempts === 0) return <span className="muted">queued</span>;
  return (
    <span className="error-text" title={`next try ${dateTime(delivery.next_attempt_at)}`}>
      retrying ({delivery.attempts} tries{delivery.last_error ? `, ${delivery.last_error}` : ''})
    </span>
  );
}
