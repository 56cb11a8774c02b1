// Data loading for the pages: a hook that loads on mount and when its dependencies change,
// and the loading / error / empty view around what it loaded.
import { type DependencyList, type ReactNode, useCallback, useEffect, useRef, useState } from 'react';
import { errorMessage } from '../api';

export interface AsyncState<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Whether two dependency lists hold the same values (React's `Object.is` comparison). */
export function sameDeps(a: DependencyList, b: DependencyList): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

/**
 * A number that goes up whenever `deps` differ from the last render's: a hook can hand its
 * caller's dependency list on to `useEffect` as one value.
 */
function useDepsVersion(deps: DependencyList): number {
  const ref = useRef({ deps, version: 0 });
  if (!sameDeps(ref.current.deps, deps)) ref.current = { deps, version: ref.current.version + 1 };
  return ref.current.version;
}

/**
 * Runs `fn` on mount and again whenever `deps` change (like `useEffect`), aborting the
 * previous run; `reload` runs it again. The latest `fn` is always the one called.
 */
export function useAsync<T>(fn: (signal: AbortSignal) => Promise<T>, deps: DependencyList): AsyncState<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({
    data: undefined,
    error: undefined,
    loading: true,
  });
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const version = useDepsVersion(deps);
  const [tick, setTick] = useState(0);
  // `version` and `tick` are triggers: a new dependency list or a reload runs the load again.
  useEffect(() => {
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true, error: undefined }));
    fnRef.current(ctl.signal).then(
      (data) => {
        if (!ctl.signal.aborted) setState({ data, error: undefined, loading: false });
      },
      (error: unknown) => {
        if (!ctl.signal.aborted) setState((s) => ({ data: s.data, error, loading: false }));
      },
    );
    return () => ctl.abort();
  }, [version, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** Loading / error / empty wrapper, always in words. */
export function AsyncView<T>({
  state,
  what,
  isEmpty,
  empty,
  children,
}: {
  state: AsyncState<T>;
  what: string;
  isEmpty?: (data: T) => boolean;
  empty?: ReactNode;
  children: (data: T) => ReactNode;
}) {
  if (state.error && state.data === undefined) {
    return (
      <div className="notice error" role="alert">
        <p>
          Could not load {what}: {errorMessage(state.error)}
        </p>
        <button type="button" onClick={state.reload}>
          Try again
        </button>
      </div>
    );
  }
  if (state.data === undefined) {
    return (
      <p className="muted loading" role="status">
        Loading {what}…
      </p>
    );
  }
  return (
    <>
      {state.error ? (
        <div className="notice error" role="alert">
          Could not refresh {what}: {errorMessage(state.error)}
        </div>
      ) : null}
      {isEmpty?.(state.data) ? (
        <div className="empty">{empty ?? <p>No {what} yet.</p>}</div>
      ) : (
        <div className={state.loading ? 'refreshing' : undefined} aria-busy={state.loading}>
          {children(state.data)}
        </div>
      )}
    </>
  );
}
