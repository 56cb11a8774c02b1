// Cursor pages of rows newest first by id: a list reads `limit + 1` rows, and the extra one
// only says that more follow; the cursor is the id of the page's last row.

export interface IdPage<T> {
  data: T[];
  next_cursor: string | null;
}

/** The page of `rows` (read with `limit + 1`), each row answered as `toJson` makes it. */
export function idPage<R extends { id: number | string }, T>(
  rows: R[],
  limit: number,
  toJson: (row: R) => T,
): IdPage<T> {
  const page = rows.slice(0, limit);
  return {
    data: page.map((r) => toJson(r)),
    next_cursor: rows.length > limit ? String(page[page.length - 1]!.id) : null,
  };
}
