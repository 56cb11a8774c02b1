// Shared building blocks: dialogs, async state, pagination, meters, notices.
import {
  cloneElement,
  useCallback,
  useEffect,
  useId,
  useRef,
  useState,
  useSyncExternalStore,
  type DependencyList,
  type FormEvent,
  type ReactElement,
  type ReactNode,
} from 'react';
import { createPortal } from 'react-dom';
import { errorMessage } from '../api';
import { usd } from '../format';

// ---------------------------------------------------------------------------
// Async data

export interface AsyncState<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

export function useAsync<T>(fn: (signal: AbortSignal) => Promise<T>, deps: DependencyList): AsyncState<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({
    data: undefined,
    error: undefined,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true, error: undefined }));
    fn(ctl.signal).then(
      (data) => {
        if (!ctl.signal.aborted) setState({ data, error: undefined, loading: false });
      },
      (error: unknown) => {
        if (!ctl.signal.aborted) setState((s) => ({ data: s.data, error, loading: false }));
      },
    );
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** Loading / error / empty wrapper, always in words. */
export function AsyncView<T>({
  state,
  what,
  isEmpty,
  empty,
  children,
}: {
  state: AsyncState<T>;
  what: string;
  isEmpty?: (data: T) => boolean;
  empty?: ReactNode;
  children: (data: T) => ReactNode;
}) {
  if (state.error && state.data === undefined) {
    return (
      <div className="notice error" role="alert">
        <p>
          Could not load {what}: {errorMessage(state.error)}
        </p>
        <button type="button" onClick={state.reload}>
          Try again
        </button>
      </div>
    );
  }
  if (state.data === undefined) {
    return (
      <p className="muted loading" role="status">
        Loading {what}…
      </p>
    );
  }
  return (
    <>
      {state.error ? (
        <div className="notice error" role="alert">
          Could not refresh {what}: {errorMessage(state.error)}
        </div>
      ) : null}
      {isEmpty?.(state.data) ? (
        <div className="empty">{empty ?? <p>No {what} yet.</p>}</div>
      ) : (
        <div className={state.loading ? 'refreshing' : undefined} aria-busy={state.loading}>
          {children(state.data)}
        </div>
      )}
    </>
  );
}

// ---------------------------------------------------------------------------
// Cursor pagination: the server hands out opaque cursors; we keep a stack to go back.

export function useCursorPager(resetKey: string) {
  const [stack, setStack] = useState<(string | null)[]>([null]);
  const [lastReset, setLastReset] = useState(resetKey);
  if (lastReset !== resetKey) {
    setLastReset(resetKey);
    setStack([null]);
  }
  const cursor = stack[stack.length - 1] ?? null;
  return {
    cursor,
    page: stack.length,
    next: (c: string) => setStack((s) => [...s, c]),
    prev: () => setStack((s) => (s.length > 1 ? s.slice(0, -1) : s)),
    first: () => setStack([null]),
  };
}

export function Pager({
  page,
  nextCursor,
  onPrev,
  onNext,
  label,
}: {
  page: number;
  nextCursor: string | number | null | undefined;
  onPrev: () => void;
  onNext: (c: string) => void;
  label: string;
}) {
  return (
    <nav className="pager" aria-label={`${label} pages`}>
      <button type="button" onClick={onPrev} disabled={page <= 1}>
        Previous page
      </button>
      <span aria-live="polite">Page {page}</span>
      <button
        type="button"
        onClick={() => nextCursor != null && onNext(String(nextCursor))}
        disabled={nextCursor == null}
      >
        Next page
      </button>
    </nav>
  );
}

// ---------------------------------------------------------------------------
// Dialogs: native <dialog> (focus trap, Escape), rendered outside #root; while open the
// page behind is hidden from assistive technology.

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

/** A form's error in words, announced when it appears. */
export function FormError({
  message,
  className,
}: {
  message: string | null | undefined;
  className?: string;
}) {
  if (!message) return null;
  return (
    <p className={`notice error${className ? ` ${className}` : ''}`} role="alert">
      {message}
    </p>
  );
}

/**
 * What a form's submit does: a promise (the save; `busy` while it runs, a rejection becomes
 * `error` in words and the form can be sent again), a string (a validation message: shown,
 * nothing sent) or null (nothing sent; the fields show their own errors).
 */
export type SubmitAction = () => Promise<unknown> | string | null;

