import { useEffect, useMemo, useState } from 'react';
import { api, type ApiKey, type Page } from '../api';
import { dateOnly, relative, dateTime } from '../format';
import { Link, setQuery, useLocation } from '../router';
import { AsyncView, Pager, QuotaMeter, StatusBadge, useAsync, useCursorPager } from '../components/ui';
import { useSession } from '../session';
import { KeyActions, KeyFormDialog, SecretDialog, useGroups, useUsers } from './keyDialogs';

const PAGE_SIZES = [20, 50, 100];

export function KeysPage() {
  const { user } = useSession();
  const isAdmin = user.role === 'admin';
  const { query } = useLocation();
  const q = query.get('q') ?? '';
  const status = query.get('status') ?? '';
  const group = query.get('group') ?? '';
  const owner = query.get('user_id') ?? '';
  const limit = Number(query.get('limit')) || 20;

  // the search box updates the URL after a short pause
  const [search, setSearch] = useState(q);
  useEffect(() => setSearch(q), [q]);
  useEffect(() => {
    if (search === q) return;
    const t = setTimeout(() => setQuery({ q: search.trim() || null }), 300);
    return () => clearTimeout(t);
  }, [search, q]);

  const filterKey = JSON.stringify([q, status, group, owner, limit]);
  const pager = useCursorPager(filterKey);
  const keys = useAsync(
    (signal) =>
      api.get<Page<ApiKey>>(
        '/api/keys',
        { q, status, group, user_id: owner, limit, cursor: pager.cursor ?? undefined },
        signal,
      ),
    [filterKey, pager.cursor],
  );
  const groups = useGroups();
  const users = useUsers(isAdmin);
  const owners = useMemo(() => new Map((users.data ?? []).map((u) => [u.id, u])), [users.data]);
  const ownerGroup = (userId: number) => (isAdmin ? owners.get(userId)?.group : user.group);

  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<ApiKey | null>(null);
  const filtered = Boolean(q || status || group || owner);

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>API keys</h1>
          <p className="muted lead">
            One key per app or environment: each is a credential, a billing label and a permission switch.
          </p>
        </div>
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          Create key
        </button>
      </div>

      <form className="filters" role="search" aria-label="Filter keys" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search
          <input type="search" value={search} placeholder="Name or key ending" onChange={(e) => setSearch(e.target.value)} />
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => setQuery({ status: e.target.value || null })}>
            <option value="">All statuses</option>
            <option value="active">Active</option>
            <option value="disabled">Disabled</option>
            <option value="expired">Expired</option>
            <option value="exhausted">Exhausted</option>
          </select>
        </label>
        {groups.data && isAdmin ? (
          <label>
            Group
            <select value={group} onChange={(e) => setQuery({ group: e.target.value || null })}>
              <option value="">All groups</option>
              {groups.data.map((g) => (
                <option key={g.name} value={g.name}>
                  {g.name}
                </option>
              ))}
            </select>
          </label>
        ) : null}
        {isAdmin ? (
          <label>
            Owner
            <select value={owner} onChange={(e) => setQuery({ user_id: e.target.value || null })}>
              <option value="">Everyone</option>
              {(users.data ?? []).map((u) => (
                <option key={u.id} value={u.id}>
                  {u.username}
                </option>
              ))}
            </select>
          </label>
        ) : null}
        <label>
          Rows per page
          <select value={limit} onChange={(e) => setQuery({ limit: e.target.value === '20' ? null : e.target.value })}>
            {PAGE_SIZES.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
      </form>

      <AsyncView
        state={keys}
        what="keys"
        isEmpty={(d) => d.data.length === 0 && pager.page === 1}
        empty={
          filtered ? (
            <p>No keys match these filters.</p>
          ) : (
            <>
              <p>
                <strong>No keys yet.</strong> Create one for each app or environment, e.g. <code>dev-local</code> or{' '}
                <code>web-prod</code>.
              </p>
              <button type="button" className="primary" onClick={() => setCreating(true)}>
                Create your first key
              </button>
            </>
          )
        }
      >
        {(page) => (
          <>
            <div className="table-wrap">
              {/* explicit roles keep table semantics when the phone layout restyles rows as cards */}
              <table className="data keys-table" role="table">
                <caption className="sr-only">API keys{filtered ? ' matching the filters' : ''}</caption>
                <thead role="rowgroup">
                  <tr role="row">
                    <th scope="col" role="columnheader">Name</th>
                    {isAdmin ? <th scope="col" role="columnheader">Owner</th> : null}
                    <th scope="col" role="columnheader">Status</th>
                    <th scope="col" role="columnheader">Group</th>
                    <th scope="col" role="columnheader">Models</th>
                    <th scope="col" role="columnheader">IP rules</th>
                    <th scope="col" role="columnheader">Used / quota</th>
                    <th scope="col" role="columnheader">Expires</th>
                    <th scope="col" role="columnheader">Last used</th>
                    <th scope="col" role="columnheader">
                      <span className="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody role="rowgroup">
                  {page.data.length === 0 ? (
                    <tr role="row">
                      <td role="cell" colSpan={isAdmin ? 10 : 9} className="muted">
                        No more keys.
                      </td>
                    </tr>
                  ) : null}
                  {page.data.map((k) => (
                    <tr key={k.id} role="row">
                      <td role="cell" className="name-cell">
                        <Link href={`/keys/${encodeURIComponent(k.id)}`} className="key-name">
                          {k.name}
                        </Link>
                        <code className="masked">{k.display}</code>
                      </td>
                      {isAdmin ? (
                        <td role="cell" data-label="Owner">
                          {owners.get(k.user_id)?.username ?? <code className="muted">#{k.user_id}</code>}
                        </td>
                      ) : null}
                      <td role="cell" data-label="Status">
                        <StatusBadge status={k.status} />
                      </td>
                      <td role="cell" data-label="Group">
                        {k.group ?? (
                          <span className="muted" title="The owner’s group">
                            {ownerGroup(k.user_id) ?? 'owner’s'}
                          </span>
                        )}
                      </td>
                      <td role="cell" data-label="Models" className="models-cell">{k.models?.length ? k.models.join(', ') : <span className="muted">all in group</span>}</td>
                      <td role="cell" data-label="IP rules" className="ips-cell">
                        {k.allowed_ips?.length ? k.allowed_ips.join(', ') : <span className="muted">any IP</span>}
                      </td>
                      <td role="cell" data-label="Used / quota">
                        <QuotaMeter used={k.used} quota={k.quota} />
                      </td>
                      <td role="cell" data-label="Expires" className="nowrap">{k.expires_at ? <time dateTime={k.expires_at} title={dateTime(k.expires_at)}>{dateOnly(k.expires_at)}</time> : <span className="muted">never</span>}</td>
                      <td role="cell" data-label="Last used" className="nowrap">
                        {k.last_used_at ? (
                          <time dateTime={k.last_used_at} title={dateTime(k.last_used_at)}>
                            {relative(k.last_used_at)}
                          </time>
                        ) : (
                          <span className="muted">never</span>
                        )}
                        {k.last_used_ip ? <div className="muted small">{k.last_used_ip}</div> : null}
                      </td>
                      <td role="cell" className="actions-cell">
                        <KeyActions apiKey={k} onChanged={keys.reload} onDeleted={keys.reload} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <Pager label="Keys" page={pager.page} nextCursor={page.next_cursor} onPrev={pager.prev} onNext={pager.next} />
          </>
        )}
      </AsyncView>

      {creating ? (
        <KeyFormDialog
          onClose={() => setCreating(false)}
          onSaved={(k) => {
            setCreating(false);
            setCreated(k);
            keys.reload();
          }}
        />
      ) : null}
      {created ? <SecretDialog apiKey={created} onClose={() => setCreated(null)} /> : null}
    </div>
  );
}
