// The landing page after sign-in: today's spend, requests and errors, the keys and models
// that spent most, and the latest failed calls. Admins see every account; a user sees their
// own (the API scopes GET /api/usage and GET /api/logs to the caller).
import { type ReactNode, useState } from 'react';
import { api, type LogEntry, type LogTotals, type Page, type UsageRow, type User } from '../api';
import { dateTime, int, timeOnly, toLocalInput, usdExact } from '../format';
import { Link } from '../router';
import { type AsyncState, AsyncView, useAsync } from '../components/async';
import { BudgetMeter, HttpStatus } from '../components/badges';
import { DataTable, PageHead, Section, TermList } from '../components/layout';
import { useSession } from '../session';

type KeyRow = UsageRow & { key_display?: string | null };

const TOP = 5;

/** Local midnight of the day `now` falls in. */
function startOfToday(now: number): Date {
  const d = new Date(now);
  d.setHours(0, 0, 0, 0);
  return d;
}

/** One of the "top today" tables: a first column naming the row, then requests and spend. */
function TopToday<R extends UsageRow>(props: {
  title: string;
  actions?: ReactNode;
  state: AsyncState<R[]>;
  what: string;
  first: string;
  rowKey: (r: R) => string;
  head: (r: R) => ReactNode;
}) {
  return (
    <Section title={props.title} actions={props.actions}>
      <AsyncView
        state={props.state}
        what={props.what}
        isEmpty={(d) => d.length === 0}
        empty={<p>No calls yet today.</p>}
      >
        {(d) => (
          <DataTable
            caption={props.title}
            columns={[props.first, { label: 'Requests', num: true }, { label: 'Spend', num: true }]}
          >
            {d.slice(0, TOP).map((r) => (
              <tr key={props.rowKey(r)}>
                <th scope="row">{props.head(r)}</th>
                <td className="num">{int(r.requests)}</td>
                <td className="num">{usdExact(r.cost)}</td>
              </tr>
            ))}
          </DataTable>
        )}
      </AsyncView>
    </Section>
  );
}

export default function HomePage() {
  const session = useSession();
  const { user } = session;
  const isAdmin = user.role === 'admin';
  const [now, setNow] = useState(() => Date.now());
  const midnight = startOfToday(now);
  const from = midnight.toISOString();

  const byKey = useAsync(
    (signal) =>
      api.get<{ data: KeyRow[] }>('/api/usage', { group_by: 'key', from }, signal).then((r) => r.data),
    [from, now],
  );
  const byModel = useAsync(
    (signal) =>
      api.get<{ data: UsageRow[] }>('/api/usage', { group_by: 'model', from }, signal).then((r) => r.data),
    [from, now],
  );
  // failed calls today: their count (totals) and the latest few
  const errors = useAsync(
    (signal) =>
      api.get<Page<LogEntry> & { totals?: LogTotals }>(
        '/api/logs',
        { from, status: 'error', limit: TOP, totals: 1 },
        signal,
      ),
    [from, now],
  );

  // The account's own budget against its spend this period (GET /api/users/:id adds budget_usage).
  const account = useAsync(
    (signal) =>
      user.budget ? api.get<User>(`/api/users/${user.id}`, undefined, signal) : Promise.resolve(null),
    [user.id, user.budget?.amount, user.budget?.period, now],
  );

  const requests = byKey.data?.reduce((n, r) => n + r.requests, 0);
  const spend = byKey.data?.reduce((n, r) => n + r.cost, 0);
  const failed = errors.data?.totals?.requests;
  const logsToday = `/logs?range=custom&from=${encodeURIComponent(toLocalInput(midnight))}`;

  return (
    <div className="page">
      <PageHead
        title="Today"
        lead={
          <>
            {isAdmin ? 'Every account' : 'Your keys'} since midnight (
            <time dateTime={from}>{dateTime(from)}</time>).
          </>
        }
      >
        <button
          type="button"
          onClick={() => {
            setNow(Date.now());
            void session.refresh(); // the balance
          }}
        >
          Refresh
        </button>
      </PageHead>

      <TermList
        className="totals today"
        label="Today at a glance"
        items={[
          ['Spend today', spend === undefined ? '…' : usdExact(spend)],
          ['Requests today', requests === undefined ? '…' : int(requests)],
          [
            'Errors today',
            failed === undefined ? (
              '…'
            ) : (
              <span key="e" className={failed > 0 ? 'error-text' : undefined}>
                {int(failed)}
                {requests ? ` (${Math.round((failed / requests) * 1000) / 10}%)` : ''}
              </span>
            ),
          ],
          [isAdmin ? 'Your balance' : 'Balance', usdExact(user.balance)],
          ...(user.budget
            ? ([
                [
                  isAdmin ? 'Your budget' : 'Budget',
                  <BudgetMeter key="budget" usage={account.data?.budget_usage} />,
                ],
              ] as [string, ReactNode][])
            : []),
        ]}
      />
      {!isAdmin && user.balance <= 0 ? (
        <p className="notice warn" role="status">
          Your balance is {usdExact(user.balance)}: calls with your keys are refused with{' '}
          <code>insufficient_quota</code> until an administrator tops your account up.
        </p>
      ) : null}

      <div className="home-grid">
        <TopToday
          title="Top keys today"
          actions={<Link href="/usage">Spend breakdown</Link>}
          state={byKey}
          what="today’s spend by key"
          first="Key"
          rowKey={(r) => String(r.key_id)}
          head={(r) => (
            <>
              <Link href={`/keys/${encodeURIComponent(r.key_id ?? '')}`}>{r.key_name ?? r.key_id}</Link>
              {r.key_display ? <code className="key-display muted">{r.key_display}</code> : null}
            </>
          )}
        />
        <TopToday
          title="Top models today"
          state={byModel}
          what="today’s spend by model"
          first="Model"
          rowKey={(r) => r.model ?? ''}
          head={(r) => r.model ?? <span className="muted">no model</span>}
        />
      </div>

      <Section
        title="Latest failed calls"
        actions={<Link href={`${logsToday}&status=error`}>Every failed call today</Link>}
      >
        <AsyncView
          state={errors}
          what="today’s failed calls"
          isEmpty={(d) => d.data.length === 0}
          empty={<p>No failed calls today.</p>}
        >
          {(d) => (
            <DataTable
              caption="Latest failed calls today"
              columns={['Time', 'Key', 'Model', 'Status']}
              className="home-errors"
            >
              {d.data.map((l) => (
                <tr key={l.id}>
                  <td className="nowrap">
                    <time dateTime={l.created_at} title={dateTime(l.created_at)}>
                      {timeOnly(l.created_at)}
                    </time>
                  </td>
                  <td>{l.key_name ?? `#${l.key_id}`}</td>
                  <td>{l.model ?? '—'}</td>
                  <td>
                    <HttpStatus status={l.status} code={l.error_code} />
                  </td>
                </tr>
              ))}
            </DataTable>
          )}
        </AsyncView>
      </Section>
    </div>
  );
}
