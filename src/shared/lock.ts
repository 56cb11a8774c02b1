// An in-process lock: one holder at a time, the others wait in order. The ledger and spend
// caps use it to keep reads of stored spend apart from flushes, so nothing counts twice.

/** Returns `acquire`: resolves, once the lock is free, with the function that releases it. */
export function createLock(): () => Promise<() => void> {
  let lock: Promise<void> = Promise.resolve();
  return function acquire(): Promise<() => void> {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const prev = lock;
    lock = prev.then(() => held);
    return prev.then(() => release);
  };
}
