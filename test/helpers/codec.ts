// For the codec unit tests (src/relay/protocols/*.test.ts): the 400 a codec refuses a request
// with, and a recorded stream fed to a decoder in pieces, with its deltas merged so that every
// chunking of one stream compares equal.
import { expect } from 'vitest';
import { AppError } from '../../src/http/errors.js';
import type { StreamDecoder, StreamEvent } from '../../src/relay/canonical.js';
import type { IngressRequest } from '../../src/relay/protocols/types.js';
import { SseFrameParser } from '../../src/relay/sse.js';

/** The invalid_request AppError `fn` throws; fails the test when it throws none, or another. */
export function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AppError);
    expect((e as AppError).code).toBe('invalid_request');
    return e as AppError;
  }
  throw new Error('expected a refusal');
}

/**
 * Feeds the SSE `text` to `dec` as it would arrive: `chunks` bytes at a time (a number), or in
 * pieces of the listed sizes and then the rest (a list; none: the whole at once). Answers the
 * events; `dec` holds `done` and `usage`.
 */
export function decodeStream(
  dec: StreamDecoder,
  text: string,
  chunks: number | number[] = [],
): StreamEvent[] {
  const parser = new SseFrameParser();
  const events: StreamEvent[] = [];
  const bytes = Buffer.from(text);
  for (let at = 0, k = 0; at < bytes.length; k++) {
    const size = typeof chunks === 'number' ? chunks : (chunks[k] ?? bytes.length - at);
    for (const f of parser.feed(bytes.subarray(at, at + size))) events.push(...dec.feed(f).events);
    at += size;
  }
  for (const f of parser.end()) events.push(...dec.feed(f).events);
  return events;
}

/** `events` with adjacent text, reasoning and tool-argument deltas joined. */
export function mergeDeltas(events: StreamEvent[]): StreamEvent[] {
  const out: StreamEvent[] = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (e.type === 'text' && last?.type === 'text') last.text += e.text;
    else if (e.type === 'reasoning' && last?.type === 'reasoning') last.text += e.text;
    else if (e.type === 'tool_args' && last?.type === 'tool_args' && last.index === e.index)
      last.delta += e.delta;
    else out.push({ ...e });
  }
  return out;
}

/** A streamed OpenAI chat request as a stream's check or decoder sees it (model gpt-4o-mini). */
export const streamIngress = (clientWantsUsage: boolean): IngressRequest =>
  ({
    protocol: 'openai',
    operation: 'generate',
    model: 'gpt-4o-mini',
    stream: true,
    promptTokens: 10,
    maxOutputTokens: 100,
    impliedOutputCap: null,
    clientWantsUsage,
    body: {},
  }) as IngressRequest;

/** A small seeded generator of numbers in [0, 1), so a failing random case can be replayed. */
export const seededRandom = (seed: number) => () => {
  seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
  return seed / 0x80000000;
};
