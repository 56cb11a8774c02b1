import { useEffect, useState } from 'react';
import { api, ApiError, type Page, type User } from '../api';
import { dateOnly, usdExact } from '../format';
import { Link } from '../router';
import { AsyncView, useAsync } from '../components/async';
import { StatusBadge } from '../components/badges';
import { FormDialog } from '../components/dialogs';
import { InputField } from '../components/forms';
import { BudgetFields, LimitFields, limitValuesOf } from '../components/limitFields';
import { budgetChanged, budgetValuesOf, parseBudget } from '../budget';
import { notify } from '../components/notices';
import { Pager, useCursorPager } from '../components/pager';
import { FilterForm, PrimaryButton, SelectField, TextInput, type Option } from '../components/controls';
import { ActionsCell, DeleteButton, DeleteDialog, StatusToggle } from '../components/records';
import { ACTIONS, DataTable, PageHead, type Column } from '../components/layout';
import { useSession } from '../session';
import { parseLimit, parseUsd } from '../validate';
import { useGroups } from './keyDialogs';

const COLUMNS: Column[] = [
  'Username',
  'Role',
  'Group',
  { label: 'Balance', num: true },
  'Status',
  'Created',
  ACTIONS,
];

const ROLES: Option[] = [
  { value: 'user', label: 'User' },
  { value: 'admin', label: 'Admin' },
];
const STATUSES: Option[] = [
  { value: 'active', label: 'Active' },
  { value: 'disabled', label: 'Disabled' },
];

type Dialog = null | { kind: 'create' } | { kind: 'edit' | 'topup' | 'delete'; user: User };

export default function UsersPage() {
  const session = useSession();
  const [search, setSearch] = useState('');
  const [q, setQ] = useState('');
  useEffect(() => {
    const t = setTimeout(() => setQ(search.trim()), 300);
    return () => clearTimeout(t);
  }, [search]);
  const pager = useCursorPager(q);
  const users = useAsync(
    (signal) =>
      api.get<Page<User>>('/api/users', { limit: 50, q, cursor: pager.cursor ?? undefined }, signal),
    [q, pager.cursor],
  );
  const [dialog, setDialog] = useState<Dialog>(null);
  const close = () => setDialog(null);
  const changed = (msg: string) => {
    setDialog(null);
    notify(msg);
    users.reload();
    void session.refresh();
  };

  return (
    <div className="page">
      <PageHead title="Users" lead="Accounts that can sign in here and own keys. Balances are in US dollars.">
        <PrimaryButton onClick={() => setDialog({ kind: 'create' })}>Create user</PrimaryButton>
      </PageHead>
      <FilterForm label="Find users">
        <TextInput label="Search" type="search" value={search} onChange={setSearch} placeholder="Username" />
      </FilterForm>
      <AsyncView
        state={users}
        what="users"
        isEmpty={(d) => d.data.length === 0 && pager.page === 1}
        empty={<p>{q ? 'No users match.' : 'No users yet.'}</p>}
      >
        {(page) => (
          <>
            <DataTable caption="Users" columns={COLUMNS}>
              {page.data.map((u) => (
                <tr key={u.id}>
                  <th scope="row">
                    {u.username}
                    {u.id === session.user.id ? <span className="muted"> (you)</span> : null}
                  </th>
                  <td>{u.role}</td>
                  <td>{u.group}</td>
                  <td className="num">{usdExact(u.balance)}</td>
                  <td>
                    <StatusBadge status={u.status} />
                  </td>
                  <td>{dateOnly(u.created_at)}</td>
                  <ActionsCell>
                    <Link href={`/keys?user_id=${encodeURIComponent(u.id)}`}>Key list</Link>
                    <button type="button" onClick={() => setDialog({ kind: 'edit', user: u })}>
                      Edit
                    </button>
                    <button type="button" onClick={() => setDialog({ kind: 'topup', user: u })}>
                      Top up
                    </button>
                    {u.id !== session.user.id ? (
                      <>
                        <StatusToggle
                          path={`/api/users/${encodeURIComponent(u.id)}`}
                          status={u.status}
                          name={u.username}
                          onChanged={users.reload}
                        />
                        <DeleteButton onClick={() => setDialog({ kind: 'delete', user: u })} />
                      </>
                    ) : null}
                  </ActionsCell>
                </tr>
              ))}
            </DataTable>
            <Pager label="Users" pager={pager} nextCursor={page.next_cursor} />
          </>
        )}
      </AsyncView>

      {dialog?.kind === 'create' ? (
        <UserForm onClose={close} onSaved={(u) => changed(`Created user ${u.username}.`)} />
      ) : null}
      {dialog?.kind === 'edit' ? (
        <UserForm existing={dialog.user} onClose={close} onSaved={(u) => changed(`Saved ${u.username}.`)} />
      ) : null}
      {dialog?.kind === 'topup' ? (
        <TopUp
          user={dialog.user}
          onClose={close}
          onDone={(u) => changed(`${u.username} now has ${usdExact(u.balance)}.`)}
        />
      ) : null}
      {dialog?.kind === 'delete' ? (
        <DeleteDialog
          title={`Delete user ${dialog.user.username}?`}
          path={`/api/users/${encodeURIComponent(dialog.user.id)}`}
          onClose={close}
          onDeleted={() => changed(`Deleted ${dialog.user.username}.`)}
        >
          <p>Their keys stop working at once. Logs and usage history are kept.</p>
        </DeleteDialog>
      ) : null}
    </div>
  );
}

