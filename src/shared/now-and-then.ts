// For reports that could come once per request or per tick (a failing disk): the first one
// goes out, then at most one every so often, so a persistent failure neither floods the log
// nor goes quiet.

/** `report`, called at most once every `everyMs` (calls in between are dropped). */
export function nowAndThen<A extends unknown[]>(
  everyMs: number,
  report: (...args: A) => void,
  now: () => number = Date.now,
): (...args: A) => void {
  let last = Number.NEGATIVE_INFINITY;
  return (...args) => {
    const t = now();
    if (t - last < everyMs) return;
    last = t;
    report(...args);
  };
}
