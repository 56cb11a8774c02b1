// Key dialogs shared by the keys list and the per-key page: create/edit form, show-once
// secret, rotate, delete, and the row of action buttons.
import { useId, useMemo, useReducer, useState } from 'react';
import { api, ApiError, errorMessage, type ApiKey, type Group, type User } from '../api';
import { toDateInput, usdExact } from '../format';
import { useAsync } from '../components/async';
import { ConfirmDialog, FormDialog } from '../components/dialogs';
import { Field, InputField, LinesField, NumberField } from '../components/forms';
import { LOCKED } from '../components/badges';
import { BudgetFields, LimitFields } from '../components/limitFields';
import { notify } from '../components/notices';
import { SecretDialogFrame } from '../components/secret';
import { DeleteButton, DeleteDialog, StatusToggle } from '../components/records';
import { useIsAdmin, useSession } from '../session';
import { fieldOfParam, initialKeyForm, keyFormReducer, type TextField, validateKeyForm } from './keyForm';

interface ModelOption {
  id: string;
  priced: boolean;
}

/** Groups are listed for admins; for users the call may be refused, then the field is hidden. */
export function useGroups() {
  return useAsync(async (signal) => {
    try {
      return (await api.get<{ data: Group[] }>('/api/groups', undefined, signal)).data;
    } catch (err) {
      if (err instanceof ApiError && (err.status === 403 || err.status === 404)) return null;
      throw err;
    }
  }, []);
}

export function useUsers(enabled: boolean) {
  return useAsync(
    async (signal) => {
      if (!enabled) return [] as User[];
      return (await api.get<{ data: User[] }>('/api/users', { limit: 200 }, signal)).data;
    },
    [enabled],
  );
}

const EXPIRY_PRESETS: { label: string; days: number | null }[] = [
  { label: 'Never', days: null },
  { label: '7 days', days: 7 },
  { label: '30 days', days: 30 },
  { label: '90 days', days: 90 },
  { label: '1 year', days: 365 },
];

