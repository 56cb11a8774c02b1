// Work started in the background (not awaited by whoever started it) whose end a shutdown, or a
// reader that must see its effect, waits for.

export interface BackgroundWork {
  /** Follows `work` until it settles; answers it, so the caller may still await it. */
  track<T>(work: Promise<T>): Promise<T>;
  /** Resolves once all tracked work has settled, work started meanwhile included; never rejects. */
  settled(): Promise<void>;
}

export function backgroundWork(): BackgroundWork {
  const running = new Set<Promise<unknown>>();
  return {
    track(work) {
      running.add(work);
      const forget = () => running.delete(work);
      work.then(forget, forget);
      return work;
    },
    async settled() {
      while (running.size > 0) await Promise.allSettled(running);
    },
  };
}
