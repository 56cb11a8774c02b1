// The usage chart, loaded on demand (Recharts is the console's largest dependency: its own
// chunk), with a loading line in words meanwhile.
import { lazy, Suspense, type ComponentProps } from 'react';

const UsageChart = lazy(() => import('./UsageChart'));

export function LazyUsageChart(props: ComponentProps<typeof UsageChart>) {
  return (
    <Suspense fallback={<p role="status">Loading the chart…</p>}>
      <UsageChart {...props} />
    </Suspense>
  );
}
