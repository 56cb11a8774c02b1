// Form building blocks: labelled fields with hints and errors, a form's error, and the
// busy / error state of one submission.
import {
  cloneElement,
  type FormEvent,
  type InputHTMLAttributes,
  type ReactElement,
  type ReactNode,
  useId,
  useRef,
  useState,
} from 'react';
import { errorMessage } from '../api';

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
  // `busy` disables the button only once React renders again: submits that arrive before
  // (clicks dispatched in one task) would each send the form, a top-up three times.
  const sending = useRef(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (sending.current) return;
    setError(null);
    const result = action();
    if (result === null) return;
    if (typeof result === 'string') {
      setError(result);
      return;
    }
    sending.current = true;
    setBusy(true);
    try {
      await result;
    } catch (err) {
      setError(describe(err));
      setBusy(false);
      sending.current = false;
    }
  };
  return { busy, error, submit };
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

/** How a number field is typed: an amount in USD, a small count (≥ 1), or a large whole number. */
const NUMBER_INPUTS = {
  usd: { type: 'text', inputMode: 'decimal' },
  count: { type: 'number', min: 1, step: 1 },
  whole: { type: 'text', inputMode: 'numeric' },
} as const;

/** What a labelled text field takes: its label, hint and error, and its text as typed. */
interface TextFieldProps {
  label: string;
  hint?: ReactNode;
  error?: string | null;
  className?: string;
  value: string;
  onChange: (value: string) => void;
  placeholder?: string;
}

/**
 * A labelled one-line text field; the other attributes (type, autoComplete, required, …)
 * go to its <input>.
 */
export function InputField({
  label,
  hint,
  error,
  className,
  onChange,
  ...input
}: TextFieldProps & Omit<InputHTMLAttributes<HTMLInputElement>, 'value' | 'onChange' | 'className'>) {
  return (
    <Field label={label} hint={hint} error={error} className={className}>
      <input {...input} onChange={(e) => onChange(e.target.value)} />
    </Field>
  );
}

/** A labelled number field (a limit, an amount); empty text means "none". */
export function NumberField({
  kind,
  value,
  onChange,
  placeholder,
  ...field
}: TextFieldProps & {
  kind: keyof typeof NUMBER_INPUTS;
}) {
  return (
    <Field {...field}>
      <input
        {...NUMBER_INPUTS[kind]}
        value={value}
        onChange={(e) => onChange(e.target.value)}
        placeholder={placeholder}
      />
    </Field>
  );
}

/** A labelled list typed one entry per line (IPs, origins); spell checking off. */
export function LinesField({
  rows,
  value,
  onChange,
  placeholder,
  ...field
}: TextFieldProps & { rows: number }) {
  return (
    <Field {...field}>
      <textarea
        value={value}
        onChange={(e) => onChange(e.target.value)}
        rows={rows}
        placeholder={placeholder}
        spellCheck={false}
      />
    </Field>
  );
}
