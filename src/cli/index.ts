// Entry point of `mole` (bin/mole.js imports the compiled dist/cli/index.js; in development
// `npx tsx src/cli/index.ts …`). See program.ts.
import { run } from './program.js';

process.exitCode = await run(process.argv.slice(2));
