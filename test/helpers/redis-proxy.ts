// A TCP relay in front of the test Redis server that can be switched off (every connection
// cut, new ones refused) and on again: Redis going away and coming back, as a client sees it.
// With `delayMs`, each command reaches Redis that much later (in order): a slow link to Redis
// for one instance while another reaches it directly. `dropReplies()` lets commands through
// but loses Redis's answers until the next stop: a connection cut after Redis ran a command
// and before its reply arrived.
import net from 'node:net';

export async function redisProxy(target: URL, opts: { delayMs?: number } = {}) {
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  let port = 0;
  let dropping = false;
  const start = async () => {
    dropping = false;
    server = net.createServer((client) => {
      const up = net.connect(Number(target.port || 6379), target.hostname);
      for (const sock of [client, up]) {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
        sock.on('error', () => {});
      }
      const delayMs = opts.delayMs ?? 0;
      if (delayMs > 0) {
        // Equal delays fire in the order they were set: the byte stream stays in order.
        client.on('data', (chunk) => setTimeout(() => up.write(chunk), delayMs));
        client.on('end', () => setTimeout(() => up.end(), delayMs));
      } else client.pipe(up);
      up.on('data', (chunk) => {
        if (!dropping) client.write(chunk);
      });
      up.on('end', () => client.end());
    });
    await new Promise<void>((r) => server!.listen(port, '127.0.0.1', () => r()));
    port = (server!.address() as net.AddressInfo).port;
  };
  const stop = async () => {
    for (const sock of sockets) sock.destroy();
    const srv = server;
    server = null;
    if (srv) await new Promise((r) => srv.close(r));
  };
  await start();
  return {
    url: () => `redis://127.0.0.1:${port}`,
    start,
    stop,
    dropReplies: () => {
      dropping = true;
    },
  };
}
