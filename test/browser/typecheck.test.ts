// The root `npm run typecheck` covers src/ and the Node test suites; the web console (DOM,
// JSX) has its own tsconfig, checked here so `npm test` catches type errors in it too
// (Vite's build strips types without checking them).
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers.js';

const run = promisify(execFile);
const tsc = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

describe('typecheck', () => {
  for (const project of ['web/tsconfig.json']) {
    it(`tsc -p ${project}`, { timeout: 300_000 }, async () => {
      const r = await run(process.execPath, [tsc, '-p', project, '--noEmit'], { cwd: REPO_ROOT }).then(
        () => '',
        (err: { stdout?: string; stderr?: string }) =>
          `${err.stdout ?? ''}${err.stderr ?? ''}` || 'tsc failed',
      );
      expect(r).toBe('');
    });
  }
});
