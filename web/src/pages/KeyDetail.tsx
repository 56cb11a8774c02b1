import { useState } from 'react';
import {
  api,
  ApiError,
  type ApiKey,
  type AuditEntry,
  type LogEntry,
  type Page,
  type UsageRow,
  type User,
} from '../api';
import { dateTime, relative } from '../format';
import { Link, navigate } from '../router';
import { AsyncView, useAsync } from '../components/async';
import { BudgetMeter, QuotaMeter, StatusBadge } from '../components/badges';
import { toDaySeries } from '../components/chartData';
import { LazyUsageChart } from '../components/LazyUsageChart';
import { Section, TermList } from '../components/layout';
import { LogsTable } from './Logs';
import { KeyActions } from './keyDialogs';
import { useSession } from '../session';

export function KeyDetailPage({ id }: { id: string }) {
  const [version, setVersion] = useState(0);
  const key = useAsync(
    (signal) => api.get<ApiKey>(`/api/keys/${encodeURIComponent(id)}`, undefined, signal),
    [id, version],
  );
  const [since] = useState(() => new Date(Date.now() - 30 * 86400_000).toISOString());

  if (key.error instanceof ApiError && key.error.status === 404) {
    return (
      <div className="page">
        <p>
          <Link href="/keys">← Back to the key list</Link>
        </p>
        <div className="empty">
          <h1>Key not found</h1>
          <p>It may have been deleted, or it belongs to someone else.</p>
        </div>
      </div>
    );
  }

  return (
    <div className="page">
      <p className="crumbs">
        <Link href="/keys">← Back to the key list</Link>
      </p>
      <AsyncView state={key} what="the key">
        {(k) => (
          <>
            <div className="page-head">
              <div>
                <h1 className="key-title">{k.name}</h1>
                <p className="muted">
                  <code className="masked">{k.display}</code>{' '}
                  <StatusBadge status={k.status} locked={k.locked} />
                </p>
              </div>
              <KeyActions
                apiKey={k}
                onChanged={() => setVersion((v) => v + 1)}
                onDeleted={() => navigate('/keys')}
              />
            </div>
            <TermList
              className="facts"
              items={[
                ['Used / quota', <QuotaMeter key="quota" used={k.used} quota={k.quota} />],
                [
                  'Budget',
                  k.budget ? (
                    <BudgetMeter key="budget" usage={k.budget_usage} />
                  ) : (
                    'none of its own (the group’s default applies, if it has one)'
                  ),
                ],
                ['Models', k.models?.length ? k.models.join(', ') : 'every model its group offers'],
                [
                  'Allowed IPs',
                  k.allowed_ips === null
                    ? 'any IP'
                    : k.allowed_ips.length
                      ? k.allowed_ips.join(', ')
                      : 'no IP (blocked)',
                ],
                [
                  'Allowed origins',
                  k.allowed_origins?.length ? k.allowed_origins.join(', ') : 'none (browsers refused)',
                ],
                ['Group', k.group ?? <OwnerGroup userId={k.user_id} />],
                ['Rate limit', k.rpm ? `${k.rpm} requests per minute` : 'none of its own'],
                ['Token limit', k.tpm ? `${k.tpm.toLocaleString()} tokens per minute` : 'none of its own'],
                [
                  'Concurrency',
                  k.max_concurrency ? `${k.max_concurrency} requests at once` : 'none of its own',
                ],
                ['Expires', k.expires_at ? dateTime(k.expires_at) : 'never'],
                ['Created', dateTime(k.created_at)],
                [
                  'Last used',
                  <>
                    {k.last_used_at ? `${relative(k.last_used_at)} (${dateTime(k.last_used_at)})` : 'never'}
                    {k.last_used_ip ? ` from ${k.last_used_ip}` : ''}
                  </>,
                ],
              ]}
            />
            <KeyUsage keyId={String(k.id)} since={since} />
            <KeyLogs keyId={String(k.id)} />
            <KeyAudit keyId={String(k.id)} version={version} />
          </>
        )}
      </AsyncView>
    </div>
  );
}

