// Management tokens (mg-…): scoped credentials for scripts, CI and the `mole` CLI. Create
// (scopes, expiry), the secret shown once, the list, revoke. Tokens act as their owner
// narrowed to their scopes; they cannot manage tokens themselves.
import { useState } from 'react';
import { api, type ManagementToken, type NewManagementToken } from '../api';
import { AsyncView, useAsync } from '../components/async';
import { When } from '../components/when';
import { StatusBadge } from '../components/badges';
import { ConfirmDialog, FormDialog, useCreateFlow } from '../components/dialogs';
import { PrimaryButton } from '../components/controls';
import { Field } from '../components/forms';
import { ACTIONS, DataTable, PageHead, TableCell, TableRow } from '../components/layout';
import { notify } from '../components/notices';
import { dateOnly, dateTime } from '../format';
import { useSession } from '../session';
import { SecretDialogFrame } from '../components/secret';
import { useUsers } from './keyDialogs';

const SCOPES = [
  { scope: 'keys:read', label: 'keys:read — list and read keys' },
  { scope: 'keys:write', label: 'keys:write — create, change, rotate, delete keys' },
  { scope: 'logs:read', label: 'logs:read — call logs' },
  { scope: 'usage:read', label: 'usage:read — usage and spend' },
  { scope: 'users:read', label: 'users:read — read users' },
  { scope: 'users:write', label: 'users:write — create and change users, top up' },
  { scope: 'channels:read', label: 'channels:read — channels, models, prices, groups' },
  { scope: 'channels:write', label: 'channels:write — change channels, prices, groups' },
  { scope: 'audit:read', label: 'audit:read — the audit trail and notifications' },
] as const;
type Scope = (typeof SCOPES)[number]['scope'];

