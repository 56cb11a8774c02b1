// A TCP relay in front of a test server (Redis, PostgreSQL) that can be switched off (every
// connection cut, new ones refused) and on again: the server going away and coming back, as a
// client sees it. With `delayMs`, each command reaches the server that much later (in order):
// a slow link for one instance while another connects directly. `dropReplies()` lets commands
// through but loses the server's answers until the next stop: a connection cut after the
// server ran a command and before its reply arrived. `dropRequests()` loses what the client
// sends instead (until the next stop): commands sent that the server never gets.
import net from 'node:net';

const DEFAULT_PORTS: Record<string, number> = { 'redis:': 6379, 'postgres:': 5432, 'postgresql:': 5432 };

/** A relay to `target`'s host and port; `url()` is `target` with the relay's port. */
export async function tcpProxy(target: URL, opts: { delayMs?: number } = {}) {
  const sockets = new Set<net.Socket>();
  /** The relay's own connections to the server (whose ports the server sees as its clients'). */
  const upstream = new Set<net.Socket>();
  let server: net.Server | null = null;
  let port = 0;
  let dropping = false;
  let swallowing = false;
  const start = async () => {
    dropping = false;
    swallowing = false;
    server = net.createServer((client) => {
      const up = net.connect(Number(target.port || DEFAULT_PORTS[target.protocol]), target.hostname);
      upstream.add(up);
      up.on('close', () => upstream.delete(up));
      for (const sock of [client, up]) {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
        sock.on('error', () => {});
      }
      const delayMs = opts.delayMs ?? 0;
      // Equal delays fire in the order they were set: the byte stream stays in order.
      const send = (chunk: Buffer) => {
        if (!swallowing) up.write(chunk);
      };
      client.on('data', (chunk) => (delayMs > 0 ? setTimeout(() => send(chunk), delayMs) : send(chunk)));
      client.on('end', () => (delayMs > 0 ? setTimeout(() => up.end(), delayMs) : up.end()));
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
    url: () => {
      const u = new URL(target);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    start,
    stop,
    dropReplies: () => {
      dropping = true;
    },
    dropRequests: () => {
      swallowing = true;
    },
    /** The local ports of the relay's open connections to the server (PostgreSQL's `client_port`). */
    upstreamPorts: (): number[] => [...upstream].flatMap((u) => (u.localPort ? [u.localPort] : [])),
  };
}