/**
 * Busy and error state for one form. On success `busy` stays set: the caller moves on
 * (closes the dialog, leaves the page).
 */
export function useFormSubmit(action: SubmitAction, describe: (err: unknown) => string = errorMessage) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const result = action();
    if (result === null) return;
    if (typeof result === 'string') {
      setError(result);
      return;
    }
    setBusy(true);
    try {
      await result;
    } catch (err) {
      setError(describe(err));
      setBusy(false);
    }
  };
  return { busy, error, submit };
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

// ---------------------------------------------------------------------------
// Small pieces

export function QuotaMeter({ used, quota }: { used: number; quota: number | null }) {
  if (quota === null || quota === undefined) {
    return (
      <span className="quota">
        <span>{usd(used)}</span> <span className="muted">/ unlimited</span>
      </span>
    );
  }
  const ratio = quota > 0 ? Math.min(used / quota, 1) : 1;
  const level = ratio >= 0.9 ? 'high' : ratio >= 0.7 ? 'mid' : 'low';
  return (
    <span className="quota">
      <span>
        {usd(used)} <span className="muted">/ {usd(quota)}</span>
      </span>
      <span
        className={`meter ${level}`}
        role="meter"
        aria-label="Quota used"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(ratio * 100)}
        aria-valuetext={`${Math.round(ratio * 100)}% of quota used`}
      >
        <span style={{ width: `${ratio * 100}%` }} />
      </span>
    </span>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge status-${status}`}>{status}</span>;
}

export function HttpStatus({ status, code }: { status: number; code?: string | null }) {
  const kind = status < 300 ? 'ok' : status < 500 ? 'warn' : 'bad';
  return (
    <span className={`badge http-${kind}`} title={code ?? undefined}>
      {status}
      {code ? ` ${code}` : ''}
    </span>
  );
}

/**
 * A labelled form control. Hints and errors sit outside the <label> and are linked with
 * aria-describedby, so the control's accessible name is exactly `label`.
 */
export function Field({
  label,
  hint,
  error,
  className,
  children,
}: {
  label: string;
  hint?: ReactNode;
  error?: string | null;
  className?: string;
  children: ReactElement<Record<string, unknown>>;
}) {
  const id = useId();
  const hintId = hint ? `${id}-hint` : undefined;
  const errId = error ? `${id}-err` : undefined;
  const describedBy = [hintId, errId].filter(Boolean).join(' ') || undefined;
  const control = cloneElement(children, {
    id,
    'aria-describedby': describedBy,
    'aria-invalid': error ? true : undefined,
  });
  return (
    <div className={`field${className ? ` ${className}` : ''}`}>
      <label htmlFor={id}>{label}</label>
      {control}
      {hint ? (
        <span id={hintId} className="hint">
          {hint}
        </span>
      ) : null}
      <FieldError id={`${id}-err`} message={error} />
    </div>
  );
}

export function FieldError({ id, message }: { id: string; message: string | null | undefined }) {
  if (!message) return null;
  return (
    <p id={id} className="field-error" role="alert">
      {message}
    </p>
  );
}

// Toast-like notices in one polite live region.
type Notice = { id: number; text: string; kind: 'ok' | 'error' };
let notices: Notice[] = [];
let noticeSeq = 0;
const noticeListeners = new Set<() => void>();
function emitNotices() {
  noticeListeners.forEach((fn) => fn());
}
export function notify(text: string, kind: 'ok' | 'error' = 'ok'): void {
  const id = ++noticeSeq;
  notices = [...notices, { id, text, kind }].slice(-3);
  emitNotices();
  setTimeout(() => {
    notices = notices.filter((n) => n.id !== id);
    emitNotices();
  }, 5000);
}
export function Notices() {
  const list = useSyncExternalStore(
    (fn) => {
      noticeListeners.add(fn);
      return () => noticeListeners.delete(fn);
    },
    () => notices,
  );
  return (
    <div className="toasts" role="status" aria-live="polite">
      {list.map((n) => (
        <p key={n.id} className={`toast ${n.kind}`}>
          {n.text}
        </p>
      ))}
    </div>
  );
}

export function Section({
  title,
  actions,
  children,
}: {
  title: ReactNode;
  actions?: ReactNode;
  children: ReactNode;
}) {
  return (
    <section className="card">
      <div className="card-head">
        <h2>{title}</h2>
        {actions ? <div className="card-actions">{actions}</div> : null}
      </div>
      {children}
    </section>
  );
}
