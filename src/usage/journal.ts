// The usage journal: every log row is appended to a local file before its answer is
// released, with group commit (one write for all rows that arrived meanwhile), so a row that a
// client could see the answer of survives kill -9 even before the usage writer's batch reaches
// the database. How far it survives a power cut is the sync mode (MOLE_JOURNAL_FSYNC):
//   always    each group's write is fdatasync'ed before its answers go out: nothing is lost;
//   interval  the write goes out before the answers, the fdatasync follows in the background at
//             most every `syncIntervalMs` while a segment has unsynced writes: a power cut
//             loses the rows of about the last interval's answers not yet in the database;
//   never     write only: a power cut loses the rows not yet in the database that the kernel
//             had not written back.
//
// Files live in <data dir>/journal. Each process owns the segments named after its random
// instance id (`<id>.<seq>.jsonl`) and an owner file (`<id>.owner`: pid, host, and on Linux the
// boot and the process's start time, which tell it apart from a later process given its pid). The writer
// seals the current segment at the very instant it takes the queued rows for a batch, so a
// sealed segment holds only rows of batches taken; once such a batch commits, its segments are
// deleted. At start, segments left by a process that is gone (same host, and its pid not alive,
// a zombie, or another process's since; or our own pid from a previous life; or no owner file)
// are read back for replay; replay is
// idempotent by request_id, so a segment whose batch did commit is harmless.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { backgroundWork } from '../shared/background.js';
import { nowAndThen } from '../shared/now-and-then.js';

