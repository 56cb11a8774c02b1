// A webhook receiver for tests: a real HTTP server on a random loopback port that records
// every delivery and answers with whatever status the test chooses.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Delivery {
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface Receiver {
  url: string;
  port: number;
  received: Delivery[];
  /** While true, every connection is dropped unanswered (the receiver is "down", its port kept). */
  down: boolean;
  /** Status for the next delivery (called once per request); 200 unless set. */
  respond: (d: Delivery) => number | Promise<number>;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const r: Receiver = {
    url: '',
    port: 0,
    received: [],
    down: false,
    respond: () => 200,
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const d = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      r.received.push(d);
      void Promise.resolve(r.respond(d)).then((status) => {
        res.statusCode = status;
        res.end('ok');
      });
    });
  });
  server.on('connection', (socket) => {
    if (r.down) socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.port = (server.address() as AddressInfo).port;
  r.url = `http://127.0.0.1:${r.port}/hook`;
  r.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return r;
}