export function KeyFormDialog({
  existing,
  defaultOwner,
  onClose,
  onSaved,
}: {
  existing?: ApiKey;
  /** A new key's preselected owner (admins; e.g. the user the key list is filtered to). */
  defaultOwner?: number;
  onClose: () => void;
  onSaved: (key: ApiKey) => void;
}) {
  const { user } = useSession();
  const isAdmin = user.role === 'admin';
  const groups = useGroups();
  const users = useUsers(isAdmin && !existing);

  const [form, dispatch] = useReducer(keyFormReducer, undefined, () =>
    initialKeyForm(existing, isAdmin && defaultOwner ? defaultOwner : user.id),
  );
  const {
    name,
    owner,
    group,
    models,
    patterns,
    ips,
    origins,
    quota,
    expires,
    rpm,
    budget,
    errors,
    tpm,
    concurrency,
    guardIps,
    guardSpend,
    guardAction,
  } = form;
  const set = (field: TextField) => (value: string) => dispatch({ type: 'set', field, value });

  // the listed account is fresher than the session's copy (balances move with every call)
  const ownerUser =
    users.data?.find((u) => String(u.id) === owner) ?? (owner === String(user.id) ? user : undefined);
  const ownerIsSelf = owner === String(user.id);
  const modelGroup = group || ownerUser?.group || '';
  const available = useAsync(
    (signal) =>
      api
        .get<{ data: ModelOption[] }>('/api/models', { group: modelGroup || undefined }, signal)
        .then((r) => r.data),
    [modelGroup],
  );
  const modelOptions = useMemo(() => {
    const list = [...(available.data ?? [])];
    for (const m of models) if (!list.some((o) => o.id === m)) list.push({ id: m, priced: true });
    return list;
  }, [available.data, models]);

  /** The group's cap on a key's lifetime: presets past it are not offered. */
  const maxLifetimeDays = groups.data?.find((g) => g.name === modelGroup)?.max_key_lifetime_days;
  const presets = EXPIRY_PRESETS.filter(
    (p) => maxLifetimeDays == null || (p.days !== null && p.days <= maxLifetimeDays),
  );

  const submit = () => {
    const v = validateKeyForm(form, { existing, isAdmin, selfId: user.id, now: Date.now(), maxLifetimeDays });
    dispatch({ type: 'errors', errors: v.errors });
    if (!v.body) return null;
    const save = existing
      ? api.patch<ApiKey>(`/api/keys/${encodeURIComponent(existing.id)}`, v.body)
      : api.post<ApiKey>('/api/keys', v.body);
    return save.then(onSaved, (err: unknown) => {
      // the server names the offending field: show its message there too
      const field = err instanceof ApiError && err.param ? fieldOfParam(err.param) : undefined;
      if (field) dispatch({ type: 'fieldError', field, message: (err as ApiError).message });
      throw err;
    });
  };

  const modelsHint = `${
    available.loading && !available.data
      ? 'Loading the models this group offers… '
      : available.error
        ? `Could not load the model list: ${errorMessage(available.error)}. `
        : modelOptions.length === 0
          ? 'This group offers no models yet. '
          : ''
  }Select none to allow every model the group offers. Ctrl/⌘-click selects several.`;

  return (
    <FormDialog
      title={existing ? `Edit key “${existing.name}”` : 'Create key'}
      onClose={onClose}
      onSubmit={submit}
      submitLabel={existing ? 'Save' : 'Create'}
      grid
      noValidate
      className="form-dialog"
    >
      <Field label="Name" error={errors.name} className="span2">
        <input value={name} onChange={(e) => set('name')(e.target.value)} required data-autofocus />
      </Field>

      {isAdmin && !existing ? (
        <Field
          label="Owner"
          hint={`The account this key bills to${
            ownerUser ? `; its balance is ${usdExact(ownerUser.balance)}` : ''
          }.`}
        >
          <select value={owner} onChange={(e) => set('owner')(e.target.value)}>
            <option value={String(user.id)}>{user.username} (you)</option>
            {(users.data ?? [])
              .filter((u) => u.id !== user.id)
              .map((u) => (
                <option key={u.id} value={String(u.id)}>
                  {u.username} ({u.group})
                </option>
              ))}
          </select>
        </Field>
      ) : null}
      {!existing && ownerUser && ownerUser.balance <= 0 ? (
        <p className="notice warn span2" role="status" data-testid="owner-balance-warning">
          <strong>
            {ownerIsSelf ? 'Your' : `${ownerUser.username}’s`} balance is {usdExact(ownerUser.balance)}
          </strong>
          : every call with this key will be refused with <code>insufficient_quota</code> until{' '}
          {ownerIsSelf ? 'your account is' : 'the account is'} topped up.
          {isAdmin ? ' Choose another owner, or top the account up on the Users page.' : ''}
        </p>
      ) : null}

      {groups.data && isAdmin ? (
        <Field label="Group" hint="Decides which models and prices apply.">
          <select value={group} onChange={(e) => set('group')(e.target.value)}>
            <option value="">Owner’s group{ownerUser?.group ? ` (${ownerUser.group})` : ''}</option>
            {groups.data.map((g) => (
              <option key={g.name} value={g.name}>
                {g.name} (×{g.multiplier})
              </option>
            ))}
          </select>
        </Field>
      ) : null}

      <Field label="Models" hint={modelsHint} className="span2">
        <select
          multiple
          value={models}
          size={Math.min(Math.max(modelOptions.length, 3), 7)}
          onChange={(e) =>
            dispatch({ type: 'models', models: Array.from(e.target.selectedOptions, (o) => o.value) })
          }
        >
          {modelOptions.map((m) => (
            <option key={m.id} value={m.id}>
              {m.id}
              {m.priced ? '' : ' (no price yet)'}
            </option>
          ))}
        </select>
      </Field>
      <InputField
        label="Extra model patterns"
        hint="Optional, comma-separated; a trailing * matches any model with that prefix."
        error={errors.models}
        className="span2"
        value={patterns}
        onChange={set('patterns')}
        placeholder="e.g. gpt-4o*, claude-3-5*"
      />

      <LinesField
        label="Allowed IPs"
        hint="One IPv4/IPv6 address or CIDR block per line. Empty: any IP."
        error={errors.ips}
        className="span2"
        value={ips}
        onChange={set('ips')}
        rows={3}
        placeholder={'203.0.113.7\n10.0.0.0/8\n2001:db8::/32'}
      />

      <LinesField
        label="Allowed origins"
        hint="Browser pages that may use this key, one per line (scheme://host[:port]; *.example.com for subdomains). Empty: no browser."
        error={errors.origins}
        className="span2"
        value={origins}
        onChange={set('origins')}
        rows={2}
        placeholder={'https://app.example.com\nhttps://*.example.com'}
      />

      <NumberField
        kind="usd"
        label="Quota (USD)"
        hint="Spending cap for this key. Empty: no cap (the account balance still applies)."
        error={errors.quota}
        value={quota}
        onChange={set('quota')}
        placeholder="Unlimited"
      />

      <BudgetFields
        hint="Spend allowed per period (UTC; weeks from Monday, months from the 1st). Empty: none of its own."
        error={errors.budget}
        values={budget}
        onChange={(field, value) => dispatch({ type: 'budget', field, value })}
      />

      <LimitFields
        values={{ rpm, tpm, concurrency }}
        onChange={(field, value) => set(field)(value)}
        placeholder="No limit"
        counts="count"
        hints={{
          rpm: "Empty: the group's default, if any.",
          tpm: "Input + output tokens. Empty: the group's default, if any.",
          concurrency: "Requests in flight at once. Empty: the group's default, if any.",
        }}
        errors={errors}
      />
      <fieldset className="span2 guard" aria-label="Anomaly guard">
        <legend>Anomaly guard</legend>
        <NumberField
          kind="count"
          label="Max client IPs per hour"
          hint="Distinct IPs using the key within a clock hour. Empty: not watched."
          error={errors.guard}
          value={guardIps}
          onChange={set('guardIps')}
          placeholder="Not watched"
        />
        <NumberField
          kind="usd"
          label="Max spend per hour (USD)"
          hint="Empty: not watched."
          value={guardSpend}
          onChange={set('guardSpend')}
          placeholder="Not watched"
        />
        <Field
          label="When passed"
          hint="Disable switches the key off and locks it; only an admin can enable it."
        >
          <select value={guardAction} onChange={(e) => set('guardAction')(e.target.value)}>
            <option value="alert">Alert only</option>
            <option value="disable">Disable the key</option>
          </select>
        </Field>
      </fieldset>

      <div className="span2 expires">
        <InputField
          label="Expires"
          hint={expires ? 'The key stops working at the end of that day, your time.' : 'Never expires.'}
          error={errors.expires}
          type="date"
          value={expires}
          min={toDateInput(new Date())}
          onChange={set('expires')}
        />
        <fieldset className="presets" aria-label="Expiry presets">
          {presets.map((p) => (
            <button
              key={p.label}
              type="button"
              className="chip"
              onClick={() =>
                set('expires')(p.days === null ? '' : toDateInput(new Date(Date.now() + p.days * 86400_000)))
              }
            >
              {p.label}
            </button>
          ))}
        </fieldset>
      </div>
    </FormDialog>
  );
}

