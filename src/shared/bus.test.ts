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
});
