// Spend (line, USD) and requests (bars) per day. Loaded on demand: Recharts is the
// largest dependency of the console.
import {
  Bar,
  CartesianGrid,
  ComposedChart,
  Legend,
  Line,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts';
import { dateOnly, int, usd } from '../format';
import type { DayPoint } from './chartData';

export default function UsageChart({ points, height = 280 }: { points: DayPoint[]; height?: number }) {
  const totalCost = points.reduce((s, p) => s + p.cost, 0);
  const totalReq = points.reduce((s, p) => s + p.requests, 0);
  const summary = points.length
    ? `Spend and requests per day (UTC days) from ${dateOnly(points[0]?.day)} to ${dateOnly(points[points.length - 1]?.day)}: ${usd(totalCost)} over ${int(totalReq)} requests.`
    : 'No usage in this period.';
  return (
    <figure className="chart">
      <div style={{ width: '100%', height }} aria-hidden="true">
        <ResponsiveContainer width="100%" height="100%">
          <ComposedChart data={points} margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" stroke="#e4dfda" vertical={false} />
            <XAxis
              dataKey="day"
              tickFormatter={(d: string) => dateOnly(d)}
              tick={{ fontSize: 12 }}
              minTickGap={24}
            />
            <YAxis
              yAxisId="cost"
              tickFormatter={(v: number) => usd(v)}
              tick={{ fontSize: 12 }}
              width={72}
              allowDecimals
            />
            <YAxis
              yAxisId="req"
              orientation="right"
              tick={{ fontSize: 12 }}
              width={48}
              allowDecimals={false}
            />
            <Tooltip
              labelFormatter={(d) => dateOnly(String(d))}
              formatter={(value, name) => (name === 'Spend (USD)' ? usd(Number(value)) : int(Number(value)))}
            />
            <Legend />
            <Bar
              yAxisId="req"
              dataKey="requests"
              name="Requests"
              fill="#c9b8aa"
              radius={[3, 3, 0, 0]}
              isAnimationActive={false}
            />
            <Line
              yAxisId="cost"
              dataKey="cost"
              name="Spend (USD)"
              stroke="#7a3e1d"
              strokeWidth={2}
              dot={points.length <= 14}
              isAnimationActive={false}
            />
          </ComposedChart>
        </ResponsiveContainer>
      </div>
      <figcaption className="muted small">{summary}</figcaption>
    </figure>
  );
}
