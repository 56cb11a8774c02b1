// The bench scripts' command line: `--name value` options and bare `--flag`s.

/** The arguments after the script's path. */
export const argv = process.argv.slice(2);

/** The value after `name`, when `name` is given. */
export function argOf(name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** The number after `name`, or `def` when `name` is not given. */
export const numArg = (name: string, def: number): number =>
  argv.includes(name) ? Number(argOf(name)) : def;

/** Whether the bare flag `name` is given. */
export const flag = (name: string): boolean => argv.includes(name);