/** Shows a freshly created or rotated secret, exactly once. */
export function SecretDialog({
  apiKey,
  rotated,
  onClose,
}: {
  apiKey: ApiKey;
  rotated?: boolean;
  onClose: () => void;
}) {
  const secret = apiKey.key ?? '';
  const origin = window.location.origin;
  const model = apiKey.models?.find((m) => !m.endsWith('*')) ?? 'gpt-4o-mini';
  const shell = `export OPENAI_API_KEY=${secret}\nexport OPENAI_BASE_URL=${origin}/v1`;
  const curl =
    `curl "$OPENAI_BASE_URL/chat/completions" \\\n` +
    `  -H "Authorization: Bearer $OPENAI_API_KEY" \\\n` +
    `  -H "Content-Type: application/json" \\\n` +
    `  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello!"}]}'\n\n` +
    `# this key's own limits and spend:\ncurl "$OPENAI_BASE_URL/key" -H "Authorization: Bearer $OPENAI_API_KEY"`;

  return (
    <SecretDialogFrame
      title={rotated ? `New secret for “${apiKey.name}”` : `Key “${apiKey.name}” created`}
      what="key"
      secret={secret}
      ifLost="rotate the key to get a new one. Keep it out of front-end code, Git and screenshots."
      note={
        rotated ? (
          <p className="muted">The previous secret stops working at the end of the grace period you chose.</p>
        ) : null
      }
      onClose={onClose}
    >
      <p className="muted">In a shell: any OpenAI SDK picks these two variables up unchanged.</p>
      <pre className="code">{shell}</pre>
      <p className="muted">Then try it with curl:</p>
      <pre className="code">{curl}</pre>
    </SecretDialogFrame>
  );
}

