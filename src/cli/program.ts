// The `mole` command line (contract §10). Everyday commands talk to a running gateway's
// management API (MOLE_URL, default http://localhost:3000; MOLE_TOKEN or --token = a
// management token (mg-…) or the master key). Exit codes: 0 success, 2 bad usage (commander
// refused the arguments, or the gateway refused a value with 400/422: client.ts exitCodeOf),
// 1 failure — with a one-line reason on stderr. `--json` prints machine-readable results.
//
// Adding a command group: write src/cli/<group>.ts exporting a RegisterCommands function and
// list it in COMMAND_GROUPS below. `mole import new-api` (contract §10, src/cli/import.ts) is
// the exception: it runs with the server's own environment (loadConfig() → MOLE_DATA_DIR /
// DATABASE_URL, MOLE_SECRET) and writes the database directly, so it takes the config, not
// ctx.api().
import readline from 'node:readline/promises';
import { Command, CommanderError, type HelpContext } from 'commander';
import { CliError, clientFromEnv, usageError, type ApiClient } from './client.js';
import type { CliContext, RegisterCommands } from './context.js';
import { registerImport } from './import.js';
import { registerKeys } from './keys.js';
import { makeOut } from './output.js';
import { registerTokens } from './tokens.js';
import { registerUsage } from './usage.js';
import { registerUsers } from './users.js';

export const COMMAND_GROUPS: RegisterCommands[] = [
  registerKeys,
  registerUsers,
  registerUsage,
  registerTokens,
  registerImport,
];

export interface RunIO {
  env?: NodeJS.ProcessEnv;
  stdout?: (s: string) => void;
  stderr?: (s: string) => void;
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
}

export function buildProgram(ctx: CliContext, io: Required<Pick<RunIO, 'stdout' | 'stderr'>>): Command {
  const program = new Command('mole')
    .description(
      'Manage a MoleAPI gateway from the command line.\n\n' +
        'Talks to the management API at MOLE_URL (default http://localhost:3000) with\n' +
        'MOLE_TOKEN or --token (a management token mg-… with the scopes the command\n' +
        'needs, or the master key) as the Bearer token.\n' +
        'Exit codes: 0 success, 1 failure, 2 bad usage (including a value the gateway\n' +
        'refuses with HTTP 400 or 422).',
    )
    .option('--json', 'print results as JSON')
    .option('--token <token>', 'management token (mg-…) or master key; overrides MOLE_TOKEN')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showSuggestionAfterError(true)
    .exitOverride();
  program.addHelpText(
    'after',
    '\nExamples:\n' +
      '  export MOLE_URL=http://localhost:3000 MOLE_TOKEN=mg-...\n' +
      '  mole users create alice --balance 10\n' +
      '  mole keys create dev-local --user 2 --models "gpt-4o*" --quota 5\n' +
      '  mole keys list --json\n' +
      '  mole usage --by model --from 7d',
  );
  for (const register of COMMAND_GROUPS) register(program, ctx);
  // Every command exits through the same override, and a group without its subcommand
  // (`mole keys`) is bad usage: show its help on stderr.
  const walk = (c: Command, path: string) => {
    c.exitOverride();
    c.configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
    if (c.commands.length) {
      const names = c.commands.map((sub) => sub.name()).filter((n) => n !== 'help');
      // One line on stderr, not the whole help, for a missing or unknown subcommand.
      const refuse = (given: string | undefined) =>
        usageError(
          `${given ? `unknown command '${given}'` : 'missing command'} for '${path}' ` +
            `(one of: ${names.join(', ')}); see '${path} --help'`,
        );
      c.helpCommand(true)
        .usage('[options] <command>')
        .argument('[command]')
        .action((given: string | undefined) => {
          throw refuse(given);
        });
      // `help <command>` of a command that is not there: commander would print the whole help
      // on stderr (its only use of help({ error: true }) here, as every group has an action).
      const help = c.help.bind(c);
      c.help = ((context?: HelpContext) => {
        if (context?.error) throw refuse(c.args[0] === 'help' ? c.args[1] : undefined);
        return help(context);
      }) as Command['help'];
    }
    for (const sub of c.commands) walk(sub, `${path} ${sub.name()}`);
  };
  walk(program, 'mole');
  return program;
}

/** Runs the CLI on `argv` (without node and script); resolves to the exit code. */
export async function run(argv: string[], io: RunIO = {}): Promise<number> {
  const env = io.env ?? process.env;
  const stdout = io.stdout ?? ((s: string) => void process.stdout.write(s));
  const stderr = io.stderr ?? ((s: string) => void process.stderr.write(s));
  const stdin = io.stdin ?? process.stdin;
  let api: ApiClient | null = null;
  let program: Command | null = null;
  const ctx: CliContext = {
    api: () => {
      // --token (a global option, parsed before any command runs) wins over MOLE_TOKEN.
      const token = program?.opts<{ token?: string }>().token;
      api ??= clientFromEnv(token !== undefined ? { ...env, MOLE_TOKEN: token } : env);
      return api;
    },
    out: (cmd) => makeOut(Boolean(cmd.optsWithGlobals().json), stdout),
    async prompt(question) {
      if (!stdin.isTTY) return null;
      const rl = readline.createInterface({ input: stdin, output: process.stderr });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },
    async readStdin() {
      let data = '';
      for await (const chunk of stdin) data += chunk.toString();
      return data;
    },
    env,
    info: (line) => stderr(line.endsWith('\n') ? line : `${line}\n`),
  };
  program = buildProgram(ctx, { stdout, stderr });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help, `help [command]` (commander.help, exit code 0) and --version answer 0;
      // everything else commander refuses is bad usage (it has already printed the reason).
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      if (err.code === 'commander.help' && err.exitCode === 0) return 0;
      return 2;
    }
    if (err instanceof CliError) {
      stderr(`mole: ${err.message}\n`);
      return err.exitCode;
    }
    stderr(`mole: ${err instanceof Error ? err.message : String(err)}\n`.replace(/\n(?!$)/g, ' '));
    return 1;
  }
}
