// The usage writer's worker thread (SQLite): its own connection to the data dir's database,
// opened once the main connection has migrated it, writes whole batches (usage/batch.ts
// writeBatchOn) so their SQL, its parsing and the commit's fsync stay off the event loop.
// A batch holds the write lock from BEGIN IMMEDIATE to COMMIT: a few milliseconds for a batch
// of several hundred rows, the fsync included. A main-thread write meanwhile waits in
// busy_timeout, a synchronous sleep of the event loop that short.
// Every failure is answered (the batch rolled back), never thrown out of the thread.
import { readlinkSync } from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { cachingStatements, openSqliteFile } from '../db/sqlite.js';
import { type BatchAnswer, type BatchRequest, type StatementSource, writeBatchOn } from './batch.js';

/** Main thread → worker: a batch to write, or `close` (the worker closes its connection and ends). */
export type WorkerMessage = { id: number; batch: BatchRequest } | { close: true };
/** Worker → main thread, per batch. */
export type WorkerReply = { id: number; answer: BatchAnswer } | { id: number; error: string };

/**
 * Lowers this thread's CPU priority 10 steps below the process's (Linux: a thread is a task of
 * its own, named by /proc/thread-self): the batches can wait a little, the event loop's answers
 * should not. Measured on 2 cores at 50 connections: 2–7 % more requests a second.
 */
function yieldCpuToTheEventLoop(): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) os.setPriority(tid, Math.min(19, os.getPriority(tid) + 10));
  } catch {
    // Not Linux, or not allowed: the thread keeps the process's priority.
  }
}

const port = parentPort;
if (port) {
  yieldCpuToTheEventLoop();
  const sqlite = openSqliteFile((workerData as { file: string }).file);
  // A batch's multi-row inserts and upserts each keep a statement journal (to undo just that
  // statement), spilled to a temp file past 64 KiB: two thirds of the batch's pwrite(2)s went
  // there (measured: 1.09 → 0.35 a row). In memory it is at most the pages one statement
  // touches; this connection runs nothing else that would use temp storage.
  sqlite.pragma('temp_store = MEMORY');
  const statements = cachingStatements(sqlite);
  const db: StatementSource = {
    prepare: (text) => statements.prepare(text),
    exec: (text) => sqlite.exec(text),
    get inTransaction() {
      return sqlite.inTransaction;
    },
  };
  port.on('message', (m: WorkerMessage) => {
    if ('close' in m) {
      sqlite.close();
      port.close();
      return;
    }
    let reply: WorkerReply;
    try {
      reply = { id: m.id, answer: writeBatchOn(db, m.batch) };
    } catch (err) {
      reply = { id: m.id, error: err instanceof Error ? err.message : String(err) };
    }
    port.postMessage(reply);
  });
}
