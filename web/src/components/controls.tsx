// Controls shared by the pages: the filter form, labelled selects, rows per page and CSV
// export. Filters that live in the URL are set with `setQuery`.
import { type InputHTMLAttributes, type ReactNode, useId, useState } from 'react';
import { downloadCsv, errorMessage, type Query } from '../api';
import { setQuery, useLocation } from '../router';
import { notify } from './notices';

/** The filter bar of a list: a search landmark named `label`; Enter never submits it. */
export function FilterForm({ label, children }: { label: string; children: ReactNode }) {
  return (
    <search aria-label={label}>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        {children}
      </form>
    </search>
  );
}

/** The button for the main action of a page or section (e.g. "Create key"). */
export function PrimaryButton({ onClick, children }: { onClick: () => void; children: ReactNode }) {
  return (
    <button type="button" className="primary" onClick={onClick}>
      {children}
    </button>
  );
}

export interface Option {
  value: string | number;
  label: ReactNode;
}

/**
 * An input inside its label, so the label text is the input's accessible name; `onChange`
 * gets the text, the other attributes (type, placeholder, required, …) go to the <input>.
 */
export function TextInput({
  label,
  className,
  onChange,
  ...input
}: {
  label: string;
  className?: string;
  value: string;
  onChange: (value: string) => void;
} & Omit<InputHTMLAttributes<HTMLInputElement>, 'value' | 'onChange' | 'className'>) {
  return (
    <label className={className}>
      {label}
      <input {...input} onChange={(e) => onChange(e.target.value)} />
    </label>
  );
}

/**
 * A select inside its label, named by the label's text alone (aria-labelledby): as a label's
 * content, its options' text would join the name ("Key Any key alice-main …").
 */
export function SelectField({
  label,
  value,
  options,
  onChange,
  className,
}: {
  label: string;
  value: string | number;
  options: Option[];
  onChange: (value: string) => void;
  className?: string;
}) {
  const id = useId();
  return (
    <label className={className}>
      <span id={id}>{label}</span>
      <select value={value} onChange={(e) => onChange(e.target.value)} aria-labelledby={id}>
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </label>
  );
}

/** Options for picking a user by name, after a first "any user" option labelled `anyLabel`. */
export function userOptions(
  users: { id: number; username: string }[] | undefined,
  anyLabel: string,
): Option[] {
  return [{ value: '', label: anyLabel }, ...(users ?? []).map((u) => ({ value: u.id, label: u.username }))];
}

/** Rows per page, kept in the URL as `limit` (left out when it is the default). */
export function usePageSize(defaultSize: number): number {
  return Number(useLocation().query.get('limit')) || defaultSize;
}

export function PageSizeSelect({
  value,
  sizes,
  defaultSize,
  className,
}: {
  value: number;
  sizes: number[];
  defaultSize: number;
  className?: string;
}) {
  return (
    <SelectField
      label="Rows per page"
      className={className}
      value={value}
      options={sizes.map((n) => ({ value: n, label: n }))}
      onChange={(v) => setQuery({ limit: v === String(defaultSize) ? null : v })}
    />
  );
}

/** Downloads `path` as CSV with `query`, saved as moleapi-<name>-<today>.csv. */
export function ExportCsvButton({ path, query, name }: { path: string; query: Query; name: string }) {
  const [exporting, setExporting] = useState(false);
  const exportCsv = async () => {
    setExporting(true);
    try {
      await downloadCsv(path, query, `moleapi-${name}-${new Date().toISOString().slice(0, 10)}.csv`);
    } catch (err) {
      notify(`Export failed: ${errorMessage(err)}`, 'error');
    } finally {
      setExporting(false);
    }
  };
  return (
    <button type="button" onClick={exportCsv} disabled={exporting}>
      {exporting ? 'Exporting…' : 'Export CSV'}
    </button>
  );
}
