// config → storage → services → app → listen. On SIGTERM/SIGINT: stop accepting, let
// in-flight requests (streams included) finish, flush pending usage and logs, exit.
import pino from 'pino';
import { type Config, ConfigError, loadConfig } from './config.js';
import { createServices } from './services.js';
import { buildApp } from './app.js';
import { redactingSerializers } from './http/redact.js';
import { loadTokenizer } from './relay/tokens.js';
import { loadUndici } from './shared/undici.js';

/** How long the answers cut at the end of a grace period get to write their last event. */
const CUT_WAIT_MS = 2_000;

/** What Fastify's own "listening" log lines start with (see the logger's hook): never logged. */
const FASTIFY_LISTENING = 'fastify listening at ';

async function main() {
  let config: Config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`moleapi: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const logger = pino({
    level: config.logLevel,
    serializers: redactingSerializers,
    base: { service: 'moleapi' },
    hooks: {
      // Fastify logs a line of its own for every address it binds; the startup line below is
      // the one that says where it serves (contract §1).
      logMethod(args, method) {
        if (typeof args[0] === 'string' && args[0].startsWith(FASTIFY_LISTENING)) return;
        method.apply(this, args);
      },
    },
  });
  const services = await createServices(config, logger, {
    // The one time a generated master key is shown: straight to the terminal, never to the log.
    announceMasterKey: (key) =>
      process.stdout.write(
        `\nGenerated master key (shown once; store it now, only its hash is kept):\n  ${key}\n\n`,
      ),
  });
  const app = await buildApp(services, logger);
  await app.listen({
    port: config.port,
    host: config.host,
    listenTextResolver: (address) => `${FASTIFY_LISTENING}${address}`,
  });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  process.stdout.write(
    `MoleAPI listening on http://${shownHost}:${port} (storage: ${services.storage.dialect}${config.redisUrl ? ' + redis' : ''})\n`,
  );

  // The tokenizer's table and undici load at their first use, so that a process that never
  // relays (the CLI, a test's in-process server) does not pay ~0.5 s of CPU for them. The
  // gateway loads them now, once it listens, rather than in its first relay request after a
  // start (which would wait that long).
  setImmediate(() => {
    loadTokenizer();
    loadUndici();
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining');
    // Past the grace period the answers still under way end as an upstream failure would end
    // them (a stream's last event says so; what it produced is billed and logged), then every
    // connection closes.
    const timer = setTimeout(() => {
      logger.warn('grace period over; ending the answers still under way, closing connections');
      void app.cutAnswers(CUT_WAIT_MS).finally(() => app.server.closeAllConnections?.());
    }, config.shutdownGraceSeconds * 1000);
    timer.unref();
    try {
      await app.close();
    } finally {
      await services.close();
    }
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(`moleapi: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
