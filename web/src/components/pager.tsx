// Cursor pagination: the server hands out opaque cursors; we keep a stack to go back.
import { useState } from 'react';
import { PageSizeSelect } from './controls';

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

export type CursorPager = ReturnType<typeof useCursorPager>;

export function Pager({
  pager,
  nextCursor,
  label,
}: {
  pager: CursorPager;
  nextCursor: string | number | null | undefined;
  label: string;
}) {
  return (
    <nav className="pager" aria-label={`${label} pages`}>
      <button type="button" onClick={pager.prev} disabled={pager.page <= 1}>
        Previous page
      </button>
      <span aria-live="polite">Page {pager.page}</span>
      <button
        type="button"
        onClick={() => nextCursor != null && pager.next(String(nextCursor))}
        disabled={nextCursor == null}
      >
        Next page
      </button>
    </nav>
  );
}

/** Below a long paged list: its pager and rows per page (25–200, 50 by default; `limit` in the URL). */
export function TableFoot({
  label,
  pager,
  nextCursor,
  limit,
}: {
  label: string;
  pager: CursorPager;
  nextCursor: string | number | null | undefined;
  limit: number;
}) {
  return (
    <div className="table-foot">
      <Pager label={label} pager={pager} nextCursor={nextCursor} />
      <PageSizeSelect value={limit} sizes={[25, 50, 100, 200]} defaultSize={50} className="inline" />
    </div>
  );
}
