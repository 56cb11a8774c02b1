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

/** The part of a select query (Kysely's) that reads an id page. */
interface PageQuery<R> {
  orderBy(ref: 'id', direction: 'desc'): PageQuery<R>;
  limit(n: number): PageQuery<R>;
  where(ref: 'id', op: '<', value: number): PageQuery<R>;
  execute(): Promise<R[]>;
}

/** Reads the page of `query` newest first (the rows before `cursor`, if given), each row as `toJson` makes it. */
export async function readIdPage<R extends { id: number | string }, T>(
  query: PageQuery<R>,
  page: { limit: number; cursor?: number | undefined },
  toJson: (row: R) => T,
): Promise<IdPage<T>> {
  let q = query.orderBy('id', 'desc').limit(page.limit + 1);
  if (page.cursor !== undefined) q = q.where('id', '<', page.cursor);
  return idPage(await q.execute(), page.limit, toJson);
}
