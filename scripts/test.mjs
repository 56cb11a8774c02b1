#!/usr/bin/env node
// `npm test`: the typecheck, the lint and the suites (vitest run), side by side instead of one
// after the other: run first, tsc (single-threaded) left one of two cores idle for half a minute.
// tsc and biome run at a lower priority (nice 10), so the suites' processes win a core they both
// want, and their timing-sensitive parts (kill -9, leases, timeouts) see less of them. Vitest
// writes to the terminal as it runs; the typecheck's and the lint's output is held and printed,
// whole, when each ends. Fails (exit code 1) when any of the three fails. Arguments go to vitest:
// `npm test -- test/relay`.
import { spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const children = [];

/** Runs a command; resolves to its exit code (1 when killed by a signal or not started). */
function run(name, cmd, args, { buffered }) {
  const started = Date.now();
  const child = spawn(cmd, args, {
    cwd: root,
    stdio: buffered ? ['ignore', 'pipe', 'pipe'] : 'inherit',
  });
  children.push(child);
  // Set before npm starts tsc or biome: their processes inherit it.
  if (buffered && child.pid !== undefined)
    try {
      os.setPriority(child.pid, 10);
    } catch {
      /* already gone: its exit code tells */
    }
  const out = [];
  if (buffered) {
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => out.push(c));
  }
  return new Promise((resolve) => {
    const done = (code) => {
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      if (buffered) {
        const text = Buffer.concat(out).toString();
        process.stdout.write(
          `\n── ${name} (${secs}s, ${code === 0 ? 'passed' : `FAILED, exit ${code}`}) ──\n`,
        );
        if (text.trim()) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
      }
      resolve({ name, code, secs });
    };
    child.on('error', (err) => {
      out.push(Buffer.from(`${name}: could not start ${cmd}: ${err.message}\n`));
      done(1);
    });
    child.on('close', (code) => done(code ?? 1));
  });
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const c of children) if (c.exitCode === null) c.kill(sig);
    process.exit(1);
  });
}

const results = await Promise.all([
  run('typecheck', npm, ['run', '--silent', 'typecheck'], { buffered: true }),
  run('lint', npm, ['run', '--silent', 'lint'], { buffered: true }),
  run('vitest', process.execPath, ['node_modules/vitest/vitest.mjs', 'run', ...process.argv.slice(2)], {
    buffered: false,
  }),
]);

const failed = results.filter((r) => r.code !== 0);
process.stdout.write(
  `\nnpm test: ${results.map((r) => `${r.name} ${r.code === 0 ? 'passed' : 'FAILED'} (${r.secs}s)`).join(', ')}\n`,
);
process.exit(failed.length ? 1 : 0);
