#!/usr/bin/env node
// `mole`, the MoleAPI command line (package.json "bin"). Runs the compiled CLI, which the
// `prepare` script builds on `npm install` (and `npm run build:server` rebuilds).
import('../dist/cli/index.js').catch((err) => {
  if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/index.js')) {
    process.stderr.write('mole: the CLI is not built; run `npm run build:server` in the MoleAPI folder\n');
    process.exit(1);
  }
  throw err;
});
