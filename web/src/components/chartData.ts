import type { UsageRow } from '../api';

export interface DayPoint {
  day: string;
  requests: number;
  cost: number;
}

function dayKey(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** Fills the days without traffic with zeros so the axis is continuous. */
export function toDaySeries(rows: UsageRow[], from?: string, to?: string): DayPoint[] {
  const byDay = new Map<string, DayPoint>();
  for (const r of rows) {
    const day = (r.day ?? '').slice(0, 10);
    if (!day) continue;
    const p = byDay.get(day) ?? { day, requests: 0, cost: 0 };
    p.requests += r.requests;
    p.cost += r.cost;
    byDay.set(day, p);
  }
  const days = [...byDay.keys()].sort();
  const start = from ? dayKey(new Date(from)) : days[0];
  const end = to
    ? dayKey(new Date(to))
    : days.length
      ? (days[days.length - 1] as string)
      : dayKey(new Date());
  if (!start) return [];
  const out: DayPoint[] = [];
  const cur = new Date(`${start}T12:00:00`);
  const last = new Date(
    `${end > (days[days.length - 1] ?? '') ? end : (days[days.length - 1] as string)}T12:00:00`,
  );
  let guard = 0;
  while (cur <= last && guard++ < 800) {
    const k = dayKey(cur);
    out.push(byDay.get(k) ?? { day: k, requests: 0, cost: 0 });
    cur.setDate(cur.getDate() + 1);
  }
  // days outside the range (server buckets in UTC) are still shown
  for (const d of days) if (!out.some((p) => p.day === d)) out.push(byDay.get(d) as DayPoint);
  return out.sort((a, b) => a.day.localeCompare(b.day));
}