const GRACE_CHOICES: { label: string; seconds: number }[] = [
  { label: 'Stop it immediately', seconds: 0 },
  { label: '5 minutes', seconds: 300 },
  { label: '1 hour', seconds: 3600 },
  { label: '24 hours', seconds: 86400 },
];

export function RotateDialog({
  apiKey,
  onClose,
  onRotated,
}: {
  apiKey: ApiKey;
  onClose: () => void;
  onRotated: (k: ApiKey) => void;
}) {
  const [grace, setGrace] = useState(0);
  const name = useId();
  return (
    <ConfirmDialog
      title={`Rotate key “${apiKey.name}”`}
      confirmLabel="Rotate"
      onClose={onClose}
      onConfirm={async () => {
        const k = await api.post<ApiKey>(`/api/keys/${encodeURIComponent(apiKey.id)}/rotate`, {
          grace_seconds: grace,
        });
        onRotated(k);
      }}
    >
      <p>
        Rotating issues a new secret for this key. Its name, limits, usage and logs stay the same. Choose how
        long the current secret keeps working so you can update your apps:
      </p>
      <fieldset className="radios">
        <legend>Old secret keeps working for</legend>
        {GRACE_CHOICES.map((g) => (
          <label key={g.seconds} className="radio">
            <input
              type="radio"
              name={name}
              value={g.seconds}
              checked={grace === g.seconds}
              onChange={() => setGrace(g.seconds)}
            />
            {g.label}
          </label>
        ))}
      </fieldset>
    </ConfirmDialog>
  );
}

type Dialog = null | 'edit' | 'rotate' | 'delete' | { secret: ApiKey; rotated: boolean };

/** Edit / Disable-Enable / Rotate / Delete buttons for one key, plus their dialogs. */
export function KeyActions({
  apiKey,
  onChanged,
  onDeleted,
  showEdit = true,
}: {
  apiKey: ApiKey;
  onChanged: (k: ApiKey) => void;
  onDeleted: () => void;
  showEdit?: boolean;
}) {
  const [dialog, setDialog] = useState<Dialog>(null);
  const isAdmin = useIsAdmin();

  return (
    <div className="row-actions">
      {showEdit ? (
        <button type="button" onClick={() => setDialog('edit')}>
          Edit
        </button>
      ) : null}
      <StatusToggle
        path={`/api/keys/${encodeURIComponent(apiKey.id)}`}
        status={apiKey.status}
        name={`“${apiKey.name}”`}
        onChanged={onChanged}
        lockedReason={apiKey.locked && !isAdmin ? LOCKED : undefined}
      />
      <button type="button" onClick={() => setDialog('rotate')}>
        Rotate
      </button>
      <DeleteButton onClick={() => setDialog('delete')} />

      {dialog === 'edit' ? (
        <KeyFormDialog
          existing={apiKey}
          onClose={() => setDialog(null)}
          onSaved={(k) => {
            setDialog(null);
            onChanged(k);
            notify(`Saved “${k.name}”.`);
          }}
        />
      ) : null}
      {dialog === 'rotate' ? (
        <RotateDialog
          apiKey={apiKey}
          onClose={() => setDialog(null)}
          onRotated={(k) => {
            setDialog({ secret: k, rotated: true });
          }}
        />
      ) : null}
      {dialog === 'delete' ? (
        <DeleteDialog
          title={`Delete key “${apiKey.name}”?`}
          path={`/api/keys/${encodeURIComponent(apiKey.id)}`}
          onClose={() => setDialog(null)}
          onDeleted={() => {
            setDialog(null);
            notify(`Deleted “${apiKey.name}”.`);
            onDeleted();
          }}
        >
          <p>
            Apps using <strong>{apiKey.display}</strong> are refused at once with <code>invalid_api_key</code>
            . This cannot be undone. Its logs and usage history are kept.
          </p>
        </DeleteDialog>
      ) : null}
      {dialog && typeof dialog === 'object' ? (
        <SecretDialog
          apiKey={dialog.secret}
          rotated={dialog.rotated}
          onClose={() => {
            const { key: _secret, ...rest } = dialog.secret;
            setDialog(null);
            onChanged(rest as ApiKey);
          }}
        />
      ) : null}
    </div>
  );
}
