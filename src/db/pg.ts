// node-postgres as every PostgreSQL connection of ours reads it: int8 and numeric as numbers.
// Its own module so a gateway on SQLite never loads pg (openStorage imports it when needed).
import pg from 'pg';

// int8 and numeric arrive from pg as strings; the schema keeps every such value within
// Number.MAX_SAFE_INTEGER (money is bounded in billing/money.ts), so numbers are exact.
function toSafeNumber(v: string): number {
  const n = Number(v);
  if (Number.isInteger(n) && !Number.isSafeInteger(n)) throw new Error('integer out of safe range');
  return n;
}
pg.types.setTypeParser(20, toSafeNumber);
pg.types.setTypeParser(1700, toSafeNumber);

export default pg;
