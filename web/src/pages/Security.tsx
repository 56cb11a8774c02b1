// Security: keys the gateway switched off on its own — reported leaked (GitHub secret
// scanning) or disabled by the anomaly guard — from the audit trail. Admins see every key;
// a user sees their own keys' entries (the API scopes it).
import { type AuditEntry, api, type Page } from '../api';
import { dateTime } from '../format';
import { Link } from '../router';
import { AsyncView, useAsync } from '../components/async';
import { DataTable, PageHead } from '../components/layout';
import { Pager, useCursorPager } from '../components/pager';

const ACTIONS = 'key.leaked,key.auto_disabled';

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

/** What happened, in words: where the leak was found, or why the guard stepped in. */
function Detail({ entry }: { entry: AuditEntry }) {
  const c = entry.changes;
  if (entry.action === 'key.leaked') {
    const url = text(c.url);
    const source = text(c.source);
    return (
      <>
        Reported leaked{source ? ` (${source})` : ''}
        {url ? (
          <>
            {' '}
            at{' '}
            {/^https:\/\//.test(url) ? (
              <a href={url} target="_blank" rel="noreferrer noopener">
                {url}
              </a>
            ) : (
              <code>{url}</code>
            )}
          </>
        ) : null}
      </>
    );
  }
  return <>Anomaly guard: {text(c.reason) || 'threshold passed'}</>;
}

export default function SecurityPage() {
  const pager = useCursorPager(ACTIONS);
  const entries = useAsync(
    (signal) =>
      api.get<Page<AuditEntry>>('/api/audit', { action: ACTIONS, limit: 50, cursor: pager.cursor }, signal),
    [pager.cursor],
  );
  return (
    <div className="page">
      <PageHead
        title="Security"
        lead="Keys switched off and locked by the gateway: reported leaked by GitHub secret scanning, or stopped by the anomaly guard. Only an admin can enable them again."
      />
      <section className="card" aria-labelledby="security-title">
        <div className="card-head">
          <h2 id="security-title">Leak reports and auto-disables</h2>
        </div>
        <AsyncView state={entries} what="security events">
          {(page) => (
            <>
              <DataTable caption="Leak reports and auto-disables" columns={['Time', 'Key', 'What', 'Detail']}>
                {page.data.length === 0 ? (
                  <tr>
                    <td colSpan={4} className="muted">
                      No key has been reported leaked or stopped by the guard.
                    </td>
                  </tr>
                ) : null}
                {page.data.map((e) => (
                  <tr key={e.id}>
                    <td>{dateTime(e.created_at)}</td>
                    <td>
                      {e.key_id != null ? (
                        <Link href={`/keys/${e.key_id}`}>
                          {text(e.changes.name) || `Key #${e.key_id}`}
                          {text(e.changes.display) ? ` (${text(e.changes.display)})` : ''}
                        </Link>
                      ) : (
                        '—'
                      )}
                    </td>
                    <td>
                      <span className="badge">{e.action === 'key.leaked' ? 'leaked' : 'auto-disabled'}</span>
                    </td>
                    <td>
                      <Detail entry={e} />
                    </td>
                  </tr>
                ))}
              </DataTable>
              <Pager label="Security events" pager={pager} nextCursor={page.next_cursor} />
            </>
          )}
        </AsyncView>
      </section>
    </div>
  );
}
