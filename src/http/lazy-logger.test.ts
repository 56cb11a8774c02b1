import Fastify, { type FastifyBaseLogger, LogController } from 'fastify';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { lazyChildLogger } from './lazy-logger.js';

/** A pino logger writing its lines into an array, counting the children it makes. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  let children = 0;
  const child = logger.child;
  // `this`, not the root: pino's children inherit this method (grandchildren are made from them).
  logger.child = function (this: typeof logger, ...args: Parameters<typeof child>) {
    children++;
    return child.apply(this, args);
  } as typeof logger.child;
  return { logger, lines, children: () => children };
}

describe('lazy request logger', () => {
  it('makes the pino child only when a line is logged, and every line carries the bindings', () => {
    const c = capture();
    const log = lazyChildLogger(c.logger as FastifyBaseLogger, { reqId: 'req_1' }, {});
    expect(c.children()).toBe(0);
    expect(log.level).toBe('info');
    log.debug('not shown');
    log.warn({ status: 502 }, 'upstream attempt failed');
    log.error('settling failed');
    expect(c.children()).toBe(1);
    expect(c.lines.map((l) => [l.reqId, l.msg, l.status])).toEqual([
      ['req_1', 'upstream attempt failed', 502],
      ['req_1', 'settling failed', undefined],
    ]);
    log.child({ part: 'x' }).info('from a grandchild');
    expect(c.lines.at(-1)).toMatchObject({ reqId: 'req_1', part: 'x', msg: 'from a grandchild' });
  });

  it('works as Fastify’s childLoggerFactory: req.log logs with the request id, quiet requests make no child', async () => {
    const c = capture();
    const app = Fastify({
      loggerInstance: c.logger as FastifyBaseLogger,
      logController: new LogController({ disableRequestLogging: true }),
      childLoggerFactory: lazyChildLogger,
      genReqId: () => 'req_42',
    });
    app.get('/quiet', async () => 'ok');
    app.get('/loud', async (req) => {
      req.log.warn({ n: 1 }, 'something to say');
      return 'ok';
    });
    await app.ready();
    const before = c.children();
    expect((await app.inject({ url: '/quiet' })).statusCode).toBe(200);
    expect(c.children()).toBe(before);
    expect((await app.inject({ url: '/loud' })).statusCode).toBe(200);
    expect(c.lines.at(-1)).toMatchObject({ reqId: 'req_42', n: 1, msg: 'something to say' });
    await app.close();
  });
});
