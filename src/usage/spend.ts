// Spend since a UTC day, per key or per account, from the daily rollup (written in the same
// transaction as the log rows): what a budget period has used so far (budgets/ reads it
// through the function services.ts hands it).
import type { Db } from '../db/index.js';

export function createSpendReader(db: Db) {
  return {
    async spentSince(subject: 'k' | 'u', id: number, day: string): Promise<number> {
      const r = await db
        .selectFrom('usage_daily')
        .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('cost_nano'), eb.lit(0)).as('spent'))
        .where(subject === 'k' ? 'key_id' : 'user_id', '=', id)
        .where('day', '>=', day)
        .executeTakeFirst();
      return Number(r?.spent ?? 0);
    },
  };
}
