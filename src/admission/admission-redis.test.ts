// The admission spec (admission.spec.ts) on Redis (MOLE_TEST_REDIS_URL): one script to admit,
// one to settle; skipped, visibly, without a Redis server.
import { testRedis } from '../shared/redis.spec.js';
import { onRedis } from '../shared/redis.spec.js';
import { admissionSpec, silent } from './admission.spec.js';
import { redisParts } from './redis-parts.spec.js';

onRedis('admission-redis.test', 'admission', (url) =>
  admissionSpec('Redis', {
    async make(deps) {
      const redis = testRedis(url);
      const p = redisParts({ ...deps, redis, logger: silent, renewEveryMs: null });
      return { ...p, admission: p.script(), disconnect: () => redis.destroy() };
    },
  }),
);
