// Page scaffolding shared by the pages: the page head, data tables and term/value lists.
import { createContext, type ReactNode, useContext } from 'react';

/** The page title with its lead text, and the page's main action (if any) beside it. */
export function PageHead({
  title,
  lead,
  children,
}: {
  title: ReactNode;
  lead: ReactNode;
  children?: ReactNode;
}) {
  return (
    <div className="page-head">
      <div>
        <h1>{title}</h1>
        <p className="muted lead">{lead}</p>
      </div>
      {children}
    </div>
  );
}

/**
 * A column header: its label, or `num` for a right-aligned number column, `hidden` for a
 * label only screen readers get (e.g. the row actions). Falsy entries are left out.
 */
export type Column = string | { label: string; num?: boolean; hidden?: boolean } | null | false | undefined;

/** The last column: each row's buttons. */
export const ACTIONS: Column = { label: 'Actions', hidden: true };

/** Whether the rows of the table being rendered spell out their ARIA roles. */
const ExplicitRoles = createContext(false);

/**
 * A `table.data` with its (visually hidden) caption and one header row; `children` are the
 * body rows. `explicitRoles` spells out the ARIA table roles, which keep the table semantics
 * where CSS restyles rows (the phone layout shows the keys table as cards); its body rows
 * are then `TableRow`s of `TableCell`s, which carry the roles too.
 */
export function DataTable({
  caption,
  columns,
  className,
  explicitRoles,
  children,
}: {
  caption: ReactNode;
  columns: Column[];
  className?: string;
  explicitRoles?: boolean;
  children: ReactNode;
}) {
  const role = (r: string) => (explicitRoles ? r : undefined);
  return (
    <div className="table-wrap">
      <table className={className ? `data ${className}` : 'data'} role={role('table')}>
        <caption className="sr-only">{caption}</caption>
        <thead role={role('rowgroup')}>
          <tr role={role('row')}>
            {columns.map((c) => {
              if (!c) return null;
              const col = typeof c === 'string' ? { label: c } : c;
              return (
                <th
                  key={col.label}
                  scope="col"
                  role={role('columnheader')}
                  className={col.num ? 'num' : undefined}
                >
                  {col.hidden ? <span className="sr-only">{col.label}</span> : col.label}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody role={role('rowgroup')}>
          <ExplicitRoles.Provider value={Boolean(explicitRoles)}>{children}</ExplicitRoles.Provider>
        </tbody>
      </table>
    </div>
  );
}

/** A body row of a `DataTable` (with `role="row"` where the table spells roles out). */
export function TableRow({ children }: { children: ReactNode }) {
  const explicit = useContext(ExplicitRoles);
  return <tr role={explicit ? 'row' : undefined}>{children}</tr>;
}

/** A body cell of a `DataTable`; `label` names its column where rows are shown as cards. */
export function TableCell({
  label,
  className,
  colSpan,
  children,
}: {
  label?: string;
  className?: string;
  colSpan?: number;
  children: ReactNode;
}) {
  const explicit = useContext(ExplicitRoles);
  return (
    <td role={explicit ? 'cell' : undefined} data-label={label} className={className} colSpan={colSpan}>
      {children}
    </td>
  );
}

/** The totals over everything the filters match (not just the page shown). */
export function FilterTotals({ items }: { items: [string, ReactNode][] }) {
  return <TermList className="totals" label="Totals for these filters" items={items} />;
}

/** Terms and their values (`<dl>` of `<div><dt/><dd/></div>`), e.g. totals or a record's details. */
export function TermList({
  items,
  className,
  label,
}: {
  items: [string, ReactNode][];
  className: string;
  label?: string;
}) {
  return (
    <dl className={className} aria-label={label}>
      {items.map(([term, value]) => (
        <div key={term}>
          <dt>{term}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

/** A card: a titled section of a page, with its actions (if any) in the head. */
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
