import { describe, expect, it } from 'vitest';
import { deferred } from '../../test/helpers/deferred.js';
import { backgroundWork } from './background.js';

describe('backgroundWork', () => {
  it('settled() waits for tracked work, and for work that work started meanwhile', async () => {
    const bg = backgroundWork();
    const first = deferred();
    const second = deferred();
    let done = false;
    void bg.track(first.promise.then(() => void bg.track(second.promise)));
    const settled = bg.settled().then(() => (done = true));
    first.resolve();
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    second.resolve();
    await settled;
    expect(done).toBe(true);
  });

  it('a failed piece of work does not make settled() reject; track() answers the work itself', async () => {
    const bg = backgroundWork();
    const work = deferred();
    const tracked = bg.track(work.promise);
    expect(tracked).toBe(work.promise);
    tracked.catch(() => {});
    work.reject(new Error('disk full'));
    await expect(bg.settled()).resolves.toBeUndefined();
  });

  it('with nothing tracked, settled() resolves at once', async () => {
    await expect(backgroundWork().settled()).resolves.toBeUndefined();
  });
});
