/**
 * The benchmark's upstream: test/mock-provider in its own process, optionally with a
 * default scenario for every model (e.g. slow streams).
 *
 *   tsx bench/mock-server.ts [--port 0] [--scenario '{"chunkDelayMs":200}']
 *
 * Prints `mock provider listening on http://127.0.0.1:PORT/v1`; SIGTERM closes it.
 */
import { startMockProvider, type Scenario } from '../test/mock-provider/server.js';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

const mock = await startMockProvider({ port: Number(arg('--port') ?? 0), host: '127.0.0.1', recordRequests: false });
const scenario = arg('--scenario');
if (scenario) mock.setScenario('*', JSON.parse(scenario) as Scenario);
process.stdout.write(`mock provider listening on ${mock.url}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void mock.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
