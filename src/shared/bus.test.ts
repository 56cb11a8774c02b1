import { describe, expect, it } from 'vitest';
import { type Deferred, deferred } from '../../test/helpers/deferred.js';
import { InvalidationBus, reloadOnAnnouncement } from './bus.js';

describe('reloadOnAnnouncement', () => {
  it('reloads on a wanted announcement and lets the writer wait for it', async () => {
    const bus = new InvalidationBus();
    let loads = 0;
    const reloaded = reloadOnAnnouncement(
      bus,
      (m) => m.kind === 'prices',
      async () => {
        await new Promise((r) => setTimeout(r, 5));
        loads++;
      },
      () => {},
    );
    bus.publish({ kind: 'channels' });
    bus.publish({ kind: 'prices' });
    await reloaded();
    expect(loads).toBe(1);
  });

  it('a failed reload (a database closing under it) is reported, not an unhandled rejection', async () => {
    const bus = new InvalidationBus();
    const errors: unknown[] = [];
    const reloaded = reloadOnAnnouncement(
      bus,
      () => true,
      async () => {
        throw new Error('driver has already been destroyed');
      },
      (err) => errors.push(err),
    );
    bus.publish({ kind: 'prices' });
    await expect(reloaded()).resolves.toBeUndefined();
    expect(errors).toHaveLength(1);
  });

  it('an older reload finishing late never replaces a newer one', async () => {
    const bus = new InvalidationBus();
    // The table as the database holds it; each read is held until the test lets it finish,
    // and the test always lets the newest read finish first.
    let table = ['a'];
    let cached: string[] = [];
    const reads: { gate: Deferred; released: boolean; done: Promise<void> }[] = [];
    const reloaded = reloadOnAnnouncement(
      bus,
      () => true,
      () => {
        const read = [...table];
        const gate = deferred();
        const done = gate.promise.then(() => {
          cached = read;
        });
        reads.push({ gate, released: false, done });
        return done;
      },
      () => {},
    );
    bus.publish({ kind: 'prices' });
    table = ['a', 'b'];
    bus.publish({ kind: 'prices' });
    table = ['a', 'b', 'c'];
    bus.publish({ kind: 'prices' });
    for (;;) {
      await new Promise((r) => setImmediate(r));
      const newest = reads.filter((r) => !r.released).at(-1);
      if (!newest) break;
      newest.released = true;
      newest.gate.resolve();
    }
    await reloaded();
    await Promise.all(reads.map((r) => r.done));
    expect(cached).toEqual(['a', 'b', 'c']);
  });

  it('announcements during a reload are folded into one more reload', async () => {
    const bus = new InvalidationBus();
    let loads = 0;
    const reloaded = reloadOnAnnouncement(
      bus,
      () => true,
      async () => {
        await new Promise((r) => setTimeout(r, 5));
        loads++;
      },
      () => {},
    );
    for (let i = 0; i < 5; i++) bus.publish({ kind: 'prices' });
    await reloaded();
    expect(loads).toBe(2);
  });
});
