// The usage journal's group commit and its sync modes: every row of a group settles with its
// write, a failed write fails only its own group's rows; `always` releases a row only after its
// fdatasync, `interval` after its turn's write with the fdatasync following in the background (one at a time,
// at most every interval, never after close), `never` without any.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { spawn } from 'node:child_process';
import { type JournalTimers, openJournal, processMark } from './journal.js';

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function journalDir(): string {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'mole-journal-'));
  dirs.push(base);
  return path.join(base, 'journal');
}

const segmentText = (dir: string) =>
  fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
    .join('');

/** An fdatasync stand-in: each call waits until the test lets it finish (or fail). */
function heldSync() {
  const held: Array<{ resolve(): void; reject(err: Error): void }> = [];
  let arrived: (() => void) | null = null;
  const datasync = vi.fn(
    (_fd: number) =>
      new Promise<void>((resolve, reject) => {
        held.push({ resolve, reject });
        arrived?.();
      }),
  );
  return {
    datasync,
    /** Resolves once a call is waiting. */
    async called(): Promise<void> {
      if (held.length === 0) await new Promise<void>((r) => (arrived = r));
      arrived = null;
    },
    finish(err?: Error): void {
      const h = held.shift()!;
      if (err) h.reject(err);
      else h.resolve();
    },
  };
}

/** Whether `p` has settled (after the I/O and microtasks already due). */
const hasSettled = (p: Promise<unknown>) =>
  Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((r) => setImmediate(() => r(false))),
  ]);

/** The journal's own pending timeouts (see fakeTimers). */
let journalTimers = () => 0;

/**
 * Fake timeouts and Date only: promises, setImmediate and the file system stay real. The
 * journal under test gets its own timer functions (`timers`), counted apart (`journalTimers`):
 * other code in this worker (files share one with `isolate: false`), another journal among it,
 * may set timeouts of its own meanwhile.
 */
function fakeTimers(): JournalTimers {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  const live = new Set<NodeJS.Timeout>();
  journalTimers = () => live.size;
  return {
    set(fn, ms) {
      const t = setTimeout(() => {
        live.delete(t);
        fn();
      }, ms);
      live.add(t);
      return t;
    },
    clear(t) {
      live.delete(t);
      clearTimeout(t);
    },
  };
}

