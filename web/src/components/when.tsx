// A moment in a table cell: a <time> with the full date and time as its tooltip, shown as a
// day or as "3 hours ago"; a missing moment reads "never".
import { dateOnly, dateTime, relative } from '../format';

export function When({ at, as = 'date' }: { at: string | null | undefined; as?: 'date' | 'relative' }) {
  if (!at) return <span className="muted">never</span>;
  return (
    <time dateTime={at} title={dateTime(at)}>
      {as === 'date' ? dateOnly(at) : relative(at)}
    </time>
  );
}
