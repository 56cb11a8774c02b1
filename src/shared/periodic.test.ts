import { describe, expect, it, vi } from 'vitest';
import { periodicJob } from './periodic.js';

/** A run that stays under way until `finish` is called. */
function gatedRun() {
  const gates: (() => void)[] = [];
  const run = vi.fn(() => new Promise<void>((resolve) => gates.push(resolve)));
  const finish = async () => {
    gates.shift()?.();
    await new Promise((r) => setImmediate(r));
  };
  return { run, finish };
}

describe('periodicJob', () => {
  it('runs at once on start, and a tick while a run is under way is skipped', async () => {
    const { run, finish } = gatedRun();
    const job = periodicJob(run, () => {});
    job.start(60_000);
    expect(job.started).toBe(true);
    job.tick();
    expect(run).toHaveBeenCalledTimes(1);
    await finish();
    expect(run).toHaveBeenCalledTimes(1);
    await job.stop();
    expect(job.started).toBe(false);
  });

  it('with rerunWhenBusy, ticks during a run make one more run after it', async () => {
    const { run, finish } = gatedRun();
    const job = periodicJob(run, () => {}, { rerunWhenBusy: true });
    job.start(60_000);
    job.tick();
    job.tick();
    await finish();
    expect(run).toHaveBeenCalledTimes(2);
    await finish();
    expect(run).toHaveBeenCalledTimes(2);
    await job.stop();
  });

  it('reports a failed run, and stop waits for the run under way', async () => {
    const errors: unknown[] = [];
    let release!: () => void;
    const job = periodicJob(
      () => new Promise<void>((_, reject) => (release = () => reject(new Error('boom')))),
      (err) => errors.push(err),
    );
    job.start(60_000);
    const stopped = job.stop();
    release();
    await stopped;
    expect(errors.map(String)).toEqual(['Error: boom']);
  });
});
