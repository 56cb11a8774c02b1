// A job run at once and then every so often, in the background, one run at a time: a tick
// that comes while a run is under way is skipped, or (`rerunWhenBusy`) makes one more run
// follow it while the job is started. A failed run is reported and the next tick runs again.

export interface PeriodicJob {
  /** Runs now in the background, unless a run is under way. */
  tick(): void;
  /** Whether start() was called and stop() not since. */
  readonly started: boolean;
  /** Runs at once and then every `intervalMs` (the timer does not keep the process alive). */
  start(intervalMs: number): void;
  /** No more ticks; resolves when the run under way, if any, ended. */
  stop(): Promise<void>;
}

export function periodicJob(
  run: () => Promise<unknown>,
  onError: (err: unknown) => void,
  opts: { rerunWhenBusy?: boolean } = {},
): PeriodicJob {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;
  let again = false;

  const tick = () => {
    if (running) {
      if (opts.rerunWhenBusy) again = true;
      return;
    }
    running = run()
      .catch(onError)
      .finally(() => {
        running = null;
        if (again && timer) {
          again = false;
          tick();
        }
      });
  };

  return {
    tick,
    get started() {
      return timer !== null;
    },
    start(intervalMs) {
      if (timer) return;
      tick();
      timer = setInterval(tick, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = null;
      await running;
    },
  };
}
