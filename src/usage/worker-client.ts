// The main thread's side of the usage writer's worker thread (writer-worker.ts): started at the
// first batch, one batch at a time, started again at the next batch after it died. It keeps the
// process alive only while a batch is in flight.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { BatchAnswer, BatchRequest } from './batch.js';
import type { WorkerMessage, WorkerReply } from './writer-worker.js';

/** The worker ended with the batch in flight: it may have committed or not. */
export class WorkerLostError extends Error {}

/** How long close() waits for the worker to close its connection before terminating it. */
const CLOSE_TIMEOUT_MS = 5000;

function startWorker(file: string): Worker {
  const workerData = { file };
  if (!import.meta.url.endsWith('.ts'))
    return new Worker(new URL('./writer-worker.js', import.meta.url), { workerData });
  return new Worker(sourceBundle(), { eval: true, workerData });
}

let bundle: string | null = null;

/**
 * Running from the TypeScript sources (vitest, tsx; never the build): Node 20 applies no loader
 * hooks to a worker's entry, so the worker's source is bundled once per process by esbuild
 * (tsx's: a devDependency, needed only here) and run as code. Registering tsx in each worker
 * instead cost ~0.5 s per start, paid by every test server that writes a log row.
 */
function sourceBundle(): string {
  if (bundle) return bundle;
  const require = createRequire(import.meta.url);
  const esbuild = createRequire(require.resolve('tsx'))('esbuild') as {
    buildSync(options: object): { outputFiles: Array<{ text: string }> };
  };
  const entry = fileURLToPath(new URL('./writer-worker.ts', import.meta.url));
  const out = esbuild.buildSync({
    entryPoints: [entry],
    bundle: true,
    format: 'cjs',
    platform: 'node',
    write: false,
    external: ['better-sqlite3'],
  });
  // Eval'd code resolves require() from the working directory: resolve from the source instead.
  bundle = `((require) => {${out.outputFiles[0]!.text}})(require('node:module').createRequire(${JSON.stringify(entry)}))`;
  return bundle;
}

export function createWorkerClient(file: string) {
  let worker: Worker | null = null;
  let closed = false;
  let nextId = 0;
  const inFlight = new Map<number, { resolve(a: BatchAnswer): void; reject(e: Error): void }>();

  function running(): Worker {
    if (worker) return worker;
    const w = startWorker(file);
    let failure = '';
    w.on('message', (reply: WorkerReply) => {
      const call = inFlight.get(reply.id);
      if (!call) return;
      inFlight.delete(reply.id);
      if (inFlight.size === 0) w.unref();
      if ('error' in reply) call.reject(new Error(reply.error));
      else call.resolve(reply.answer);
    });
    // An uncaught error ends the worker: 'exit' follows and fails what is in flight.
    w.on('error', (err) => (failure = err.message));
    w.on('exit', (code) => {
      if (worker === w) worker = null;
      const lost = new WorkerLostError(
        `usage writer worker exited (code ${code}${failure ? `: ${failure}` : ''})`,
      );
      for (const call of inFlight.values()) call.reject(lost);
      inFlight.clear();
    });
    w.unref();
    worker = w;
    return w;
  }

  return {
    /** Writes one batch in the worker's transaction; rejects (rolled back) on any failure. */
    write(batch: BatchRequest): Promise<BatchAnswer> {
      // After close no thread starts again (it would outlive its owner).
      if (closed) return Promise.reject(new Error('usage writer worker: closed'));
      const w = running();
      const id = nextId++;
      return new Promise<BatchAnswer>((resolve, reject) => {
        inFlight.set(id, { resolve, reject });
        w.ref();
        w.postMessage({ id, batch } satisfies WorkerMessage);
      });
    },
    /** Whether a worker thread is running (tests). */
    running: () => worker !== null,
    /** Ends the thread at once, as a crash would (tests). */
    async terminate(): Promise<void> {
      await worker?.terminate();
    },
    /** Ends the worker: it closes its connection first (terminated if it does not in time). */
    async close(): Promise<void> {
      closed = true;
      const w = worker;
      if (!w) return;
      worker = null;
      const exited = new Promise<void>((r) => w.once('exit', () => r()));
      w.ref();
      w.postMessage({ close: true } satisfies WorkerMessage);
      const timer = setTimeout(() => void w.terminate(), CLOSE_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

export type WorkerClient = ReturnType<typeof createWorkerClient>;
