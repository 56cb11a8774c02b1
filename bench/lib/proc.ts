// Child-process plumbing for the benchmark: start a server in its own process (so its CPU
// time is its own), wait for the line that says it is listening, read its CPU time and
// memory from /proc, stop it by pid.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

export interface Server {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** First capture group of the readiness regex (usually a URL), or ''. */
  ready: string;
  /** Everything the process printed (stdout + stderr), capped. */
  output(): string;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

let clkTck = 100;
try {
  clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
} catch {
  /* Linux default */
}

/** utime + stime of a process (all its threads), microseconds. */
export function cpuMicros(pid: number): number {
  return statCpuMicros(`/proc/${pid}/stat`);
}

/**
 * utime + stime of a process's main thread alone, microseconds: the event loop, which bounds a
 * Node server's throughput (its worker threads and libuv's pool run beside it).
 */
export function mainThreadCpuMicros(pid: number): number {
  return statCpuMicros(`/proc/${pid}/task/${pid}/stat`);
}

function statCpuMicros(file: string): number {
  const stat = readFileSync(file, 'utf8');
  // Fields after the parenthesised command name (which may itself contain spaces).
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return ((utime + stime) * 1e6) / clkTck;
}

/**
 * CPU of the services the gateway may lean on (Redis, PostgreSQL: every process of that name,
 * all users), microseconds per pid. A process that ends between two readings is missing from
 * the second: `cpuSince` counts only the pids both readings have, and new ones whole.
 */
export function servicesCpu(): Map<number, { service: 'redis' | 'postgres'; us: number }> {
  const out = new Map<number, { service: 'redis' | 'postgres'; us: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const service = comm.startsWith('redis-server') ? 'redis' : comm === 'postgres' ? 'postgres' : null;
      if (service) out.set(Number(d), { service, us: statCpuMicros(`/proc/${d}/stat`) });
    } catch {
      // The process ended while the directory was read.
    }
  }
  return out;
}

/** Each service's CPU between two `servicesCpu` readings, microseconds. */
export function cpuSince(
  before: ReturnType<typeof servicesCpu>,
  after: ReturnType<typeof servicesCpu>,
): { redis: number; postgres: number } {
  const sum = { redis: 0, postgres: 0 };
  for (const [pid, a] of after) sum[a.service] += a.us - (before.get(pid)?.us ?? 0);
  return sum;
}

/** CPU time the whole machine spent busy (all CPUs, /proc/stat: user … steal), microseconds. */
export function machineCpuMicros(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  // cpu  user nice system idle iowait irq softirq steal …
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
  return (busy * 1e6) / clkTck;
}

/** VmRSS / VmHWM (peak RSS) of a process, bytes. */
export function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Open file descriptors of a process (sockets included). */
export function fdCount(pid: number): number {
  try {
    return execFileSync('ls', [`/proc/${pid}/fd`])
      .toString()
      .split('\n')
      .filter(Boolean).length;
  } catch {
    return -1;
  }
}

/** A free loopback TCP port (bound and released; fine for a benchmark on a quiet loopback). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface StartOptions {
  name: string;
  cmd: string;
  args: string[];
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Matched against stdout+stderr; group 1 becomes `ready`. */
  readyRegex: RegExp;
  timeoutMs?: number;
}

const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

export async function startServer(o: StartOptions): Promise<Server> {
  const proc = spawn(o.cmd, o.args, {
    cwd: o.cwd,
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const append = (b: Buffer) => {
    out += b.toString('utf8').replace(ANSI, '');
    if (out.length > 64_000) out = out.slice(-32_000);
  };
  proc.stdout!.on('data', append);
  proc.stderr!.on('data', append);
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code, sig) => resolve(code ?? (sig ? 128 : null))),
  );

  const ready = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      proc.kill('SIGKILL');
      reject(new Error(`${o.name} did not start within ${o.timeoutMs ?? 30_000} ms:\n${out.slice(-2000)}`));
    }, o.timeoutMs ?? 30_000);
    const check = () => {
      const m = o.readyRegex.exec(out);
      if (m) {
        cleanup();
        resolve(m[1] ?? '');
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`${o.name} exited (${code}) before it was ready:\n${out.slice(-2000)}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      proc.stdout!.off('data', check);
      proc.stderr!.off('data', check);
      proc.off('exit', onExit);
    };
    proc.stdout!.on('data', check);
    proc.stderr!.on('data', check);
    proc.once('exit', onExit);
    check();
  });

  return {
    name: o.name,
    proc,
    pid: proc.pid!,
    ready,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Runs a process to completion; resolves with its stdout (throws with stderr on failure). */
export function runToEnd(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string | undefined>; cwd?: string; echo?: boolean; timeoutMs?: number } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    proc.stderr.on('data', (b: Buffer) => {
      err += b.toString();
      if (opts.echo) process.stderr.write(b);
    });
    const timer = opts.timeoutMs ? setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs) : null;
    proc.on('exit', (code, sig) => {
      if (timer) clearTimeout(timer);
      if (code === 0) resolve(out);
      else
        reject(
          new Error(
            `${cmd} ${args.join(' ')} exited ${code ?? sig}:\n${err.slice(-4000)}\n${out.slice(-2000)}`,
          ),
        );
    });
  });
}
