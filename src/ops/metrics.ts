// Prometheus metrics (contract §9), fed from ONE observation point: every relay log row passes
// through observe() just before it is queued, so the counters agree with the call log.
// Other figures (key cache, log queue) are read from their owners when scraped.
// Labels never carry a key, a secret or a key name: only protocol, model, status, channel
// name, group and token direction. Values a client chooses (the model) are bounded: a model
// that is not priced is counted as "other", so made-up names cannot grow the series count.
import { Counter, Gauge, type Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { NewLog } from '../db/schema.js';

export interface MetricsSources {
  /** The key verifier's running counters. */
  keyCache?: () => { hits: number; misses: number };
  /** Entries held in the key cache. */
  keyCacheSize?: () => number;
  /** Log rows queued in memory, not yet written. */
  logQueueDepth?: () => number;
  /** Failed log-writer batches so far (they are retried). */
  logWriteFailures?: () => number;
  /** Settlements and releases kept for Redis while it was out of reach (REDIS_URL only). */
  redisPendingWrites?: () => number;
  /** Whether a model name may be a label value (a priced model); others count as "other". */
  knownModel?: (model: string) => boolean;
  /** Node.js process metrics (CPU, memory, event loop, GC). Default true. */
  processMetrics?: boolean;
}

/** Seconds: from a fast refusal to a long stream. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
export const TTFT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 60];
/**
 * A try failed when the relay recorded an error for it (it then moved on), or got no HTTP
 * answer, or an answer the relay retries (401/403/408/409/429/5xx).
 */
const FAILED_STATUS = (s: number) =>
  s === 401 || s === 403 || s === 408 || s === 409 || s === 429 || s >= 500;
/** A hard cap on distinct label values per label, whatever the sources say. */
const MAX_VALUES = 2000;

interface Attempt {
  channel_name?: unknown;
  status?: unknown;
  error?: unknown;
}

/**
 * Process metrics are per process, not per gateway instance: collected once, into their own
 * registry (collecting them per instance would add a GC observer and an event-loop monitor
 * each time, e.g. for every test server).
 */
let processRegistry: Registry | null = null;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export function createMetrics(src: MetricsSources = {}) {
  const registry = new Registry();
  const proc = src.processMetrics === false ? null : processMetrics();

  /**
   * A labelled counter summed in plain numbers per request and handed to prom-client only when
   * scraped: prom-client hashes and validates the label set on every inc (µs per request).
   * Series keep their first-seen order, as prom-client's own would; sums add in the same order.
   */
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) => {
    const series = new Map<string, { labels: Record<L, string>; value: number }>();
    new Counter<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const s of series.values()) this.inc(s.labels, s.value);
      },
    });
    return {
      /** Adds `value` to the series `key` names (one key per label set; `labels` builds it once). */
      add(key: string, labels: () => Record<L, string>, value = 1): void {
        if (!(value >= 0) || !Number.isFinite(value)) return;
        const s = series.get(key);
        if (s) s.value += value;
        else series.set(key, { labels: labels(), value });
      },
    };
  };
  /**
   * A histogram by protocol, counted in plain arrays and exposed as prom-client's Histogram
   * would be (same lines, same order, same float sums): its observe() hashes and validates the
   * label set on every call.
   */
  const protocolHistogram = (name: string, help: string, buckets: number[]) => {
    const series = new Map<
      string,
      { labels: { protocol: string }; counts: number[]; sum: number; count: number }
    >();
    const bucketName = `${name}_bucket`;
    registry.registerMetric({
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      get: async () => {
        const values: object[] = [];
        for (const s of series.values()) {
          let acc = 0;
          for (const [i, le] of buckets.entries()) {
            acc += s.counts[i]!;
            values.push({ labels: { le }, sharedLabels: s.labels, value: acc, metricName: bucketName });
          }
          values.push(
            { labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: bucketName },
            { labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${name}_sum` },
            { labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${name}_count` },
          );
        }
        return { name, help, type: 'histogram', aggregator: 'sum', values };
      },
    } as unknown as Histogram);
    return {
      observe(protocol: string, value: number): void {
        if (!Number.isFinite(value)) return;
        let s = series.get(protocol);
        if (!s) {
          s = { labels: { protocol }, counts: buckets.map(() => 0), sum: 0, count: 0 };
          series.set(protocol, s);
        }
        const i = buckets.findIndex((le) => value <= le);
        if (i >= 0) s.counts[i]!++;
        s.sum += value;
        s.count += 1;
      },
    };
  };
  /** Figures read from their owners when scraped; undefined = no such source (nothing to report). */
  const scrapedCounter = (name: string, help: string, read: () => number | undefined) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const v = read();
        if (v === undefined) return;
        this.reset();
        this.inc(v);
      },
    });
  const scrapedGauge = (name: string, help: string, read: () => number | undefined) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const v = read();
        if (v !== undefined) this.set(v);
      },
    });

  const requests = counter(
    'mole_requests_total',
    'Relay requests that presented a valid key, by ingress protocol, model and HTTP status',
    ['protocol', 'model', 'status'],
  );
  const duration = protocolHistogram(
    'mole_request_duration_seconds',
    'Relay request duration until the answer ended (streams included), seconds',
    DURATION_BUCKETS,
  );
  const ttft = protocolHistogram(
    'mole_ttft_seconds',
    'Time to the first answer byte from the upstream, seconds',
    TTFT_BUCKETS,
  );
  const upstreamFailures = counter(
    'mole_upstream_failures_total',
    'Upstream tries that failed (no answer, timeout, refused or unusable answer), by channel name',
    ['channel'],
  );
  const spend = counter('mole_spend_usd_total', 'Money charged, USD, by the key group whose prices applied', [
    'group',
  ]);
  const tokens = counter(
    'mole_tokens_total',
    'Billed tokens: input (uncached), cached (cache reads), cache_write, output (reasoning included)',
    ['direction'],
  );
  for (const d of ['input', 'cached', 'cache_write', 'output']) tokens.add(d, () => ({ direction: d }), 0);

  scrapedCounter(
    'mole_key_cache_hits_total',
    'Key verifications answered from the in-memory key cache',
    () => src.keyCache?.().hits,
  );
  scrapedCounter(
    'mole_key_cache_misses_total',
    'Key verifications that missed the key cache (looked up in the database or the unknown list)',
    () => src.keyCache?.().misses,
  );
  scrapedGauge('mole_key_cache_entries', 'Verified keys held in memory', () => src.keyCacheSize?.());
  scrapedGauge(
    'mole_log_queue_depth',
    'Call-log rows queued in memory, not yet written to the database',
    () => src.logQueueDepth?.(),
  );
  scrapedCounter(
    'mole_log_write_failures_total',
    'Call-log batches that failed to write (they are kept and retried)',
    () => src.logWriteFailures?.(),
  );
  if (src.redisPendingWrites)
    scrapedGauge(
      'mole_redis_pending_writes',
      'Settlements and releases kept while Redis was out of reach, not yet written there',
      src.redisPendingWrites,
    );

  /** Bounded label values: past MAX_VALUES distinct ones, the rest share "other". */
  const seen = new Map<string, Set<string>>();
  function bounded(label: string, value: string): string {
    let set = seen.get(label);
    if (!set) {
      set = new Set();
      seen.set(label, set);
    }
    if (set.has(value)) return value;
    if (set.size >= MAX_VALUES) return 'other';
    set.add(value);
    return value;
  }

  /** The token series exist from the start (created with 0 above): never built here. */
  const unknownDirection = (): never => {
    throw new Error('mole_tokens_total: unknown direction');
  };

  function modelLabel(model: string | null | undefined): string {
    if (!model) return 'none';
    if (src.knownModel && !src.knownModel(model)) return 'other';
    return bounded('model', model);
  }

  function failedChannels(attempts: string | null | undefined, given?: readonly Attempt[]): string[] {
    let list: unknown = given;
    if (!list) {
      if (!attempts) return [];
      try {
        list = JSON.parse(attempts);
      } catch {
        return [];
      }
    }
    if (!Array.isArray(list)) return [];
    const out: string[] = [];
    for (const a of list as Attempt[]) {
      const failed = a.error != null || typeof a.status !== 'number' || FAILED_STATUS(a.status);
      if (failed) out.push(typeof a.channel_name === 'string' ? a.channel_name : 'unknown');
    }
    return out;
  }

  return {
    registry,
    contentType: registry.contentType,

    /**
     * One relay request, from its log row (called right before the row is queued). `group` is
     * the verified key's group; `attempts`, the row's attempts before they were serialised
     * (spares parsing them back). Never throws: metrics must not break a request.
     */
    observe(row: NewLog, group?: string | null, attempts?: readonly Attempt[]): void {
      try {
        const protocol = bounded('protocol', row.protocol ?? 'openai');
        const model = modelLabel(row.model);
        requests.add(`${protocol}\u0000${model}\u0000${row.status}`, () => ({
          protocol,
          model,
          status: String(row.status),
        }));
        duration.observe(protocol, row.latency_ms / 1000);
        if (row.ttft_ms != null) ttft.observe(protocol, row.ttft_ms / 1000);
        for (const ch of failedChannels(row.attempts, attempts)) {
          const channel = bounded('channel', ch);
          upstreamFailures.add(channel, () => ({ channel }));
        }
        if (row.cost_nano > 0) {
          const g = bounded('group', group || 'default');
          spend.add(g, () => ({ group: g }), row.cost_nano / 1e9);
        }
        const cached = row.cached_tokens;
        const cacheWrite = row.cache_write_tokens ?? 0;
        const input = Math.max(0, row.prompt_tokens - cached - cacheWrite);
        if (input > 0) tokens.add('input', unknownDirection, input);
        if (cached > 0) tokens.add('cached', unknownDirection, cached);
        if (cacheWrite > 0) tokens.add('cache_write', unknownDirection, cacheWrite);
        if (row.completion_tokens > 0) tokens.add('output', unknownDirection, row.completion_tokens);
      } catch {
        /* a metric is never worth a failed request */
      }
    },

    /** The Prometheus text exposition. */
    async text(): Promise<string> {
      const own = await registry.metrics();
      return proc ? `${await proc.metrics()}\n${own}` : own;
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