/** One group commit's outcome, shared by every row in the group. */
interface Group {
  done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function newGroup(): Group {
  const g = {} as Group;
  g.done = new Promise<void>((resolve, reject) => {
    g.resolve = resolve;
    g.reject = reject;
  });
  return g;
}

/** fdatasync through libuv's pool (the one journal step that may take milliseconds). */
const fdatasync = promisify(fs.fdatasync);

/** Makes a directory's entries (a new segment's name) durable. */
async function fsyncDir(dir: string): Promise<void> {
  const d = await fsp.open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** Writes all of `buf` (a regular file may take less than asked in one call). */
function writeAll(fd: number, buf: Buffer): void {
  for (let off = 0; off < buf.length; ) off += fs.writeSync(fd, buf, off);
}

/** How far a row is durable once its append resolves (MOLE_JOURNAL_FSYNC). */
export type JournalSync = 'always' | 'interval' | 'never';

/** What every segment of one journal shares: its sync mode and the counters. */
interface SyncPolicy {
  mode: JournalSync;
  intervalMs: number;
  timers: JournalTimers;
  datasync(fd: number): Promise<void>;
  syncDir(dir: string): Promise<void>;
  /** A group written (group commits). */
  wrote(): void;
  /** A background sync failed (interval mode; nothing waits on it). */
  syncFailed(err: unknown): void;
}

class Segment {
  private fd: number | null = null;
  /** always: the new file's directory entry made durable, awaited before its first rows count as durable. */
  private dirSynced: Promise<void> | null = null;
  /** interval: the directory entry is durable (the first background sync makes it so). */
  private dirDurable = false;
  private lines: string[] = [];
  /** The group the lines waiting to be written belong to (null: none waiting). */
  private group: Group | null = null;
  private running: Promise<void> | null = null;
  /** A write (or its sync) failed: the next write starts on a new line. */
  private torn = false;
  /** Groups written, and how many of them a finished fdatasync covers. */
  private writes = 0;
  private syncedWrites = 0;
  /** interval: the background sync waiting for its time, or under way (never both). */
  private syncTimer: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  /** When the last background sync began (or the file was opened). */
  private lastSyncAt = 0;
  /** Being closed or deleted: no background sync starts any more. */
  private closing = false;
  /** Rows appended (for tests and stats). */
  count = 0;

  constructor(
    readonly file: string,
    private readonly dir: string,
    private readonly policy: SyncPolicy,
  ) {}

  /**
   * Joins the next group commit and resolves once its write (and, `always`, its fdatasync) is
   * done. `interval` and `never` write a group once per event-loop turn (setImmediate): answers
   * that came back in one poll phase share one write(2) instead of one each. A row `alone`
   * (no other answer under way to share the write with) starts its group at once instead.
   */
  append(line: string, alone = false): Promise<void> {
    this.count++;
    this.lines.push(line);
    // One promise per group commit, not per row: every row in it settles alike.
    this.group ??= newGroup();
    if (!this.running) this.running = this.loop(alone);
    return this.group.done;
  }

  private open(): number {
    if (this.fd === null) {
      this.fd = fs.openSync(this.file, 'a', 0o600);
      // interval: the first background sync comes an interval after the first row, as every later one.
      this.lastSyncAt = Date.now();
      // The new file's name must be durable too (interval mode: with the first background sync).
      if (this.policy.mode === 'always') this.dirSynced = this.policy.syncDir(this.dir);
    }
    return this.fd;
  }

  /**
   * One write(2) of `text` on this thread: a few microseconds into the page cache, cheaper
   * than a round trip through libuv's pool, and already safe against kill -9. Answers how
   * many writes the segment has had.
   */
  private write(text: string): number {
    const fd = this.open();
    try {
      // After a failed write the file may end in a torn line: start on a fresh one, so replay
      // loses only that line, not the first row written after it.
      writeAll(fd, Buffer.from(this.torn ? '\n' + text : text));
    } catch (err) {
      this.torn = true;
      throw err;
    }
    this.torn = false;
    this.policy.wrote();
    if (this.policy.mode === 'interval') this.scheduleSync();
    return ++this.writes;
  }

  /**
   * Group commit. `always`: rows appended in this same tick join the first write, and every
   * row appended while its fdatasync runs (in libuv's pool) goes out in the next write + sync.
   * `interval`, `never`: rows appended until the poll phase ends join one write; a row alone
   * goes out in this tick: no other row would come to share the write, and waiting for the
   * check phase cost it ~10 µs of latency (measured at one connection).
   */
  private async loop(alone: boolean): Promise<void> {
    // `running` is set before the loop can end.
    if (this.policy.mode === 'always' || alone) await undefined;
    else await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      while (this.lines.length > 0) {
        const lines = this.lines;
        const group = this.group!;
        this.lines = [];
        this.group = null;
        let written = 0;
        try {
          written = this.write(lines.length === 1 ? lines[0]! : lines.join(''));
          if (this.policy.mode === 'always') {
            await this.dirSynced;
            await this.policy.datasync(this.fd!);
            this.syncedWrites = written;
          }
          group.resolve();
        } catch (err) {
          // A failed sync: what its write covered may be partly lost (a failed write marks itself).
          if (written > 0) this.torn = true;
          group.reject(err);
        }
      }
    } finally {
      this.running = null;
    }
  }

  /**
   * interval: a background sync of what is written, `intervalMs` after the last one began or
   * the file was opened (at once if that is past). One at a time: writes made while one runs
   * wait for the next.
   */
  private scheduleSync(): void {
    if (this.syncTimer !== null || this.syncing !== null || this.closing) return;
    const wait = Math.max(0, this.lastSyncAt + this.policy.intervalMs - Date.now());
    this.syncTimer = this.policy.timers.set(() => {
      this.syncTimer = null;
      this.syncing = this.syncNow().finally(() => {
        this.syncing = null;
        if (this.writes > this.syncedWrites) this.scheduleSync();
      });
    }, wait);
    // Pending durability never keeps the process alive: close() syncs what is left.
    this.syncTimer.unref();
  }

  /** fdatasync of every group written so far (and, the first time, the directory entry). */
  private async syncNow(): Promise<void> {
    const upTo = this.writes;
    this.lastSyncAt = Date.now();
    try {
      if (!this.dirDurable) {
        await this.policy.syncDir(this.dir);
        this.dirDurable = true;
      }
      await this.policy.datasync(this.fd!);
      this.syncedWrites = upTo;
    } catch (err) {
      // Retried at the next interval; the rows are written, so kill -9 loses nothing meanwhile.
      this.policy.syncFailed(err);
    }
  }

  /**
   * No more background syncs; resolves once the one under way ended. With `syncRest`
   * (interval mode), what is written but not yet synced is synced now.
   */
  private async stopSyncing(syncRest: boolean): Promise<void> {
    this.closing = true;
    if (this.syncTimer !== null) this.policy.timers.clear(this.syncTimer);
    this.syncTimer = null;
    await this.syncing;
    if (syncRest && this.policy.mode === 'interval' && this.writes > this.syncedWrites) await this.syncNow();
  }

  /** Resolves once every row appended so far is written. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Every row appended so far written and (as the mode has it) synced; no timer left. */
  async finish(): Promise<void> {
    await this.settled();
    await this.stopSyncing(true);
  }

  /**
   * Waits for pending writes, then closes and deletes the file. Its rows are in the database,
   * so a background sync not yet begun is dropped; one under way is waited for, as the fd it
   * syncs must not be closed (and its number reused) under it.
   */
  async remove(): Promise<void> {
    await this.settled();
    await this.stopSyncing(false);
    await this.dirSynced?.catch(() => {});
    if (this.fd !== null) await promisify(fs.close)(this.fd).catch(() => {});
    this.fd = null;
    await fsp.rm(this.file, { force: true });
  }
}

export interface JournalOptions {
  dir: string;
  /** When an appended row counts as durable (see the top of this file). */
  sync: JournalSync;
  /** interval: how often at most a segment with unsynced writes is fdatasync'ed, ms (default 50). */
  syncIntervalMs?: number;
  /** Where failed background syncs are reported (at most one line every 10 s). */
  logger?: Pick<Logger, 'error'>;
  /** Tests: stands in for fdatasync(2). */
  datasync?: (fd: number) => Promise<void>;
  /** Tests: the background sync's timer (each journal its own, so a test counts only its journal's). */
  timers?: JournalTimers;
}

/** Sets and clears the interval mode's background sync timer. */
export interface JournalTimers {
  set(fn: () => void, ms: number): NodeJS.Timeout;
  clear(t: NodeJS.Timeout): void;
}

const systemTimers: JournalTimers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (t) => clearTimeout(t),
};

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** This boot of the machine (Linux), '' where unknown. */
const bootId = (() => {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
})();

