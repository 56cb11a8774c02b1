// Substring search in SQL that behaves the same on SQLite and PostgreSQL.

/**
 * A case-insensitive LIKE pattern matching `text` anywhere, with %, _ and \ taken literally.
 * Use with lower(column) and an explicit ESCAPE '\': SQLite has no default escape character
 * and PostgreSQL's LIKE is case-sensitive, so both are spelt out to behave the same.
 */
export const containsPattern = (text: string) =>
  `%${text.toLowerCase().replace(/[%_\\]/g, (c) => '\\' + c)}%`;
