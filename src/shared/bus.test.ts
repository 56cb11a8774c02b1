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

describe('InvalidationBus over Redis', () => {
  /** A publishing connection whose answers the test gives. */
  function fakePub() {
    const calls: { channel: string; message: string; answer: Deferred }[] = [];
    const pub = {
      publish(channel: string, message: string) {
        const answer = deferred();
        calls.push({ channel, message, answer });
        return answer.promise;
      },
    };
    return { pub: pub as unknown as Parameters<InvalidationBus['publishTo']>[0], calls };
  }

  it('announces on its database’s own channel, and sent() waits until Redis has taken it', async () => {
    const bus = new InvalidationBus();
    const { pub, calls } = fakePub();
    bus.publishTo(pub, 'mole:db1');
    bus.publish({ kind: 'prices' });
    bus.publish({ kind: 'channels' });
    expect(calls.map((c) => c.channel)).toEqual(['mole:db1:invalidate', 'mole:db1:invalidate']);
    let sent = false;
    const waiting = bus.sent().then(() => {
      sent = true;
    });
    calls[0]!.answer.resolve();
    await new Promise((r) => setImmediate(r));
    expect(sent).toBe(false);
    // A publish that failed is taken as sent too (a later `all` covers it).
    calls[1]!.answer.reject(new Error('socket closed unexpectedly'));
    await waiting;
    expect(sent).toBe(true);
    await bus.sent(); // nothing left: at once
  });
});
