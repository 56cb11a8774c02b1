import { describe, expect, it } from 'vitest';
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
    const reads: { release: () => void; released: boolean; done: Promise<void> }[] = [];
    const reloaded = reloadOnAnnouncement(
      bus,
      () => true,
      () => {
        const read = [...table];
        let open = () => {};
        const gate = new Promise<void>((resolve) => {
          open = resolve;
        });
        const entry = {
          released: false,
          release() {
            entry.released = true;
            open();
          },
          done: gate.then(() => {
            cached = read;
          }),
        };
        reads.push(entry);
        return entry.done;
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
      const open = reads.filter((r) => !r.released);
      if (open.length === 0) break;
      open[open.length - 1]!.release();
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
