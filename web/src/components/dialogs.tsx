// Dialogs: native <dialog> (focus trap, Escape), rendered outside #root; while open the
// page behind is hidden from assistive technology. A control marked `data-autofocus` gets
// the focus when the dialog opens.
import type { ReactNode } from 'react';
import { useEffect, useId, useRef, useState } from 'react';
import { createPortal } from 'react-dom';
import { FormError, type SubmitAction, useFormSubmit } from './forms';

let openDialogs = 0;
function setBackgroundHidden(hidden: boolean) {
  const root = document.getElementById('root');
  if (!root) return;
  if (hidden) {
    root.setAttribute('aria-hidden', 'true');
  } else {
    root.removeAttribute('aria-hidden');
  }
}

export function Modal({
  title,
  onClose,
  children,
  variant = 'center',
  className,
  role,
  closeOnBackdrop = variant === 'drawer',
}: {
  title: ReactNode;
  onClose: () => void;
  children: ReactNode;
  variant?: 'center' | 'drawer';
  className?: string;
  role?: 'dialog' | 'alertdialog';
  /** Forms and secrets stay open on a stray click outside; Escape or the buttons close them. */
  closeOnBackdrop?: boolean;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const closeRef = useRef(onClose);
  closeRef.current = onClose;
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    const previouslyFocused = document.activeElement as HTMLElement | null;
    if (!d.open) d.showModal();
    // like `autofocus` in a dialog: the field marked `data-autofocus` gets the focus
    d.querySelector<HTMLElement>('[data-autofocus]')?.focus();
    openDialogs += 1;
    setBackgroundHidden(true);
    return () => {
      openDialogs -= 1;
      if (openDialogs <= 0) {
        openDialogs = 0;
        setBackgroundHidden(false);
      }
      if (d.open) d.close();
      if (previouslyFocused && document.contains(previouslyFocused)) previouslyFocused.focus();
    };
  }, []);
  return createPortal(
    <dialog
      ref={ref}
      role={role}
      aria-labelledby={titleId}
      className={`modal ${variant} ${className ?? ''}`}
      onCancel={(e) => {
        e.preventDefault();
        closeRef.current();
      }}
      onMouseDown={(e) => {
        // click on the backdrop (the dialog element itself, outside its box) closes
        if (closeOnBackdrop && e.target === ref.current) {
          const r = ref.current.getBoundingClientRect();
          const inside =
            e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom;
          if (!inside) closeRef.current();
        }
      }}
    >
      <div className="modal-head">
        <h2 id={titleId}>{title}</h2>
        <button type="button" className="icon" aria-label="Close" onClick={() => closeRef.current()}>
          ×
        </button>
      </div>
      <div className="modal-body">{children}</div>
    </dialog>,
    document.body,
  );
}

/**
 * A dialog holding one form: its fields, the error from the last attempt, Cancel and a
 * submit button that is locked (showing `busyLabel`) while the submission runs.
 */
export function FormDialog({
  title,
  onClose,
  onSubmit,
  submitLabel,
  busyLabel = 'Saving…',
  danger,
  grid,
  noValidate,
  className,
  closeOnBackdrop,
  children,
}: {
  title: ReactNode;
  onClose: () => void;
  onSubmit: SubmitAction;
  submitLabel: string;
  busyLabel?: string;
  danger?: boolean;
  /** Two-column layout (`form-grid`); the error and the buttons span both columns. */
  grid?: boolean;
  noValidate?: boolean;
  className?: string;
  closeOnBackdrop?: boolean;
  children: ReactNode;
}) {
  const { busy, error, submit } = useFormSubmit(onSubmit);
  const span = grid ? 'span2' : undefined;
  return (
    <Modal title={title} onClose={onClose} className={className} closeOnBackdrop={closeOnBackdrop}>
      <form onSubmit={submit} noValidate={noValidate} className={grid ? 'form-grid' : undefined}>
        {children}
        <FormError message={error} className={span} />
        <div className={span ? `actions ${span}` : 'actions'}>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className={danger ? 'danger' : 'primary'} disabled={busy}>
            {busy ? busyLabel : submitLabel}
          </button>
        </div>
      </form>
    </Modal>
  );
}

export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  danger,
  onConfirm,
  onClose,
}: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  danger?: boolean;
  onConfirm: () => Promise<void>;
  onClose: () => void;
}) {
  return (
    <FormDialog
      title={title}
      onClose={onClose}
      onSubmit={onConfirm}
      submitLabel={confirmLabel}
      busyLabel="Working…"
      danger={danger}
      closeOnBackdrop
    >
      {children}
    </FormDialog>
  );
}

/**
 * A list page's create flow: `start` opens the create dialog; `saved` (its `onSaved`) closes
 * it, keeps the new record in `created` (to show its secret once) and reloads the list;
 * `done` lets the record go.
 */
export function useCreateFlow<T>(reload: () => void) {
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<T | null>(null);
  return {
    creating,
    created,
    start: () => setCreating(true),
    cancel: () => setCreating(false),
    saved: (record: T) => {
      setCreating(false);
      setCreated(record);
      reload();
    },
    done: () => setCreated(null),
  };
}
