// Preloaded into the gateway by bench/alloc-profile.ts (`node --import`). SIGUSR2 starts V8's
// sampling heap profiler on the main thread, keeping the samples of objects that GC has
// collected already, so the profile shows what requests allocate rather than what survives;
// a second SIGUSR2 stops it and writes the profile to HEAP_PROFILE_OUT. Plain JavaScript: it
// runs inside the compiled gateway, without tsx.
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
          includeObjectsCollectedByMinorGC: true,
        });
        process.stderr.write('heap sampling started\n');
      } else {
        sampling = false;
        const { profile } = await post('HeapProfiler.stopSampling');
        writeFileSync(process.env.HEAP_PROFILE_OUT, JSON.stringify(profile));
        process.stderr.write('heap profile written\n');
      }
    } catch (err) {
      process.stderr.write(`heap sampler: ${err}\n`);
    }
  });
}
