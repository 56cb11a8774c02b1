// The usage journal: every log row is appended to a local file before its answer is
// released, with group commit (one write + fdatasync for all rows that arrived meanwhile),
// so a row that a client could see the answer of survives kill -9 (and, with fsync, a power
// cut) even before the usage writer's batch reaches the database.
//
// Files live in <data dir>/journal. Each process owns the segments named after its random
// instance id (`<id>.<seq>.jsonl`) and an owner file (`<id>.owner`: pid and host). The writer
// seals the current segment at the very instant it takes the queued rows for a batch, so a
// sealed segment holds only rows of batches taken; once such a batch commits, its segments are
// deleted. At start, segments left by a process that is gone (same host, pid not alive or our
// own pid from a previous life, or no owner file) are read back for replay; replay is
// idempotent by request_id, so a segment whose batch did commit is harmless.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

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
const datasync = promisify(fs.fdatasync);

/** Writes all of `buf` (a regular file may take less than asked in one call). */
function writeAll(fd: number, buf: Buffer): void {
  for (let off = 0; off < buf.length; ) off += fs.writeSync(fd, buf, off);
}

class Segment {
  private fd: number | null = null;
  /** The new file's directory entry made durable (fsync mode): awaited before the first rows count as durable. */
  private dirSynced: Promise<void> | null = null;
  private lines: string[] = [];
  /** The group the lines waiting to be written belong to (null: none waiting). */
  private group: Group | null = null;
  private running: Promise<void> | null = null;
  /** A write (or its sync) failed: the next write starts on a new line. */
  private torn = false;
  /** Rows appended (for tests and stats). */
  count = 0;

  constructor(
    readonly file: string,
    private readonly dir: string,
    private readonly fsync: boolean,
    private readonly onSync: () => void,
  ) {}

  append(line: string): Promise<void> {
    this.count++;
    this.lines.push(line);
    // One promise per group commit, not per row: every row in it settles alike.
    this.group ??= newGroup();
    if (!this.running) this.running = this.loop();
    return this.group.done;
  }

  private open(): number {
    if (this.fd === null) {
      this.fd = fs.openSync(this.file, 'a', 0o600);
      // The new file's name must be durable too.
      if (this.fsync)
        this.dirSynced = fsp.open(this.dir, 'r').then(async (d) => {
          try {
            await d.sync();
          } finally {
            await d.close();
          }
        });
    }
    return this.fd;
  }

  /**
   * Group commit. The write itself is a plain write(2) on this thread: a few microseconds
   * into the page cache, cheaper than a round trip through libuv's pool, and already safe
   * against kill -9. Only the fdatasync (fsync mode) goes to the pool, and every row
   * appended while it runs goes out in the next write + sync.
   */
  private async loop(): Promise<void> {
    // Rows appended in this same tick join the first write (and `running` is set before the
    // loop can end).
    await undefined;
    try {
      while (this.lines.length > 0) {
        const lines = this.lines;
        const group = this.group!;
        this.lines = [];
        this.group = null;
        try {
          const fd = this.open();
          // After a failed write the file may end in a torn line: start on a fresh one, so
          // replay loses only that line, not the first row written after it.
          const text = lines.length === 1 ? lines[0]! : lines.join('');
          writeAll(fd, Buffer.from(this.torn ? '\n' + text : text));
          this.torn = false;
          if (this.fsync) {
            await this.dirSynced;
            await datasync(fd);
          }
          this.onSync();
          group.resolve();
        } catch (err) {
          this.torn = true;
          group.reject(err);
        }
      }
    } finally {
      this.running = null;
    }
  }

  /** Resolves once every row appended so far is written. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Waits for pending writes, then closes and deletes the file. */
  async remove(): Promise<void> {
    await this.settled();
    await this.dirSynced?.catch(() => {});
    if (this.fd !== null) await promisify(fs.close)(this.fd).catch(() => {});
    this.fd = null;
    await fsp.rm(this.file, { force: true });
  }
}

export interface JournalOptions {
  dir: string;
  /** fdatasync each group (survives power loss); false = write only (survives kill -9). */
  fsync: boolean;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function openJournal(opts: JournalOptions) {
  fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const id = randomBytes(6).toString('hex');
  const host = os.hostname();
  const stats = { syncs: 0, rows: 0 };
  let seq = 0;
  let current: Segment | null = null;
  let sealed: Segment[] = [];
  /** Deletions under way (close waits for them). */
  const removing = new Set<Promise<void>>();

  // Whose segments are orphans: decided before our own owner file exists.
  const orphanOwners = new Set<string>();
  const owners = new Map<string, { pid: number; host: string } | null>();
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
    else if (info.host === host && (info.pid === process.pid || !pidAlive(info.pid))) orphanOwners.add(owner);
  }
  fs.writeFileSync(path.join(opts.dir, `${id}.owner`), JSON.stringify({ pid: process.pid, host }), {
    mode: 0o600,
  });

  const newSegment = () =>
    new Segment(path.join(opts.dir, `${id}.${++seq}.jsonl`), opts.dir, opts.fsync, () => stats.syncs++);

  return {
    /** Appends one record; resolves once it is durable. */
    append(record: unknown): Promise<void> {
      if (!current) current = newSegment();
      stats.rows++;
      return current.append(JSON.stringify(record) + '\n');
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
      const p = (async () => {
        for (const s of segs) await s.remove();
      })();
      removing.add(p);
      try {
        await p;
      } finally {
        removing.delete(p);
      }
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
      await Promise.allSettled([...removing]);
      const all = [...sealed, ...(current ? [current] : [])];
      if (!clean) {
        // Rows are left for the next start to replay; only finish what is being written.
        for (const s of all) await s.settled();
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
