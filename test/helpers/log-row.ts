// A complete `logs` row for suites and benchmarks that write through the usage writer
// directly: a 200 chat completion with tiny counts and no cost. Callers override what they are
// about; a column added to the table is added here once.
import { randomBytes } from 'node:crypto';
import type { NewLog } from '../../src/db/schema.js';
import { LATER_LOG_COLUMNS } from '../../src/usage/writer.js';

const RUN = randomBytes(4).toString('hex');
let seq = 0;

export function logRow(fields: Partial<NewLog> & Pick<NewLog, 'user_id' | 'key_id'>): NewLog {
  return {
    request_id: `req_${RUN}_${seq++}`,
    created_at: Date.now(),
    key_name: 'k',
    model: 'm',
    upstream_model: 'm',
    channel_id: 1,
    endpoint: '/v1/chat/completions',
    stream: 0,
    status: 200,
    error_code: null,
    prompt_tokens: 1,
    cached_tokens: 0,
    completion_tokens: 1,
    cost_nano: 0,
    latency_ms: 1,
    ttft_ms: null,
    ip: '127.0.0.1',
    estimated: 0,
    ...LATER_LOG_COLUMNS,
    ...fields,
  };
}

/** The row a benchmark request leaves: the bench's model, 12 in / 16 out, its price's cost. */
export const benchLogRow = (
  i: number,
  fields: Pick<NewLog, 'user_id' | 'key_id'> & Partial<NewLog>,
): NewLog =>
  logRow({
    model: 'gpt-4o-mini',
    upstream_model: 'gpt-4o-mini',
    stream: i & 1,
    prompt_tokens: 12,
    completion_tokens: 16,
    cost_nano: 11_400,
    latency_ms: 3,
    ...fields,
  });
