// What every command group gets: the management API client and the output mode. A command
// group is a module exporting `register(program, ctx)`; index.ts lists them.
import type { Command } from 'commander';
import type { ApiClient } from './client.js';
import type { Out } from './output.js';

export interface CliContext {
  /** The gateway's management API (MOLE_URL + MOLE_TOKEN), made on first use. */
  api(): ApiClient;
  /** Output for a command, honouring the global --json. */
  out(cmd: Command): Out;
  /** Reads a line from stdin (passwords, confirmations); null when stdin is not a terminal. */
  prompt(question: string): Promise<string | null>;
  /** All of stdin (for --password-stdin). */
  readStdin(): Promise<string>;
  /** The environment the CLI runs with (`mole import` reads the server's configuration from it). */
  env: NodeJS.ProcessEnv;
  /** Progress lines and notes (stderr), apart from results. */
  info(line: string): void;
}

export type RegisterCommands = (program: Command, ctx: CliContext) => void;
