/**
 * Standalone mock provider:
 *   tsx test/mock-provider/cli.ts [--port 0] [--host 127.0.0.1] [--api-key KEY] [--no-record]
 *                                 [--scenario '{"chunkDelayMs":200}']   (a default scenario for every model)
 * Prints exactly one line: `mock provider listening on http://HOST:PORT/v1`.
 * SIGTERM / SIGINT close the server (and its sockets) and exit 0.
 */
import { startMockProvider, type MockProviderOptions, type Scenario } from './server.js';

function parseArgs(argv: string[]): MockProviderOptions & { scenario?: Scenario } {
  const opts: MockProviderOptions & { scenario?: Scenario } = { recordRequests: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const value = () => (eq !== -1 ? arg.slice(eq + 1) : argv[++i]);
    switch (name) {
      case '--port': {
        const v = Number(value());
        if (!Number.isInteger(v) || v < 0 || v > 65535) throw new Error('--port expects an integer 0..65535');
        opts.port = v;
        break;
      }
      case '--host':
        opts.host = value();
        break;
      case '--api-key':
        opts.apiKey = value();
        break;
      case '--scenario':
        opts.scenario = JSON.parse(value() ?? '{}') as Scenario;
        break;
      case '--record':
        opts.recordRequests = true;
        break;
      case '--no-record':
        opts.recordRequests = false;
        break;
      case '--help':
      case '-h':
        process.stdout.write(
          'usage: tsx test/mock-provider/cli.ts [--port N] [--host H] [--api-key KEY] [--record] [--scenario JSON]\n',
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument: ${arg}`);
    }
  }
  return opts;
}

const { scenario, ...options } = parseArgs(process.argv.slice(2));
const mock = await startMockProvider(options);
if (scenario) mock.setScenario('*', scenario);
process.stdout.write(`mock provider listening on ${mock.url}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void mock.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
