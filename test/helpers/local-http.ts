// A node:http server on a random loopback port for one suite: started in beforeAll, its open
// connections cut and it closed in afterAll. For specs of code that talks HTTP itself (the
// upstream transports), where a whole mock provider would hide what is being checked.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll } from 'vitest';

export interface LocalHttpServer {
  url: string;
  server: http.Server;
  /** Resolves once `n` more requests have reached the handler (ask before sending them). */
  arrivals(n: number): Promise<void>;
}

export function localHttpServer(handler: http.RequestListener): LocalHttpServer {
  let waiters: { left: number; resolve: () => void }[] = [];
  const local: LocalHttpServer = {
    url: '',
    server: http.createServer((req, res) => {
      handler(req, res);
      for (const w of waiters) if (--w.left === 0) w.resolve();
      waiters = waiters.filter((w) => w.left > 0);
    }),
    arrivals: (n) => new Promise<void>((resolve) => waiters.push({ left: n, resolve })),
  };
  beforeAll(async () => {
    await new Promise<void>((r) => local.server.listen(0, '127.0.0.1', r));
    local.url = `http://127.0.0.1:${(local.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    local.server.closeAllConnections();
    await new Promise<void>((r) => local.server.close(() => r()));
  });
  return local;
}
