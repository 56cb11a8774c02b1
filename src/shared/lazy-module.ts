// A package required at its first use instead of imported at start, so that a process which
// never needs it (the CLI, a test's in-process server, a gateway without REDIS_URL) does not
// pay for loading it (docs/architecture.md, "Operations and the CLI"). Synchronous, so the
// callers keep their synchronous APIs; where a package ships two builds this is its CommonJS one.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export interface LazyModule<T> {
  /** The package, required now if nothing has yet. */
  load(): T;
  /** The package if something loaded it already, else null (no object of its classes exists). */
  loaded(): T | null;
}

export function lazyModule<T>(specifier: string): LazyModule<T> {
  let module: T | null = null;
  return {
    load: () => (module ??= require(specifier) as T),
    loaded: () => module,
  };
}
