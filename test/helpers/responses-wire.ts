// An OpenAI Responses answer as it looks on the wire, which the mock provider and the gateway's
// translations must both produce.
import { expect } from 'vitest';

/** A text answer's stream opens and closes with these event types (the deltas come between). */
export function expectTextStreamFraming(types: string[]): void {
  expect(types.slice(0, 4)).toEqual([
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
  ]);
  expect(types.slice(-4)).toEqual([
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    'response.completed',
  ]);
}

/** A Responses `usage`: cache reads and writes counted inside input, reasoning inside output. */
export function responsesUsage(u: {
  prompt: number;
  cached: number;
  written: number;
  completion: number;
  reasoning: number;
}) {
  return {
    input_tokens: u.prompt,
    input_tokens_details: { cached_tokens: u.cached, cache_write_tokens: u.written },
    output_tokens: u.completion,
    output_tokens_details: { reasoning_tokens: u.reasoning },
    total_tokens: u.prompt + u.completion,
  };
}
