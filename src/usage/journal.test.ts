// The usage journal's group commit: every row of a group settles with its write, a failed
// write fails only its own group's rows, and the rows after it are written.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openJournal } from './journal.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function journalDir(): string {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-journal-'));
  dirs.push(base);
  return path.join(base, 'journal');
}

describe('usage journal', () => {
  it('settles every row of a group with its one write', async () => {
    const dir = journalDir();
    const j = openJournal({ dir, fsync: true });
    await Promise.all([1, 2, 3].map((n) => j.append({ n })));
    expect(j.stats()).toMatchObject({ rows: 3, syncs: 1 });
    const [file] = fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl'));
    expect(fs.readFileSync(path.join(dir, file!), 'utf8')).toBe('{"n":1}\n{"n":2}\n{"n":3}\n');
    await j.close(true);
  });

  it('rejects every row of a group whose write failed, and writes the next group', async () => {
    const dir = journalDir();
    const j = openJournal({ dir, fsync: false });
    fs.rmSync(dir, { recursive: true });
    const failed = await Promise.allSettled([j.append({ n: 1 }), j.append({ n: 2 })]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fs.mkdirSync(dir);
    await j.append({ n: 3 });
    const [file] = fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl'));
    expect(fs.readFileSync(path.join(dir, file!), 'utf8').trim()).toBe('{"n":3}');
    await j.close(true);
  });
});
