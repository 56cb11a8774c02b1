// A TCP relay in front of the test Redis server that can be switched off (every connection
// cut, new ones refused) and on again: Redis going away and coming back, as a client sees it.
import net from 'node:net';

export async function redisProxy(target: URL) {
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  let port = 0;
  const start = async () => {
    server = net.createServer((client) => {
      const up = net.connect(Number(target.port || 6379), target.hostname);
      for (const sock of [client, up]) {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
        sock.on('error', () => {});
      }
      client.pipe(up).pipe(client);
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
  return { url: () => `redis://127.0.0.1:${port}`, start, stop };
}
