// The money ledger on the hot path, as one interface with two implementations. Before
// forwarding, a request reserves its worst-case cost against both its key's quota and its
// account's balance; afterwards it settles the real cost (releasing the rest) or is refunded
// in full. Concurrent requests can never together spend past a quota or balance.
//
//   ledger-local.ts   in memory and synchronous once an account is loaded (one instance)
//   ledger-redis.ts   with REDIS_URL: the live totals live in Redis and reserve / settle are
//                     single Lua scripts, so gateways on one database share admission
//   ledger-counters.ts  what both keep in process: spend settled here and not yet written,
//                     the database base values, and the usage writer's flush
//
// Spend reaches the database in batches (usage/writer.ts), in the same transaction as the
// log rows that explain it (each row carries the cost settled for it), so the database stays
// self-consistent whenever a crash strikes; the writer's journal keeps what was not written.
//
// This file holds the interface and the arithmetic both implementations follow (the Redis
// one in Lua, with the same rules): what a hold may take, and what a settlement charges.
import type { Db } from '../db/index.js';
import type { NewLog } from '../db/schema.js';
import type { HoldGeneration } from '../shared/hold-lease.js';

export interface Reservation {
  keyId: number;
  userId: number;
  /** The key's quota when admitted (null = unlimited). */
  quotaNano: number | null;
  amount: number;
  done: boolean;
  /** With Redis: the generation of this instance's holds the amount is held in. */
  gen?: HoldGeneration;
}

export type Refusal = 'key_quota' | 'balance';

export type ReserveResult = { ok: true; reservation: Reservation } | { ok: false; reason: Refusal };

/**
 * What the ledger needs from the domains that own spend and balances (keys: `api_keys.used_nano`,
 * accounts: `users.balance_nano`): reads of the stored values, and relative updates inside the
 * usage writer's transaction. services.ts passes these functions, not the whole services.
 */
export interface LedgerStore {
  /** A key's spend as stored. */
  usedNano(keyId: number): Promise<number>;
  /** An account's balance as stored. */
  balanceNano(userId: number): Promise<number>;
  /** Adds spend per key, inside `trx`. */
  addUsed(trx: Db, deltas: Map<number, number>): Promise<void>;
  /** Subtracts spend per account, inside `trx`. */
  subtractSpend(trx: Db, deltas: Map<number, number>): Promise<void>;
}

/** The usage writer's hooks around its transaction (usage/writer.ts `Contributor`). */
export interface FlushHandle {
  committed(): void;
  aborted(): void;
}

export interface Ledger {
  /**
   * Holds `amount` nano-USD against the key quota (null = unlimited) and the account balance,
   * if each has `need` (≥ amount; default: amount) left: admission/admission.ts `roomNeeded`.
   */
  reserve(
    keyId: number,
    userId: number,
    quotaNano: number | null,
    amount: number,
    need?: number,
  ): Promise<ReserveResult>;
  /**
   * Releases the hold and charges the real cost; answers what was charged (0 when the
   * reservation was settled already). See `chargeFor` for a cost above the hold.
   */
  settle(r: Reservation, cost: number): Promise<number>;
  /** Refunds the whole hold, in the background (errors are logged). */
  release(r: Reservation): void;
  /**
   * Spend as the API shows it: the stored value (`read`) plus what this instance has not
   * written yet, taken together between flushes (a batch committed between the two would count
   * twice, or not at all).
   */
  usedNano(keyId: number, read: () => Promise<number>): Promise<number>;
  /** Balance as the API shows it: the stored value (`read`) minus this instance's unwritten spend, likewise. */
  balanceNano(userId: number, read: () => Promise<number>): Promise<number>;
  /**
   * Contributor to the usage writer's transaction: writes the spend of the log rows in the
   * batch, and once the transaction commits moves it from pending into the base values.
   * `written` are the rows the database gains (a replayed row it held already charges nothing).
   */
  flushInto(trx: Db, rows: readonly NewLog[], written?: readonly NewLog[]): Promise<FlushHandle>;
  /** A top-up or debit by an admin: shared counters move with it (in-process ones re-read it). */
  credit(userId: number, amountNano: number): Promise<void>;
  stats(): { keys: number; users: number };
  /** Stops background work and gives up this instance's holds (after the drain). */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// The arithmetic (mirrored in ledger-redis.ts's Lua)

/** What a key may still take: quota minus spend (settled, written or not) minus holds. */
export const keyRoom = (quotaNano: number | null, used: number, held: number): number =>
  quotaNano === null ? Number.POSITIVE_INFINITY : quotaNano - used - held;

/** What an account may still take: balance (after spend, written or not) minus holds. */
export const userRoom = (balance: number, held: number): number => balance - held;

/** Why a hold that needs `need` of room is refused, the key quota checked first; null = admitted. */
export function refusal(need: number, room: { key: number; user: number }): Refusal | null {
  if (room.key < need) return 'key_quota';
  if (room.user < need) return 'balance';
  return null;
}

/**
 * What a settlement charges once its hold is released. The cost is the whole charge whenever
 * it fits the hold — always, when the upstream keeps to the admitted output cap. Should an
 * upstream overrun it, the charge stops at what the key quota and the account balance still
 * cover (`room`, the smaller of the two), so spend never passes either.
 */
export const chargeFor = (cost: number, hold: number, room: number): number =>
  cost <= hold ? cost : Math.max(0, Math.min(cost, room));

/** Spend per key and per account in a batch of log rows (each carries its settled cost). */
export function spendOf(rows: readonly NewLog[]): { keys: Map<number, number>; users: Map<number, number> } {
  const keys = new Map<number, number>();
  const users = new Map<number, number>();
  for (const r of rows) {
    const cost = Number(r.cost_nano);
    if (!cost) continue;
    keys.set(r.key_id, (keys.get(r.key_id) ?? 0) + cost);
    users.set(r.user_id, (users.get(r.user_id) ?? 0) + cost);
  }
  return { keys, users };
}