function UserForm({
  existing,
  onClose,
  onSaved,
}: {
  existing?: User;
  onClose: () => void;
  onSaved: (u: User) => void;
}) {
  const groups = useGroups();
  const session = useSession();
  // Changing one's own password needs the current one (a borrowed session cannot), and
  // ends every session of the account, this one included.
  const self = existing !== undefined && existing.id === session.user.id;
  const [username, setUsername] = useState(existing?.username ?? '');
  const [password, setPassword] = useState('');
  const [currentPassword, setCurrentPassword] = useState('');
  const [role, setRole] = useState<User['role']>(existing?.role ?? 'user');
  const [group, setGroup] = useState(existing?.group ?? 'default');
  const [status, setStatus] = useState<User['status']>(existing?.status ?? 'active');
  const [balance, setBalance] = useState('');
  const [limits, setLimits] = useState(() => limitValuesOf(existing));
  const { rpm, tpm, concurrency } = limits;
  const [budget, setBudget] = useState(() => budgetValuesOf(existing));

  const submit = () => {
    if (!existing && password.length < 8) return 'Passwords need at least 8 characters.';
    if (existing && password && password.length < 8) return 'Passwords need at least 8 characters.';
    if (self && password && !currentPassword) return 'Enter your current password to change it.';
    const b = parseUsd(balance);
    if (b.error) return b.error;
    // The account's own limits, over all its keys (empty: its group's default, if any).
    const limits = [
      parseLimit(rpm, 1_000_000, 'requests per minute'),
      parseLimit(tpm, 1_000_000_000, 'tokens per minute'),
      parseLimit(concurrency, 10_000, 'requests at once'),
    ];
    const bad = limits.find((l) => l.error);
    if (bad?.error) return bad.error;
    const limitBody = { rpm: limits[0]!.value, tpm: limits[1]!.value, max_concurrency: limits[2]!.value };
    const bu = parseBudget(budget);
    if (bu.error) return `Budget: ${bu.error}`;
    const budgetChange = budgetChanged(bu.value, existing) ? { budget: bu.value } : {};
    return (
      existing
        ? api.patch<User>(`/api/users/${encodeURIComponent(existing.id)}`, {
            role,
            group,
            status,
            // Only the limits that changed: an account above a since-tightened group can still be edited.
            ...Object.fromEntries(
              Object.entries(limitBody).filter(
                ([k, v]) => v !== (existing[k as keyof typeof limitBody] ?? null),
              ),
            ),
            ...budgetChange,
            ...(password ? { password } : {}),
            ...(self && password ? { current_password: currentPassword } : {}),
          })
        : api.post<User>('/api/users', {
            username: username.trim(),
            password,
            role,
            group,
            ...Object.fromEntries(Object.entries(limitBody).filter(([, v]) => v !== null)),
            ...budgetChange,
            ...(b.value !== null ? { balance: b.value } : {}),
          })
    ).then(
      (u) =>
        self && password
          ? session.signOut('Your password has changed. Sign in with the new one.')
          : onSaved(u),
      (err: unknown) => {
        if (err instanceof ApiError && err.param === 'current_password' && err.status === 403)
          throw new Error('The current password is wrong. Nothing was changed.');
        throw err;
      },
    );
  };

  const groupNames = [...new Set([...(groups.data ?? []).map((g) => g.name), group, 'default'])];
  return (
    <FormDialog
      title={existing ? `Edit ${existing.username}` : 'Create user'}
      onClose={onClose}
      onSubmit={submit}
      submitLabel={existing ? 'Save' : 'Create'}
      grid
    >
      {existing ? null : (
        <TextInput
          label="Username"
          className="span2"
          value={username}
          onChange={setUsername}
          required
          autoComplete="off"
          data-autofocus
        />
      )}
      {self ? (
        <InputField
          label="Current password"
          hint="Needed to change your own password. You will then sign in again with the new one."
          className="span2"
          type="password"
          value={currentPassword}
          onChange={setCurrentPassword}
          autoComplete="current-password"
        />
      ) : null}
      <InputField
        label={existing ? 'New password' : 'Password'}
        hint={existing ? 'Leave empty to keep the current password.' : 'At least 8 characters.'}
        className="span2"
        type="password"
        value={password}
        onChange={setPassword}
        required={!existing}
        minLength={8}
        autoComplete="new-password"
      />
      <SelectField label="Role" value={role} options={ROLES} onChange={(v) => setRole(v as User['role'])} />
      <SelectField
        label="Group"
        value={group}
        options={groupNames.map((g) => ({ value: g, label: g }))}
        onChange={setGroup}
      />
      <BudgetFields
        hint="Spend allowed per period for all the account's keys. Empty: none."
        values={budget}
        onChange={(field, value) => setBudget((b) => ({ ...b, [field]: value }))}
      />
      {existing ? (
        <SelectField
          label="Account status"
          value={status}
          options={STATUSES}
          onChange={(v) => setStatus(v as User['status'])}
        />
      ) : (
        <TextInput
          label="Starting balance (USD)"
          inputMode="decimal"
          value={balance}
          onChange={setBalance}
          placeholder="0.00"
        />
      )}
      <LimitFields
        values={limits}
        onChange={(field, value) => setLimits((l) => ({ ...l, [field]: value }))}
        placeholder="Group default"
      />
    </FormDialog>
  );
}

function TopUp({ user, onClose, onDone }: { user: User; onClose: () => void; onDone: (u: User) => void }) {
  const [amount, setAmount] = useState('');
  const submit = () => {
    const t = amount.trim();
    const negative = t.startsWith('-');
    const parsed = parseUsd(negative ? t.slice(1) : t);
    if (parsed.error || parsed.value === null || parsed.value === 0) {
      return 'Enter an amount in US dollars, e.g. 20 (or -5 to deduct).';
    }
    return api
      .post<User>(`/api/users/${encodeURIComponent(user.id)}/topup`, {
        amount: negative ? -parsed.value : parsed.value,
      })
      .then(onDone);
  };
  return (
    <FormDialog
      title={`Top up ${user.username}`}
      onClose={onClose}
      onSubmit={submit}
      submitLabel="Top up"
      busyLabel="Working…"
    >
      <p>Current balance: {usdExact(user.balance)}</p>
      <TextInput
        label="Amount (USD)"
        inputMode="decimal"
        value={amount}
        onChange={setAmount}
        required
        data-autofocus
      />
    </FormDialog>
  );
}