/** A key without its own group uses its owner's. */
function OwnerGroup({ userId }: { userId: number }) {
  const { user } = useSession();
  const owner = useAsync(
    (signal) =>
      userId === user.id ? Promise.resolve(user) : api.get<User>(`/api/users/${userId}`, undefined, signal),
    [userId],
  );
  return <>{owner.data ? `${owner.data.group} (the owner’s)` : 'the owner’s group'}</>;
}

function KeyUsage({ keyId, since }: { keyId: string; since: string }) {
  const usage = useAsync(
    (signal) =>
      api
        .get<{ data: UsageRow[] }>('/api/usage', { group_by: 'day', key_id: keyId, from: since }, signal)
        .then((r) => r.data),
    [keyId, since],
  );
  return (
    <Section
      title="Usage, last 30 days"
      actions={<Link href={`/usage?key_id=${encodeURIComponent(keyId)}`}>Full breakdown</Link>}
    >
      <AsyncView
        state={usage}
        what="usage"
        isEmpty={(d) => d.length === 0}
        empty={<p>No calls with this key in the last 30 days.</p>}
      >
        {(d) => <LazyUsageChart points={toDaySeries(d, since, new Date().toISOString())} height={220} />}
      </AsyncView>
    </Section>
  );
}

function KeyLogs({ keyId }: { keyId: string }) {
  const logs = useAsync(
    (signal) => api.get<Page<LogEntry>>('/api/logs', { key_id: keyId, limit: 20 }, signal),
    [keyId],
  );
  return (
    <Section
      title="Recent calls"
      actions={
        <>
          <button type="button" onClick={logs.reload}>
            Refresh
          </button>
          <Link href={`/logs?key_id=${encodeURIComponent(keyId)}&range=all`}>Every call with this key</Link>
        </>
      }
    >
      <AsyncView
        state={logs}
        what="calls"
        isEmpty={(d) => d.data.length === 0}
        empty={<p>This key has not been used yet.</p>}
      >
        {(d) => <LogsTable rows={d.data} compact />}
      </AsyncView>
    </Section>
  );
}

function describeChanges(changes: unknown): string {
  if (changes === null || changes === undefined) return '';
  if (typeof changes !== 'object') return String(changes);
  return Object.entries(changes as Record<string, unknown>)
    .map(([k, v]) => {
      if (v && typeof v === 'object' && 'from' in v && 'to' in v) {
        const c = v as { from: unknown; to: unknown };
        return `${k}: ${JSON.stringify(c.from)} → ${JSON.stringify(c.to)}`;
      }
      return `${k}: ${JSON.stringify(v)}`;
    })
    .join('; ');
}

function describeActor(actor: string | null, selfId: number): string {
  if (!actor) return 'unknown';
  // "admin:3/token:5": done through management token 5 of admin 3
  const [who = '', token] = actor.split('/token:');
  const via = token ? ` (token #${token})` : '';
  if (who === 'master') return `the master key${via}`;
  const m = /^(admin|user):(\d+)$/.exec(who);
  if (m && Number(m[2]) === selfId) return `you${via}`;
  return m ? `${m[1]} #${m[2]}${via}` : actor;
}

function KeyAudit({ keyId, version }: { keyId: string; version: number }) {
  const { user } = useSession();
  const audit = useAsync(
    (signal) => api.get<Page<AuditEntry>>('/api/audit', { key_id: keyId, limit: 50 }, signal),
    [keyId, version],
  );
  return (
    <Section title="Audit trail">
      <AsyncView
        state={audit}
        what="the audit trail"
        isEmpty={(d) => d.data.length === 0}
        empty={<p>No recorded changes.</p>}
      >
        {(d) => (
          <ol className="audit">
            {d.data.map((a) => (
              <li key={a.id}>
                <time dateTime={a.created_at}>{dateTime(a.created_at)}</time> <strong>{a.action}</strong> by{' '}
                {describeActor(a.actor, user.id)}
                {a.ip ? <span className="muted"> from {a.ip}</span> : null}
                {a.changes && describeChanges(a.changes) ? (
                  <div className="muted small">{describeChanges(a.changes)}</div>
                ) : null}
              </li>
            ))}
          </ol>
        )}
      </AsyncView>
    </Section>
  );
}
