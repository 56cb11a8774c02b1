// An upstream attempt that failed before any answer: its own file so that both the transports
// and the body reader (relay/upstream-body.ts) use it without importing each other.

/** Why every attempt still under way is cut when a drain's grace period runs out. */
export const SHUTTING_DOWN = 'the gateway is shutting down';

/** Thrown for failures that never produced an HTTP answer. */
export class UpstreamFailure extends Error {
  constructor(
    message: string,
    readonly timeout: boolean,
  ) {
    super(message);
  }
}
