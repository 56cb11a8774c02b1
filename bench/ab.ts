// Two builds of the gateway side by side on the benchmark's request (`POST /v1/chat/completions`,
// 50 connections), plain and streamed, in interleaved rounds (the order flips each round): the
// gateway's CPU a request, median over rounds. For a change too small for `npm run bench` to
// tell from the host's drift. A is this checkout (compiled as the benchmark does) unless
// AB_A names a build's main.js; B is AB_B.
//
//   git worktree add /tmp/base <rev> && ln -s $PWD/node_modules /tmp/base-build/node_modules
//   node node_modules/typescript/bin/tsc -p /tmp/base/tsconfig.build.json --outDir /tmp/base-build/server
//   AB_B=/tmp/base-build/server/main.js npx tsx bench/ab.ts        (AB_MODES=plain for plain only)
import autocannon from 'autocannon';
import { requestBody } from './lib/load.js';
import { cpuMicros } from './lib/proc.js';
import { buildMole, startMock, startMole } from './lib/targets.js';

const A = process.env.AB_A ?? (await buildMole());
const B = process.env.AB_B;
if (!B) throw new Error('AB_B: the main.js of the build to compare with');
const mock = await startMock({ name: 'mock' });
const builds = [
  { name: 'A', t: await startMole({ main: A, mockUrl: mock.url, name: 'a' }) },
  { name: 'B', t: await startMole({ main: B, mockUrl: mock.url, name: 'b' }) },
];
const results: Record<string, number[]> = {};
try {
  for (const stream of (process.env.AB_MODES ?? 'plain,stream').split(',').map((m) => m === 'stream')) {
    for (const b of builds)
      await autocannon({
        url: `${b.t.url}/v1/chat/completions`,
        method: 'POST',
        connections: 50,
        duration: 2,
        headers: b.t.headers,
        body: requestBody(stream),
      });
    for (let round = 0; round < 6; round++) {
      for (const b of round % 2 ? [...builds].reverse() : builds) {
        const pid = b.t.server.pid!;
        const c0 = cpuMicros(pid);
        const r = await autocannon({
          url: `${b.t.url}/v1/chat/completions`,
          method: 'POST',
          connections: 50,
          duration: 4,
          headers: b.t.headers,
          body: requestBody(stream),
        });
        const n = r['2xx'];
        const us = (cpuMicros(pid) - c0) / n;
        const k = `${b.name} ${stream ? 'stream' : 'plain'}`;
        results[k] = [...(results[k] ?? []), us];
        console.log(
          `${k} round ${round}: ${(n / 4).toFixed(0)} req/s, ${us.toFixed(1)} µs/req, non2xx ${r.non2xx}`,
        );
      }
    }
  }
  for (const [k, v] of Object.entries(results)) {
    const s = [...v].sort((a, b) => a - b);
    console.log(
      `${k}: median ${((s[2]! + s[3]!) / 2).toFixed(1)} µs/req (${s.map((x) => x.toFixed(0)).join(', ')})`,
    );
  }
} finally {
  for (const b of builds) await b.t.server.stop();
  await mock.stop();
}
