// Small read-only pieces of a record: the quota meter, status and HTTP status badges.
import type { BudgetUsage } from '../api';
import { dateTime, usd } from '../format';

export function QuotaMeter({ used, quota }: { used: number; quota: number | null }) {
  if (quota === null || quota === undefined) {
    return (
      <span className="quota">
        <span>{usd(used)}</span> <span className="muted">/ unlimited</span>
      </span>
    );
  }
  const ratio = quota > 0 ? Math.min(used / quota, 1) : 1;
  const level = ratio >= 0.9 ? 'high' : ratio >= 0.7 ? 'mid' : 'low';
  return (
    <span className="quota">
      <span>
        {usd(used)} <span className="muted">/ {usd(quota)}</span>
      </span>
      <meter
        className={`meter ${level}`}
        aria-label="Quota used"
        min={0}
        max={100}
        value={Math.round(ratio * 100)}
        aria-valuetext={`${Math.round(ratio * 100)}% of quota used`}
      />
    </span>
  );
}

const PER: Record<BudgetUsage['period'], string> = { daily: 'day', weekly: 'week', monthly: 'month' };

/** Spend in the current budget period against the budget, with when it resets. */
export function BudgetMeter({ usage }: { usage: BudgetUsage | null | undefined }) {
  if (!usage) return <span className="muted">none</span>;
  const ratio = usage.amount > 0 ? Math.min(usage.spent / usage.amount, 1) : 1;
  const level = ratio >= 0.9 ? 'high' : ratio >= 0.7 ? 'mid' : 'low';
  return (
    <span className="quota">
      <span>
        {usd(usage.spent)}{' '}
        <span className="muted">
          / {usd(usage.amount)} per {PER[usage.period]}
        </span>
      </span>
      <meter
        className={`meter ${level}`}
        aria-label="Budget used"
        min={0}
        max={100}
        value={Math.round(ratio * 100)}
        aria-valuetext={`${Math.round(ratio * 100)}% of the ${usage.period} budget used`}
      />
      <span className="muted">resets {dateTime(usage.resets_at)}</span>
    </span>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge status-${status}`}>{status}</span>;
}

export function HttpStatus({ status, code }: { status: number; code?: string | null }) {
  const kind = status < 300 ? 'ok' : status < 500 ? 'warn' : 'bad';
  return (
    <span className={`badge http-${kind}`} title={code ?? undefined}>
      {status}
      {code ? ` ${code}` : ''}
    </span>
  );
}
