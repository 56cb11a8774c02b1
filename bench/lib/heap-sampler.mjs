// Preloaded into the gateway by bench/alloc-profile.ts (`node --import`). SIGUSR2 starts V8's
// sampling heap profiler on the main thread, keeping the samples of objects that GC has
// collected already, so the profile shows what requests allocate rather than what survives;
// a second SIGUSR2 stops it and writes the profile to HEAP_PROFILE_OUT. With
// HEAP_PROFILE_SURVIVORS=1 the objects young collections freed are left out: what remains was
// promoted to the old generation (or is still alive), the garbage only a full GC frees. Plain
// JavaScript: it runs inside the compiled gateway, without tsx.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { isMainThread } from 'node:worker_threads';

if (isMainThread && process.env.HEAP_PROFILE_OUT) {
  const session = new Session();
  session.connect();
  const post = (method, params) =>
    new Promise((resolve, reject) =>
      session.post(method, params, (err, r) => (err ? reject(err) : resolve(r))),
    );
  let sampling = false;
  process.on('SIGUSR2', async () => {
    try {
      if (!sampling) {
        sampling = true;
        await post('HeapProfiler.enable');
        await post('HeapProfiler.startSampling', {
          samplingInterval: 4096,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: process.env.HEAP_PROFILE_SURVIVORS !== '1',
        });
        process.stderr.write('heap sampling started\n');
      } else {
        sampling = false;
        // Survivors: whatever was allocated since the last young collection is not collected
        // yet and would count as surviving. Short-lived garbage (twice the largest semi-space)
        // forces young collections first; it is freed by them and so left out itself.
        if (process.env.HEAP_PROFILE_SURVIVORS === '1') {
          // ~2 M arrays of ~80 bytes, each dead once the next is made; the last is read after
          // the loop so that the allocations cannot be optimised away.
          let last = null;
          for (let i = 0; i < 2_000_000; i++) last = new Array(8).fill(i);
          if (last === null) process.stderr.write('');
        }
        const { profile } = await post('HeapProfiler.stopSampling');
        writeFileSync(process.env.HEAP_PROFILE_OUT, JSON.stringify(profile));
        process.stderr.write('heap profile written\n');
      }
    } catch (err) {
      process.stderr.write(`heap sampler: ${err}\n`);
    }
  });
}