export default function TokensPage() {
  const { user } = useSession();
  const isAdmin = user.role === 'admin';
  const tokens = useAsync((signal) => api.get<{ data: ManagementToken[] }>('/api/tokens', {}, signal), []);
  const users = useUsers(isAdmin);
  const names = new Map((users.data ?? []).map((u) => [u.id, u.username]));
  const create = useCreateFlow<NewManagementToken>(tokens.reload);
  const [revoking, setRevoking] = useState<ManagementToken | null>(null);

  return (
    <div className="page">
      <PageHead
        title="Management tokens"
        lead="Scoped tokens for scripts, CI and the mole CLI: each acts as you, limited to the scopes you pick. They work on the management API only, never on /v1."
      >
        <PrimaryButton onClick={create.start}>Create token</PrimaryButton>
      </PageHead>

      <AsyncView
        state={tokens}
        what="tokens"
        isEmpty={(d) => d.data.length === 0}
        empty={
          <p>
            <strong>No tokens yet.</strong> Create one for each script or pipeline, with only the scopes it
            needs.
          </p>
        }
      >
        {(page) => (
          <DataTable
            caption={isAdmin ? 'Management tokens (everyone’s)' : 'Your management tokens'}
            columns={[
              'Name',
              isAdmin && 'Owner',
              'Scopes',
              'Status',
              'Expires',
              'Last used',
              'Created',
              ACTIONS,
            ]}
          >
            {page.data.map((t) => (
              <TableRow key={t.id}>
                <TableCell className="name-cell">
                  <span className="key-name">{t.name}</span>
                  <code className="masked">{t.display}</code>
                </TableCell>
                {isAdmin ? (
                  <TableCell label="Owner">
                    {t.user_id === null ? (
                      <span className="muted">master key</span>
                    ) : (
                      (names.get(t.user_id) ?? <code className="muted">#{t.user_id}</code>)
                    )}
                  </TableCell>
                ) : null}
                <TableCell label="Scopes">{t.scopes.join(', ')}</TableCell>
                <TableCell label="Status">
                  <StatusBadge status={t.status} />
                </TableCell>
                <TableCell label="Expires" className="nowrap">
                  <When at={t.expires_at} />
                </TableCell>
                <TableCell label="Last used" className="nowrap">
                  <When at={t.last_used_at} as="relative" />
                </TableCell>
                <TableCell label="Created" className="nowrap">
                  <time dateTime={t.created_at} title={dateTime(t.created_at)}>
                    {dateOnly(t.created_at)}
                  </time>
                </TableCell>
                <TableCell className="actions-cell">
                  <button
                    type="button"
                    className="danger-text"
                    aria-label={`Revoke ${t.name}`}
                    onClick={() => setRevoking(t)}
                  >
                    Revoke
                  </button>
                </TableCell>
              </TableRow>
            ))}
          </DataTable>
        )}
      </AsyncView>

      {create.creating ? <CreateTokenDialog onClose={create.cancel} onCreated={create.saved} /> : null}
      {create.created ? <TokenSecretDialog token={create.created} onClose={create.done} /> : null}
      {revoking ? (
        <ConfirmDialog
          title={`Revoke “${revoking.name}”?`}
          confirmLabel="Revoke"
          danger
          onClose={() => setRevoking(null)}
          onConfirm={async () => {
            await api.del(`/api/tokens/${revoking.id}`);
            notify(`Revoked “${revoking.name}”.`);
            setRevoking(null);
            tokens.reload();
          }}
        >
          <p>
            Anything using <code>{revoking.display}</code> is refused from its next request on. This cannot be
            undone.
          </p>
        </ConfirmDialog>
      ) : null}
    </div>
  );
}

function CreateTokenDialog({
  onClose,
  onCreated,
}: {
  onClose: () => void;
  onCreated: (t: NewManagementToken) => void;
}) {
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<Scope[]>([]);
  const [expires, setExpires] = useState('');
  return (
    <FormDialog
      title="Create management token"
      submitLabel="Create"
      busyLabel="Creating…"
      onClose={onClose}
      onSubmit={() => {
        if (!name.trim()) return 'Give the token a name.';
        if (scopes.length === 0) return 'Pick at least one scope.';
        // a date means "until the end of that day", in the browser's time zone
        const expiresAt = expires ? new Date(`${expires}T23:59:59`).toISOString() : null;
        return api
          .post<NewManagementToken>('/api/tokens', { name: name.trim(), scopes, expires_at: expiresAt })
          .then(onCreated);
      }}
    >
      <Field label="Name" hint="What uses it, e.g. ci-deploy or billing-export.">
        <input value={name} maxLength={128} onChange={(e) => setName(e.target.value)} data-autofocus />
      </Field>
      <fieldset className="radios">
        <legend>Scopes</legend>
        {SCOPES.map((s) => (
          <label key={s.scope} className="radio">
            <input
              type="checkbox"
              checked={scopes.includes(s.scope)}
              onChange={(e) =>
                setScopes((cur) => (e.target.checked ? [...cur, s.scope] : cur.filter((x) => x !== s.scope)))
              }
            />
            {s.label}
          </label>
        ))}
      </fieldset>
      <Field label="Expires" hint="Optional; leave empty for a token that does not expire.">
        <input type="date" value={expires} onChange={(e) => setExpires(e.target.value)} />
      </Field>
    </FormDialog>
  );
}

function TokenSecretDialog({ token, onClose }: { token: NewManagementToken; onClose: () => void }) {
  const origin = window.location.origin;
  return (
    <SecretDialogFrame
      title={`Token “${token.name}” created`}
      what="token"
      secret={token.token}
      ifLost="revoke it and create another."
      onClose={onClose}
    >
      <pre className="code">{`export MOLE_URL=${origin} MOLE_TOKEN=${token.token}\nnpx mole keys list\n\ncurl ${origin}/api/keys -H "Authorization: Bearer $MOLE_TOKEN"`}</pre>
    </SecretDialogFrame>
  );
}
