// Small read-only pieces of a record: the quota meter, status and HTTP status badges.
import type { BudgetUsage } from '../api';
import { dateTime, usd, usdExact } from '../format';

/** How much of `limit` is used, as a meter coloured by how close it is to full. */
function UsedMeter({
  used,
  limit,
  label,
  valueText,
}: {
  used: number;
  limit: number;
  label: string;
  valueText: (percent: number) => string;
}) {
  const ratio = limit > 0 ? Math.min(used / limit, 1) : 1;
  const level = ratio >= 0.9 ? 'high' : ratio >= 0.7 ? 'mid' : 'low';
  const percent = Math.round(ratio * 100);
  return (
    <meter
      className={`meter ${level}`}
      aria-label={label}
      min={0}
      max={100}
      value={percent}
      aria-valuetext={valueText(percent)}
    />
  );
}

export function QuotaMeter({ used, quota }: { used: number; quota: number | null }) {
  if (quota === null || quota === undefined) {
    return (
      <span className="quota">
        <span>{usd(used)}</span> <span className="muted">/ unlimited</span>
      </span>
    );
  }
  return (
    <span className="quota">
      <span>
        {usd(used)} <span className="muted">/ {usdExact(quota)}</span>
      </span>
      <UsedMeter used={used} limit={quota} label="Quota used" valueText={(p) => `${p}% of quota used`} />
    </span>
  );
}

const PER: Record<BudgetUsage['period'], string> = { daily: 'day', weekly: 'week', monthly: 'month' };

/** Spend in the current budget period against the budget, with when it resets. */
export function BudgetMeter({ usage }: { usage: BudgetUsage | null | undefined }) {
  if (!usage) return <span className="muted">none</span>;
  return (
    <span className="quota">
      <span>
        {usd(usage.spent)}{' '}
        <span className="muted">
          / {usdExact(usage.amount)} per {PER[usage.period]}
        </span>
      </span>
      <UsedMeter
        used={usage.spent}
        limit={usage.amount}
        label="Budget used"
        valueText={(p) => `${p}% of the ${usage.period} budget used`}
      />
      <span className="muted">resets {dateTime(usage.resets_at)}</span>
    </span>
  );
}

/** Why a locked key stays off: an admin, a leak report, the anomaly guard or its own kill switch. */
export const LOCKED =
  'Locked (by an admin, a leak report, the anomaly guard or the kill switch): only an admin can enable it';

/** A record's status; a locked key says so, since only an admin can switch it on. */
export function StatusBadge({ status, locked }: { status: string; locked?: boolean | undefined }) {
  if (locked && status === 'disabled')
    return (
      <span className={`badge status-${status}`} title={LOCKED}>
        {status} · locked
      </span>
    );
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
