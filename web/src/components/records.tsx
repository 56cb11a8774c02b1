// Actions on one record of a list (a key, user, channel, price): delete after confirmation,
// enable/disable.
import { type ReactNode, useState } from 'react';
import { api, errorMessage } from '../api';
import { ConfirmDialog } from './dialogs';
import { notify } from './notices';

/** A table cell holding a row's buttons. */
export function ActionsCell({ children }: { children: ReactNode }) {
  return (
    <td>
      <div className="row-actions">{children}</div>
    </td>
  );
}

/** A row's "Delete" button; it only opens the confirmation. */
export function DeleteButton({ onClick }: { onClick: () => void }) {
  return (
    <button type="button" className="danger-text" onClick={onClick}>
      Delete
    </button>
  );
}

/** Asks before deleting; on confirmation DELETEs `path`, then calls `onDeleted` (which closes it). */
export function DeleteDialog({
  title,
  path,
  onClose,
  onDeleted,
  children,
}: {
  title: string;
  path: string;
  onClose: () => void;
  onDeleted: () => void;
  children: ReactNode;
}) {
  return (
    <ConfirmDialog
      title={title}
      confirmLabel="Delete"
      danger
      onClose={onClose}
      onConfirm={async () => {
        await api.del(path);
        onDeleted();
      }}
    >
      {children}
    </ConfirmDialog>
  );
}

/**
 * A row's Enable / Disable button. It PATCHes the record at `path` to the other status (a
 * disabled record to active, any other to disabled) and hands the updated record to
 * `onChanged`; a refusal becomes an error notice naming `name`.
 */
export function StatusToggle<T>({
  path,
  status,
  name,
  onChanged,
  lockedReason,
}: {
  path: string;
  status: string;
  name: string;
  onChanged: (updated: T) => void;
  /** Set when the viewer may not switch it on (a key an admin or a lock switched off). */
  lockedReason?: string | undefined;
}) {
  const [busy, setBusy] = useState(false);
  const disabled = status === 'disabled';
  const toggle = async () => {
    setBusy(true);
    try {
      onChanged(await api.patch<T>(path, { status: disabled ? 'active' : 'disabled' }));
    } catch (err) {
      notify(`Could not change ${name}: ${errorMessage(err)}`, 'error');
    }
    setBusy(false);
  };
  return (
    <button
      type="button"
      onClick={toggle}
      disabled={busy || (disabled && lockedReason !== undefined)}
      title={disabled ? lockedReason : undefined}
    >
      {disabled ? 'Enable' : 'Disable'}
    </button>
  );
}