/**
 * What tells a running process apart from any later one given the same pid: the boot and its
 * start time (Linux /proc). Null when it is not running (gone, or a zombie not yet reaped) or
 * where /proc cannot tell.
 */
export function processMark(pid: number): string | null {
  if (!bootId) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is the 3rd, starttime the 22nd.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return null;
    return `${bootId}:${fields[19]}`;
  } catch {
    return null;
  }
}

/** Whether the process that wrote an owner file still runs (not merely something with its pid). */
function ownerAlive(info: { pid: number; mark?: string }): boolean {
  if (!bootId) return pidAlive(info.pid);
  // Gone or a zombie: dead. An owner file from before marks: a live pid is taken for it.
  const now = processMark(info.pid);
  return now !== null && (info.mark === undefined || now === info.mark);
}

export function openJournal(opts: JournalOptions) {
  fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const id = randomBytes(6).toString('hex');
  const host = os.hostname();
  const stats = { rows: 0, writes: 0, syncs: 0, dirSyncs: 0, syncFailures: 0 };
  const datasync = opts.datasync ?? fdatasync;
  const reportSyncFailure = nowAndThen(10_000, (err: unknown, failures: number) =>
    opts.logger?.error(
      { err: String(err), failures },
      'usage journal: background fdatasync failed; recent rows may not survive a power cut',
    ),
  );
  const policy: SyncPolicy = {
    mode: opts.sync,
    intervalMs: opts.syncIntervalMs ?? 50,
    timers: opts.timers ?? systemTimers,
    async datasync(fd) {
      await datasync(fd);
      stats.syncs++;
    },
    async syncDir(dir) {
      await fsyncDir(dir);
      stats.dirSyncs++;
    },
    wrote: () => stats.writes++,
    syncFailed(err) {
      stats.syncFailures++;
      reportSyncFailure(err, stats.syncFailures);
    },
  };
  let seq = 0;
  let current: Segment | null = null;
  let sealed: Segment[] = [];
  /** Deletions under way (close waits for them). */
  const removing = backgroundWork();

  // Whose segments are orphans: decided before our own owner file exists.
  const orphanOwners = new Set<string>();
  const owners = new Map<string, { pid: number; host: string; mark?: string } | null>();
  for (const f of fs.readdirSync(opts.dir)) {
    const m = /^([0-9a-f]+)\.(owner|\d+\.jsonl)$/.exec(f);
    if (!m) continue;
    if (m[2] !== 'owner') {
      if (!owners.has(m[1]!)) owners.set(m[1]!, null);
      continue;
    }
    try {
      owners.set(m[1]!, JSON.parse(fs.readFileSync(path.join(opts.dir, f), 'utf8')));
    } catch {
      owners.set(m[1]!, null);
    }
  }
  for (const [owner, info] of owners) {
    // No (readable) owner file: its process got no further than its segments, or was closing.
    if (!info) orphanOwners.add(owner);
    else if (info.host === host && (info.pid === process.pid || !ownerAlive(info))) orphanOwners.add(owner);
  }
  const mark = processMark(process.pid);
  fs.writeFileSync(
    path.join(opts.dir, `${id}.owner`),
    JSON.stringify({ pid: process.pid, host, ...(mark ? { mark } : {}) }),
    { mode: 0o600 },
  );

  const newSegment = () => new Segment(path.join(opts.dir, `${id}.${++seq}.jsonl`), opts.dir, policy);

  return {
    /**
     * Appends one record: resolves once it is written (`always`: and synced), with the rows
     * of the same group commit; rejects if that write failed.
     */
    append(record: unknown): Promise<void> {
      return this.appendJson(JSON.stringify(record));
    },

    /**
     * Appends one record given as its JSON text, as `append` does. `alone`: no other row is on
     * its way (no other request under way), so the write need not wait for one to join it.
     */
    appendJson(json: string, alone = false): Promise<void> {
      if (!current) current = newSegment();
      stats.rows++;
      return current.append(json + '\n', alone);
    },

    /**
     * Closes the current segment to new rows (they go to a fresh one) and answers every
     * sealed segment not yet discarded: together they hold exactly the rows queued so far.
     */
    seal(): Segment[] {
      if (current) sealed.push(current);
      current = null;
      return [...sealed];
    },

    /** The rows in `segs` are in the database: forget them. */
    async discard(segs: Segment[]): Promise<void> {
      const gone = new Set(segs);
      sealed = sealed.filter((s) => !gone.has(s));
      await removing.track(
        (async () => {
          for (const s of segs) await s.remove();
        })(),
      );
    },

    /** Records left by processes that are gone, oldest first, and a function deleting them. */
    async orphans(): Promise<{ records: unknown[]; files: number; remove(): Promise<void> }> {
      const files = fs
        .readdirSync(opts.dir)
        .map((f) => /^([0-9a-f]+)\.(\d+)\.jsonl$/.exec(f))
        .filter((m): m is RegExpExecArray => m !== null && orphanOwners.has(m[1]!))
        .map((m) => ({ file: path.join(opts.dir, m[0]), seq: Number(m[2]), mtime: 0 }));
      for (const f of files) f.mtime = fs.statSync(f.file).mtimeMs;
      files.sort((a, b) => a.mtime - b.mtime || a.seq - b.seq);
      const records: unknown[] = [];
      for (const f of files) {
        for (const line of (await fsp.readFile(f.file, 'utf8')).split('\n')) {
          if (!line) continue;
          try {
            records.push(JSON.parse(line));
          } catch {
            // A torn last line: its append never completed, so its answer was never released.
          }
        }
      }
      return {
        records,
        files: files.length,
        async remove() {
          for (const f of files) await fsp.rm(f.file, { force: true });
          for (const o of orphanOwners) await fsp.rm(path.join(opts.dir, `${o}.owner`), { force: true });
          orphanOwners.clear();
        },
      };
    },

    /** After a clean shutdown with nothing left to write: no files remain. */
    async close(clean: boolean): Promise<void> {
      await removing.settled();
      const all = [...sealed, ...(current ? [current] : [])];
      if (!clean) {
        // Rows are left for the next start to replay: finish what is being written and sync it.
        for (const s of all) await s.finish();
        return;
      }
      sealed = [];
      current = null;
      for (const s of all) await s.remove();
      await fsp.rm(path.join(opts.dir, `${id}.owner`), { force: true });
    },

    stats: () => ({ ...stats, segments: sealed.length + (current ? 1 : 0) }),
  };
}

export type Journal = ReturnType<typeof openJournal>;
export type JournalSegment = Segment;
