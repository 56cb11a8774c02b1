import { useEffect, useMemo, useState } from 'react';
import { api, type ApiKey, type Page } from '../api';
import { dateTime } from '../format';
import { Link, setQuery, useLocation } from '../router';
import { AsyncView, useAsync } from '../components/async';
import { QuotaMeter, StatusBadge } from '../components/badges';
import { When } from '../components/when';
import { Pager, useCursorPager } from '../components/pager';
import {
  FilterForm,
  PageSizeSelect,
  PrimaryButton,
  SelectField,
  TextInput,
  userOptions,
  usePageSize,
  type Option,
} from '../components/controls';
import { useCreateFlow } from '../components/dialogs';
import { ACTIONS, DataTable, PageHead, TableCell, TableRow } from '../components/layout';
import { useSession } from '../session';
import { KeyActions, KeyFormDialog, SecretDialog, useGroups, useUsers } from './keyDialogs';

const PAGE_SIZES = [20, 50, 100];
const STATUSES: Option[] = [
  { value: '', label: 'All statuses' },
  { value: 'active', label: 'Active' },
  { value: 'disabled', label: 'Disabled' },
  { value: 'expired', label: 'Expired' },
  { value: 'exhausted', label: 'Exhausted' },
];

/** A secret older than this gets a "rotate" hint in the list. */
export const ROTATE_AFTER_DAYS = 90;

/** How old the key's secret is (since creation or the last rotation), with a rotate hint. */
function KeyAge({ apiKey }: { apiKey: ApiKey }) {
  const since = apiKey.rotated_at ?? apiKey.created_at;
  const days = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 86_400_000));
  const old = days >= ROTATE_AFTER_DAYS && apiKey.status !== 'disabled';
  return (
    <div className="muted small">
      <span title={`Secret ${apiKey.rotated_at ? 'last rotated' : 'created'} ${dateTime(since)}`}>
        {days} d old
      </span>
      {old ? (
        <>
          {' '}
          <span
            className="badge status-expired"
            title={`This secret is over ${ROTATE_AFTER_DAYS} days old: rotate it to limit the damage of an unnoticed leak.`}
          >
            rotate
          </span>
        </>
      ) : null}
    </div>
  );
}

export function KeysPage() {
  const { user } = useSession();
  const isAdmin = user.role === 'admin';
  const { query } = useLocation();
  const q = query.get('q') ?? '';
  const status = query.get('status') ?? '';
  const group = query.get('group') ?? '';
  const owner = query.get('user_id') ?? '';
  const limit = usePageSize(20);

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

  const create = useCreateFlow<ApiKey>(keys.reload);
  const filtered = Boolean(q || status || group || owner);

  return (
    <div className="page">
      <PageHead
        title="API keys"
        lead="One key per app or environment: each is a credential, a billing label and a permission switch."
      >
        <PrimaryButton onClick={create.start}>Create key</PrimaryButton>
      </PageHead>

      <FilterForm label="Filter keys">
        <TextInput
          label="Search"
          type="search"
          value={search}
          placeholder="Name or key ending"
          onChange={setSearch}
        />
        <SelectField
          label="Status"
          value={status}
          options={STATUSES}
          onChange={(v) => setQuery({ status: v || null })}
        />
        {groups.data && isAdmin ? (
          <SelectField
            label="Group"
            value={group}
            options={[
              { value: '', label: 'All groups' },
              ...groups.data.map((g) => ({ value: g.name, label: g.name })),
            ]}
            onChange={(v) => setQuery({ group: v || null })}
          />
        ) : null}
        {isAdmin ? (
          <SelectField
            label="Owner"
            value={owner}
            options={userOptions(users.data, 'Everyone')}
            onChange={(v) => setQuery({ user_id: v || null })}
          />
        ) : null}
        <PageSizeSelect value={limit} sizes={PAGE_SIZES} defaultSize={20} />
      </FilterForm>

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
                <strong>No keys yet.</strong> Create one for each app or environment, e.g.{' '}
                <code>dev-local</code> or <code>web-prod</code>.
              </p>
              <PrimaryButton onClick={create.start}>Create your first key</PrimaryButton>
            </>
          )
        }
      >
        {(page) => (
          <>
            {/* explicit roles keep table semantics when the phone layout restyles rows as cards */}
            <DataTable
              caption={<>API keys{filtered ? ' matching the filters' : ''}</>}
              columns={[
                'Name',
                isAdmin && 'Owner',
                'Status',
                'Group',
                'Models',
                'IP rules',
                'Used / quota',
                'Expires',
                'Last used',
                ACTIONS,
              ]}
              className="keys-table"
              explicitRoles
            >
              {page.data.length === 0 ? (
                <TableRow>
                  <TableCell colSpan={isAdmin ? 10 : 9} className="muted">
                    No more keys.
                  </TableCell>
                </TableRow>
              ) : null}
              {page.data.map((k) => (
                <TableRow key={k.id}>
                  <TableCell className="name-cell">
                    <Link href={`/keys/${encodeURIComponent(k.id)}`} className="key-name">
                      {k.name}
                    </Link>
                    <code className="masked">{k.display}</code>
                    <KeyAge apiKey={k} />
                  </TableCell>
                  {isAdmin ? (
                    <TableCell label="Owner">
                      {owners.get(k.user_id)?.username ?? <code className="muted">#{k.user_id}</code>}
                    </TableCell>
                  ) : null}
                  <TableCell label="Status">
                    <StatusBadge status={k.status} locked={k.locked} />
                  </TableCell>
                  <TableCell label="Group">
                    {k.group ?? (
                      <span className="muted" title="The owner’s group">
                        {ownerGroup(k.user_id) ?? 'owner’s'}
                      </span>
                    )}
                  </TableCell>
                  <TableCell label="Models" className="models-cell">
                    {k.models?.length ? k.models.join(', ') : <span className="muted">all in group</span>}
                  </TableCell>
                  <TableCell label="IP rules" className="ips-cell">
                    {k.allowed_ips === null ? (
                      <span className="muted">any IP</span>
                    ) : k.allowed_ips.length ? (
                      k.allowed_ips.join(', ')
                    ) : (
                      <strong>no IP (blocked)</strong>
                    )}
                  </TableCell>
                  <TableCell label="Used / quota">
                    <QuotaMeter used={k.used} quota={k.quota} />
                  </TableCell>
                  <TableCell label="Expires" className="nowrap">
                    <When at={k.expires_at} />
                  </TableCell>
                  <TableCell label="Last used" className="nowrap">
                    <When at={k.last_used_at} as="relative" />
                    {k.last_used_ip ? <div className="muted small">{k.last_used_ip}</div> : null}
                  </TableCell>
                  <TableCell className="actions-cell">
                    <KeyActions apiKey={k} onChanged={keys.reload} onDeleted={keys.reload} />
                  </TableCell>
                </TableRow>
              ))}
            </DataTable>
            <Pager label="Keys" pager={pager} nextCursor={page.next_cursor} />
          </>
        )}
      </AsyncView>

      {create.creating ? (
        <KeyFormDialog
          defaultOwner={isAdmin && owner ? Number(owner) : undefined}
          onClose={create.cancel}
          onSaved={create.saved}
        />
      ) : null}
      {create.created ? <SecretDialog apiKey={create.created} onClose={create.done} /> : null}
    </div>
  );
}
