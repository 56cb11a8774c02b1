// Fastify gives every request its own logger (`req.log`): a pino child carrying the request id.
// Making that child costs µs per request, and a request that goes well logs nothing (the call-log
// table is the relay's access log). This factory hands out a stand-in that makes the real child
// on the first line logged, with the same bindings and options, so every line keeps its reqId.
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, LevelWithSilentOrString, LogFn } from 'pino';

/** The log methods: each makes the real child if need be and logs the line through it. */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

class LazyChildLogger {
  #child: FastifyBaseLogger | null = null;
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #opts: ChildLoggerOptions;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#opts = opts;
  }

  /** The pino child this stands for, made once. */
  get real(): FastifyBaseLogger {
    if (this.#child === null) this.#child = this.#parent.child(this.#bindings, this.#opts);
    return this.#child;
  }

  get level(): LevelWithSilentOrString {
    return this.#child?.level ?? this.#opts.level ?? this.#parent.level;
  }
  set level(level: LevelWithSilentOrString) {
    this.real.level = level;
  }

  child(bindings: Bindings, opts?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real.child(bindings, opts);
  }
}

for (const level of LOG_LEVELS)
  Object.defineProperty(LazyChildLogger.prototype, level, {
    value(this: LazyChildLogger, ...args: Parameters<LogFn>): void {
      this.real[level](...args);
    },
    writable: true,
    configurable: true,
  });

/** Fastify's `childLoggerFactory`: req.log as a stand-in that makes its pino child when first used. */
export function lazyChildLogger(
  logger: FastifyBaseLogger,
  bindings: Bindings,
  opts: ChildLoggerOptions,
): FastifyBaseLogger {
  return new LazyChildLogger(logger, bindings, opts) as unknown as FastifyBaseLogger;
}
