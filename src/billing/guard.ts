// The anomaly guard's settings (contract §8), used by keys (a key's own guard) and billing
// (a group's, for all its keys): the API shape (USD), the stored shape (JSON text, nano-USD) and the
// in-memory shape the relay reads. The counting itself is security/guard.ts.
import { z } from 'zod';
import { nanoToUsd, usdToNano } from './money.js';

export type GuardAction = 'alert' | 'disable';

/** What the relay checks: null thresholds are not watched. */
export interface Guard {
  maxIpsPerHour: number | null;
  maxSpendPerHourNano: number | null;
  action: GuardAction;
}

/** As the API reads and writes it. */
export interface GuardJson {
  max_ips_per_hour?: number;
  max_spend_per_hour?: number;
  action: GuardAction;
}

/** The API's input shape: at least one threshold. */
export const zGuard = z
  .object({
    max_ips_per_hour: z.number().int().min(1).max(1_000_000).optional(),
    max_spend_per_hour: z.number().finite().positive().max(9_000_000).optional(),
    action: z.enum(['alert', 'disable']),
  })
  .strict()
  .refine((g) => g.max_ips_per_hour !== undefined || g.max_spend_per_hour !== undefined, {
    message: 'set max_ips_per_hour, max_spend_per_hour or both',
  })
  .refine((g) => g.max_spend_per_hour === undefined || usdToNano(g.max_spend_per_hour) !== null, {
    message: 'max_spend_per_hour: at most 9 decimal places',
  });

/** The answer's shape (OpenAPI). */
export const GuardSchema = z
  .object({
    max_ips_per_hour: z.number().int().optional().describe('distinct client IPs per clock hour'),
    max_spend_per_hour: z.number().optional().describe('USD per clock hour'),
    action: z.enum(['alert', 'disable']),
  })
  .meta({ title: 'Guard' });

export function guardFromJson(g: GuardJson): Guard {
  return {
    maxIpsPerHour: g.max_ips_per_hour ?? null,
    maxSpendPerHourNano: g.max_spend_per_hour === undefined ? null : usdToNano(g.max_spend_per_hour),
    action: g.action,
  };
}

export function guardToJson(g: Guard): GuardJson {
  return {
    ...(g.maxIpsPerHour !== null ? { max_ips_per_hour: g.maxIpsPerHour } : {}),
    ...(g.maxSpendPerHourNano !== null ? { max_spend_per_hour: nanoToUsd(g.maxSpendPerHourNano) } : {}),
    action: g.action,
  };
}

/** Stored as JSON text with money in nano-USD (never a float at rest). */
export function storeGuard(g: Guard | null): string | null {
  if (g === null) return null;
  return JSON.stringify({
    max_ips_per_hour: g.maxIpsPerHour,
    max_spend_per_hour_nano: g.maxSpendPerHourNano,
    action: g.action,
  });
}

/** A stored guard; an unreadable one is treated as none (and logged by nobody: it cannot be written). */
export function readGuard(text: string | null | undefined): Guard | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text) as {
      max_ips_per_hour?: number | null;
      max_spend_per_hour_nano?: number | null;
      action?: string;
    };
    if (v.action !== 'alert' && v.action !== 'disable') return null;
    return {
      maxIpsPerHour: typeof v.max_ips_per_hour === 'number' ? v.max_ips_per_hour : null,
      maxSpendPerHourNano: typeof v.max_spend_per_hour_nano === 'number' ? v.max_spend_per_hour_nano : null,
      action: v.action,
    };
  } catch {
    return null;
  }
}