describe('usage journal', () => {
  it('settles every row of a group with its one write', async () => {
    const dir = journalDir();
    const j = openJournal({ dir, sync: 'always' });
    await Promise.all([1, 2, 3].map((n) => j.append({ n })));
    expect(j.stats()).toMatchObject({ rows: 3, writes: 1, syncs: 1, dirSyncs: 1 });
    expect(segmentText(dir)).toBe('{"n":1}\n{"n":2}\n{"n":3}\n');
    await j.close(true);
  });

  it('rejects every row of a group whose write failed, and writes the next group', async () => {
    const dir = journalDir();
    const sync = heldSync();
    const j = openJournal({ dir, sync: 'always', datasync: sync.datasync });
    fs.rmSync(dir, { recursive: true });
    const failed = await Promise.allSettled([j.append({ n: 1 }), j.append({ n: 2 })]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fs.mkdirSync(dir);
    const next = j.append({ n: 3 });
    await sync.called();
    sync.finish();
    await next;
    expect(segmentText(dir).trim()).toBe('{"n":3}');
    await j.close(true);
  });

  it('interval, never: rows of one event-loop turn share one write; a failed write rejects its group', async () => {
    for (const sync of ['interval', 'never'] as const) {
      const dir = journalDir();
      const j = openJournal({ dir, sync });
      const rows = [j.append({ n: 1 }), j.append({ n: 2 })];
      // Nothing is written before the turn ends, so no row is released before its write.
      expect(segmentText(dir)).toBe('');
      await Promise.all(rows);
      expect(segmentText(dir)).toBe('{"n":1}\n{"n":2}\n');
      expect(j.stats()).toMatchObject({ rows: 2, writes: 1 });
      // The next turn's rows are the next write.
      await j.append({ n: 3 });
      expect(j.stats()).toMatchObject({ rows: 3, writes: 2 });
      await j.discard(j.seal());
      fs.rmSync(dir, { recursive: true });
      const failed = await Promise.allSettled([j.append({ n: 4 }), j.append({ n: 5 })]);
      expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
      expect(String((failed[0] as PromiseRejectedResult).reason)).toMatch(/ENOENT/);
      fs.mkdirSync(dir);
      await j.append({ n: 6 });
      expect(segmentText(dir)).toBe('{"n":6}\n');
      await j.close(true);
    }
  });

  it('interval, never: a row alone is written in its own tick; rows of that tick join it', async () => {
    for (const sync of ['interval', 'never'] as const) {
      const dir = journalDir();
      const j = openJournal({ dir, sync });
      // Immediates run in order: one queued before the append tells whether the row waited for the check phase.
      let checkPhase = false;
      setImmediate(() => (checkPhase = true));
      const rows = [j.appendJson('{"n":1}', true), j.appendJson('{"n":2}')];
      await Promise.all(rows);
      expect(checkPhase).toBe(false);
      expect(segmentText(dir)).toBe('{"n":1}\n{"n":2}\n');
      expect(j.stats()).toMatchObject({ rows: 2, writes: 1 });
      // Not alone: the row waits for the turn's end, as before.
      checkPhase = false;
      setImmediate(() => (checkPhase = true));
      await j.appendJson('{"n":3}');
      expect(checkPhase).toBe(true);
      expect(j.stats()).toMatchObject({ rows: 3, writes: 2 });
      await j.close(true);
    }
  });

  it('interval: a row still waiting for its write when its segment is sealed is written there', async () => {
    const dir = journalDir();
    const j = openJournal({ dir, sync: 'interval' });
    const row = j.append({ n: 1 });
    const [segment] = j.seal();
    await row;
    expect(segmentText(dir)).toBe('{"n":1}\n');
    expect(segment!.count).toBe(1);
    await j.append({ n: 2 });
    expect(j.stats()).toMatchObject({ rows: 2, writes: 2 });
    // Two segments: the sealed one kept its row, the new one holds the next.
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl'))).toHaveLength(2);
    await j.close(true);
  });

  it('always: a row is released only after the fdatasync that follows its write', async () => {
    const dir = journalDir();
    const sync = heldSync();
    const j = openJournal({ dir, sync: 'always', datasync: sync.datasync });
    const appended = j.append({ n: 1 })!;
    await sync.called();
    // Written (kill -9 safe) but not yet synced: not released.
    expect(segmentText(dir)).toBe('{"n":1}\n');
    expect(await hasSettled(appended)).toBe(false);
    // Rows arriving meanwhile wait for the next write + sync.
    const next = j.append({ n: 2 })!;
    sync.finish();
    await appended;
    await sync.called();
    expect(await hasSettled(next)).toBe(false);
    sync.finish();
    await next;
    expect(j.stats()).toMatchObject({ writes: 2, syncs: 2 });
    await j.close(true);
  });

  it('interval: rows are written at once; one background sync at most every interval', async () => {
    const timers = fakeTimers();
    const dir = journalDir();
    const sync = heldSync();
    const j = openJournal({ dir, sync: 'interval', syncIntervalMs: 50, datasync: sync.datasync, timers });
    await Promise.all([j.append({ n: 1 }), j.append({ n: 2 })]);
    expect(segmentText(dir)).toBe('{"n":1}\n{"n":2}\n');
    expect(sync.datasync).not.toHaveBeenCalled();
    // One sync pending for both rows, due an interval after the file was opened.
    expect(journalTimers()).toBe(1);
    vi.advanceTimersByTime(49);
    expect(sync.datasync).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    await sync.called();
    expect(j.stats()).toMatchObject({ writes: 1, dirSyncs: 1 });

    // While it runs, rows are still released after their write, and no second sync starts on the fd.
    await j.append({ n: 3 });
    expect(journalTimers()).toBe(0);
    sync.finish();
    await new Promise((r) => setImmediate(r));
    // Row 3 is not synced yet: its sync is due an interval after the last one began.
    expect(journalTimers()).toBe(1);
    vi.advanceTimersByTime(49);
    await j.append({ n: 4 });
    expect(sync.datasync).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(1);
    await sync.called();
    sync.finish();
    await new Promise((r) => setImmediate(r));
    // Everything synced: no timer is left.
    expect(journalTimers()).toBe(0);
    expect(j.stats()).toMatchObject({ rows: 4, writes: 3, syncs: 2, dirSyncs: 1, syncFailures: 0 });
    await j.close(true);
  });

  it('interval: close stops the background sync; an unclean close syncs what is left first', async () => {
    const timers = fakeTimers();
    const sync = heldSync();
    const clean = openJournal({ dir: journalDir(), sync: 'interval', datasync: sync.datasync, timers });
    await clean.append({ n: 1 });
    expect(journalTimers()).toBe(1);
    await clean.close(true);
    expect(journalTimers()).toBe(0);
    expect(sync.datasync).not.toHaveBeenCalled();

    const dir = journalDir();
    const unclean = openJournal({ dir, sync: 'interval', datasync: sync.datasync, timers });
    await unclean.append({ n: 2 });
    const closing = unclean.close(false);
    await sync.called();
    expect(journalTimers()).toBe(0);
    sync.finish();
    await closing;
    expect(unclean.stats()).toMatchObject({ syncs: 1 });
    // Left for the next start to replay.
    expect(segmentText(dir)).toBe('{"n":2}\n');
  });

  it('interval: a segment deleted while its sync is pending or under way', async () => {
    const timers = fakeTimers();
    const dir = journalDir();
    const sync = heldSync();
    const j = openJournal({ dir, sync: 'interval', datasync: sync.datasync, timers });
    // Pending: the sync is dropped (its rows are in the database).
    await j.append({ n: 1 });
    await j.discard(j.seal());
    expect(journalTimers()).toBe(0);
    expect(segmentText(dir)).toBe('');
    expect(sync.datasync).not.toHaveBeenCalled();

    // Under way: the file is closed and deleted only once the sync has finished with its fd.
    await j.append({ n: 2 });
    vi.advanceTimersByTime(50);
    await sync.called();
    await j.append({ n: 3 });
    const deleting = j.discard(j.seal());
    expect(await hasSettled(deleting)).toBe(false);
    expect(segmentText(dir)).toBe('{"n":2}\n{"n":3}\n');
    sync.finish();
    await deleting;
    expect(segmentText(dir)).toBe('');
    // Row 3 was never synced, but its segment is gone: no sync is scheduled for it.
    expect(journalTimers()).toBe(0);
    expect(sync.datasync).toHaveBeenCalledTimes(1);
    await j.close(true);
  });

  it('interval: a failed background sync is retried at the next interval and reported now and then', async () => {
    const timers = fakeTimers();
    const sync = heldSync();
    const logged: unknown[] = [];
    const logger = { error: (obj: unknown) => void logged.push(obj) };
    const j = openJournal({ dir: journalDir(), sync: 'interval', datasync: sync.datasync, logger, timers });
    await j.append({ n: 1 });
    for (let i = 0; i < 3; i++) {
      vi.advanceTimersByTime(50);
      await sync.called();
      sync.finish(new Error('EIO'));
      await new Promise((r) => setImmediate(r));
    }
    expect(j.stats()).toMatchObject({ syncs: 0, syncFailures: 3 });
    expect(logged).toEqual([{ err: 'Error: EIO', failures: 1 }]);
    vi.advanceTimersByTime(10_000);
    await sync.called();
    sync.finish();
    await new Promise((r) => setImmediate(r));
    expect(j.stats()).toMatchObject({ syncs: 1, syncFailures: 3 });
    expect(journalTimers()).toBe(0);
    await j.close(true);
  });

  it('never: rows are written and released without any sync or timer', async () => {
    const timers = fakeTimers();
    const dir = journalDir();
    const sync = heldSync();
    const j = openJournal({ dir, sync: 'never', datasync: sync.datasync, timers });
    await Promise.all([1, 2, 3].map((n) => j.append({ n })));
    await j.append({ n: 4 });
    expect(segmentText(dir)).toBe('{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n');
    expect(journalTimers()).toBe(0);
    expect(j.stats()).toMatchObject({ rows: 4, writes: 2, syncs: 0, dirSyncs: 0 });
    await j.close(false);
    expect(sync.datasync).not.toHaveBeenCalled();
  });

  it.runIf(processMark(process.pid) !== null)(
    'an owner whose pid a later process holds is gone: its rows are replayed; a live owner keeps its own',
    async () => {
      const other = spawn('sleep', ['30'], { stdio: 'ignore' });
      try {
        const pid = other.pid!;
        await expect.poll(() => processMark(pid)).not.toBeNull();
        const dir = journalDir();
        fs.mkdirSync(dir, { recursive: true });
        const left = (owner: string, info: Record<string, unknown>, row: unknown) => {
          fs.writeFileSync(
            path.join(dir, `${owner}.owner`),
            JSON.stringify({ host: os.hostname(), ...info }),
          );
          fs.writeFileSync(path.join(dir, `${owner}.1.jsonl`), `${JSON.stringify(row)}\n`);
        };
        // The pid is alive, but not as the process that wrote the file (another start time).
        left('aaaaaa', { pid, mark: `${processMark(pid)!.split(':')[0]}:1` }, { n: 'reused' });
        // The very process that wrote it still runs: its rows are its own.
        left('bbbbbb', { pid, mark: processMark(pid) }, { n: 'live' });
        // An owner file from before marks: a live pid is trusted as before.
        left('cccccc', { pid }, { n: 'unmarked' });
        // ...but not a zombie's: a child its parent (sh, then sleep) never reaps. The child
        // outlives sh's exec (a loaded machine let sh reap a `sleep 0` before it), then exits.
        const parent = spawn('sh', ['-c', 'sleep 0.5 & echo $!; exec sleep 30'], {
          stdio: ['ignore', 'pipe', 'ignore'],
        });
        try {
          const zombie = Number(
            (await new Promise<Buffer>((r) => parent.stdout!.once('data', r))).toString(),
          );
          await expect
            .poll(() => fs.readFileSync(`/proc/${zombie}/stat`, 'utf8').split(') ')[1]![0], {
              timeout: 10_000,
            })
            .toBe('Z');
          left('dddddd', { pid: zombie }, { n: 'zombie' });
          const j = openJournal({ dir, sync: 'never' });
          const orphans = await j.orphans();
          expect(orphans.records).toEqual(expect.arrayContaining([{ n: 'reused' }, { n: 'zombie' }]));
          expect(orphans.records).toHaveLength(2);
          await j.close(true);
        } finally {
          parent.kill('SIGKILL');
        }
      } finally {
        other.kill('SIGKILL');
      }
    },
  );
});
